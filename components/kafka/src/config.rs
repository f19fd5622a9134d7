use panopticon_model::config::{EnvSource, KafkaConfig, vars};
use rdkafka::ClientConfig;
use secrecy::{ExposeSecret as _, SecretString};

/// Credentials read from the environment, never from configuration files.
#[derive(Default)]
pub struct KafkaSecrets {
    /// `KAFKA_SASL_PASSWORD`.
    pub sasl_password: Option<SecretString>,
}

impl KafkaSecrets {
    pub fn from_process_env() -> Self {
        Self::from_env(&EnvSource::process())
    }

    pub fn from_env(env: &EnvSource<'_>) -> Self {
        Self {
            sasl_password: env.secret(&vars::KAFKA_SASL_PASSWORD),
        }
    }
}

/// The settings every client (consumer, producer, admin) shares: brokers, TLS, SASL.
/// Fails when SASL is configured without a password.
pub fn client_config(
    config: &KafkaConfig,
    secrets: &KafkaSecrets,
    client_id: &str,
) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id);
    let protocol = match (config.tls, config.sasl_mechanism.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    if config.tls {
        if let Some(ca) = &config.tls_ca_file {
            c.set("ssl.ca.location", ca);
        }
        if !config.tls_verify {
            tracing::warn!(
                brokers = %config.brokers,
                "TLS certificate verification of Kafka is OFF (KAFKA_SSL_REJECT_UNAUTHORIZED=false): \
                 the connection can be intercepted"
            );
            c.set("enable.ssl.certificate.verification", "false");
            c.set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    if let Some(mechanism) = config.sasl_mechanism {
        let password = secrets.sasl_password.as_ref().ok_or_else(|| {
            format!(
                "{}: is required when {} is set",
                vars::KAFKA_SASL_PASSWORD.name,
                vars::KAFKA_SASL_MECHANISM.name
            )
        })?;
        c.set("sasl.mechanism", mechanism.as_librdkafka())
            .set(
                "sasl.username",
                config.sasl_username.as_deref().unwrap_or_default(),
            )
            .set("sasl.password", password.expose_secret());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(pairs: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig::from_env(&EnvSource::from_pairs(pairs)).unwrap()
    }

    #[test]
    fn security_protocol_follows_tls_and_sasl() {
        let secrets = KafkaSecrets {
            sasl_password: Some("pw".to_owned().into()),
        };
        for (pairs, want) in [
            (&[][..], "plaintext"),
            (&[("KAFKA_SSL", "true")][..], "ssl"),
            (
                &[
                    ("KAFKA_SASL_MECHANISM", "plain"),
                    ("KAFKA_SASL_USERNAME", "u"),
                ][..],
                "sasl_plaintext",
            ),
            (
                &[
                    ("KAFKA_SSL", "true"),
                    ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
                    ("KAFKA_SASL_USERNAME", "u"),
                ][..],
                "sasl_ssl",
            ),
        ] {
            let c = client_config(&kafka(pairs), &secrets, "t").unwrap();
            assert_eq!(c.get("security.protocol"), Some(want), "{pairs:?}");
        }
    }

    #[test]
    fn sasl_without_password_is_an_error_naming_the_variable() {
        let cfg = kafka(&[
            ("KAFKA_SASL_MECHANISM", "plain"),
            ("KAFKA_SASL_USERNAME", "u"),
        ]);
        let e = client_config(&cfg, &KafkaSecrets::default(), "t").unwrap_err();
        assert!(e.starts_with("KAFKA_SASL_PASSWORD"), "{e}");
    }

    #[test]
    fn password_is_not_in_debug_output_of_secrets() {
        let secrets = KafkaSecrets::from_env(&EnvSource::from_pairs(&[(
            "KAFKA_SASL_PASSWORD",
            "hunter2",
        )]));
        assert!(secrets.sasl_password.is_some());
        assert!(!format!("{:?}", secrets.sasl_password).contains("hunter2"));
    }
}
