use serde::{Deserialize, Serialize};

use super::env::{ConfigError, EnvSource, ToEnv};
use super::vars::*;

/// SASL mechanisms Panopticon speaks to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's spelling (`sasl.mechanism`).
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How to reach Kafka. The SASL password is not here: the client reads `KAFKA_SASL_PASSWORD`
/// into a redacting type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated (`KAFKA_BROKERS`, else `KAFKA_BROKER_FALLBACK`).
    pub brokers: String,
    /// TLS to the brokers (`KAFKA_SSL`).
    pub tls: bool,
    /// Verify broker certificates (`KAFKA_SSL_REJECT_UNAUTHORIZED`).
    pub tls_verify: bool,
    /// PEM CA file for broker certificates (`KAFKA_SSL_CA_FILE`).
    pub tls_ca_file: Option<String>,
    /// `KAFKA_SASL_MECHANISM`: `plain`, `scram-sha-256` or `scram-sha-512`.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// `KAFKA_SASL_USERNAME`, required with a mechanism.
    pub sasl_username: Option<String>,
    /// Consumer fetch tuning (`KAFKA_FETCH_MAX_BYTES`, `KAFKA_FETCH_MAX_BYTES_PER_PARTITION`,
    /// `KAFKA_FETCH_MIN_BYTES`, `KAFKA_FETCH_MAX_WAIT_MS`). 50 MiB / 10 MiB tripled ingest's
    /// peak RSS in the ingest benchmark (602 MiB against 223 MiB) for no throughput gain: fetch
    /// buffers are memory outside the in-flight cap.
    pub fetch_max_bytes: u32,
    pub fetch_max_bytes_per_partition: u32,
    pub fetch_min_bytes: u32,
    pub fetch_max_wait_ms: u32,
}

impl KafkaConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let brokers = env
            .value(&KAFKA_BROKERS)
            .or_else(|| env.value(&KAFKA_BROKER_FALLBACK))
            .unwrap_or_else(|| env.text(&KAFKA_BROKERS));
        let brokers = brokers
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        if brokers.is_empty() {
            return Err(ConfigError::new(KAFKA_BROKERS.name, "names no broker"));
        }
        let sasl_mechanism = match env
            .value(&KAFKA_SASL_MECHANISM)
            .map(|m| m.to_ascii_lowercase())
        {
            None => None,
            Some(m) => Some(match m.as_str() {
                "plain" => SaslMechanism::Plain,
                "scram-sha-256" => SaslMechanism::ScramSha256,
                "scram-sha-512" => SaslMechanism::ScramSha512,
                _ => {
                    return Err(ConfigError::new(
                        KAFKA_SASL_MECHANISM.name,
                        format!(
                            "{m:?} is not supported; use plain, scram-sha-256 or scram-sha-512 \
                             (AWS MSK IAM/oauthbearer is not supported)"
                        ),
                    ));
                }
            }),
        };
        let sasl_username = env.value(&KAFKA_SASL_USERNAME);
        if sasl_mechanism.is_some() && sasl_username.is_none() {
            return Err(ConfigError::new(
                KAFKA_SASL_USERNAME.name,
                format!("is required when {} is set", KAFKA_SASL_MECHANISM.name),
            ));
        }
        Ok(Self {
            brokers,
            tls: env.bool(&KAFKA_SSL)?,
            tls_verify: env.bool(&KAFKA_SSL_REJECT_UNAUTHORIZED)?,
            tls_ca_file: env.value(&KAFKA_SSL_CA_FILE),
            sasl_mechanism,
            sasl_username,
            fetch_max_bytes: env.at_least(&KAFKA_FETCH_MAX_BYTES, 1024)?,
            fetch_max_bytes_per_partition: env
                .at_least(&KAFKA_FETCH_MAX_BYTES_PER_PARTITION, 1024)?,
            fetch_min_bytes: env.at_least(&KAFKA_FETCH_MIN_BYTES, 1)?,
            fetch_max_wait_ms: env.at_least(&KAFKA_FETCH_MAX_WAIT_MS, 1)?,
        })
    }
}

impl ToEnv for KafkaConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (KAFKA_BROKERS.name, self.brokers.clone()),
            (KAFKA_SSL.name, self.tls.to_string()),
            (
                KAFKA_SSL_REJECT_UNAUTHORIZED.name,
                self.tls_verify.to_string(),
            ),
            (KAFKA_FETCH_MAX_BYTES.name, self.fetch_max_bytes.to_string()),
            (
                KAFKA_FETCH_MAX_BYTES_PER_PARTITION.name,
                self.fetch_max_bytes_per_partition.to_string(),
            ),
            (KAFKA_FETCH_MIN_BYTES.name, self.fetch_min_bytes.to_string()),
            (
                KAFKA_FETCH_MAX_WAIT_MS.name,
                self.fetch_max_wait_ms.to_string(),
            ),
        ];
        if let Some(ca) = &self.tls_ca_file {
            vars.push((KAFKA_SSL_CA_FILE.name, ca.clone()));
        }
        if let Some(m) = self.sasl_mechanism {
            vars.push((
                KAFKA_SASL_MECHANISM.name,
                m.as_librdkafka().to_ascii_lowercase(),
            ));
        }
        if let Some(u) = &self.sasl_username {
            vars.push((KAFKA_SASL_USERNAME.name, u.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<KafkaConfig, ConfigError> {
        KafkaConfig::from_env(&EnvSource::from_pairs(pairs))
    }

    #[test]
    fn broker_list_is_trimmed_and_falls_back() {
        assert_eq!(
            read(&[("KAFKA_BROKERS", " a:1, ,b:2 ")]).unwrap().brokers,
            "a:1,b:2"
        );
        assert_eq!(
            read(&[("KAFKA_BROKER_FALLBACK", "c:3")]).unwrap().brokers,
            "c:3"
        );
        assert_eq!(read(&[]).unwrap().brokers, "localhost:9092");
        assert_eq!(
            read(&[("KAFKA_BROKERS", ",")]).unwrap_err().var,
            "KAFKA_BROKERS"
        );
    }

    #[test]
    fn sasl_needs_a_known_mechanism_and_a_user() {
        let c = read(&[
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_USERNAME", "u"),
        ])
        .unwrap();
        assert_eq!(c.sasl_mechanism, Some(SaslMechanism::ScramSha512));
        assert_eq!(
            read(&[("KAFKA_SASL_MECHANISM", "plain")]).unwrap_err().var,
            "KAFKA_SASL_USERNAME"
        );
        let e = read(&[
            ("KAFKA_SASL_MECHANISM", "oauthbearer"),
            ("KAFKA_SASL_USERNAME", "u"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn renders_what_it_reads() {
        let c = read(&[
            ("KAFKA_BROKERS", "k:9093"),
            ("KAFKA_SSL", "true"),
            ("KAFKA_SSL_CA_FILE", "/ca.pem"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
            ("KAFKA_SASL_USERNAME", "svc"),
        ])
        .unwrap();
        let rendered = c.to_env();
        let back = KafkaConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }
}
