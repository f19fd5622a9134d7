use serde::{Deserialize, Serialize};

use super::elasticsearch::ElasticsearchConfig;
use super::env::{ConfigError, EnvSource, ToEnv};
use super::vars::*;

/// Everything `panopticon rollup` reads. A value that cannot be used is an error naming the
/// variable, never a silent default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupConfig {
    pub elasticsearch: ElasticsearchConfig,
    /// `ROLLUP_AGGREGATOR_ENABLED`. When false the process stays up, idle.
    pub enabled: bool,
    /// Window length (`ROLLUP_BUCKET_SECONDS`; must divide a day).
    pub bucket_seconds: u32,
    /// Cycle period (`ROLLUP_POLL_INTERVAL_MS`).
    pub poll_interval_ms: u64,
    /// How long after its end a window is first rolled up (`ROLLUP_LATENESS_SECONDS`, default
    /// 120): spans reach Elasticsearch after Kafka lag, a bulk flush and a refresh.
    pub lateness_seconds: u64,
    /// How long after its first roll-up a window is watched for late spans and rolled up again
    /// when its span count changes (`ROLLUP_LATE_HORIZON_MINUTES`).
    pub late_horizon_minutes: u64,
    /// Catch-up depth when there is no checkpoint (`ROLLUP_INITIAL_LOOKBACK_MINUTES`).
    pub initial_lookback_minutes: u64,
    /// Most windows rolled up per cycle (`ROLLUP_MAX_WINDOWS_PER_CYCLE`), so a
    /// catch-up after an outage makes steady progress without one endless cycle.
    pub max_windows_per_cycle: usize,
    /// Services kept per window (`ROLLUP_MAX_SERVICE_BUCKETS`); the rest fold into
    /// the overflow series.
    pub max_services: usize,
    /// Environments kept per service and window (`ROLLUP_MAX_ENV_BUCKETS`).
    pub max_environments: usize,
    /// Endpoints kept per service, environment and window (`ROLLUP_MAX_ENDPOINT_BUCKETS`,
    /// default 100).
    pub max_endpoints: usize,
    /// Index holding the checkpoint (`ROLLUP_CHECKPOINT_INDEX`).
    pub checkpoint_index: String,
    pub leader_election: LeaderElection,
}

/// How a replica decides that it is the one rolling up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderElection {
    /// `ROLLUP_LEADER_ELECTION`: `auto` (default: a Lease when running in Kubernetes), `lease`,
    /// or `off` (this process always rolls up).
    pub mode: ElectionMode,
    /// `ROLLUP_LEASE_NAME`.
    pub lease_name: String,
    /// `ROLLUP_LEASE_NAMESPACE`, else `POD_NAMESPACE`, then the service account's namespace.
    pub lease_namespace: Option<String>,
    /// `ROLLUP_LEASE_DURATION_SECONDS`, default 15 (client-go's): how long a silent leader
    /// keeps the lease. It renews every third of it.
    pub lease_duration_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElectionMode {
    Auto,
    Lease,
    Off,
}

impl ElectionMode {
    fn as_str(self) -> &'static str {
        match self {
            ElectionMode::Auto => "auto",
            ElectionMode::Lease => "lease",
            ElectionMode::Off => "off",
        }
    }
}

impl RollupConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let mode = match env
            .text(&ROLLUP_LEADER_ELECTION)
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" => ElectionMode::Auto,
            "lease" => ElectionMode::Lease,
            "off" => ElectionMode::Off,
            other => {
                return Err(ConfigError::new(
                    ROLLUP_LEADER_ELECTION.name,
                    format!("must be auto, lease or off, got {other:?}"),
                ));
            }
        };
        let bucket_seconds: u32 = env.at_least(&ROLLUP_BUCKET_SECONDS, 1)?;
        if 86_400 % bucket_seconds != 0 {
            return Err(ConfigError::new(
                ROLLUP_BUCKET_SECONDS.name,
                format!(
                    "must divide a day (86400) so windows never straddle a daily index, got {bucket_seconds}"
                ),
            ));
        }
        let config = Self {
            elasticsearch: ElasticsearchConfig::from_env(env)?,
            enabled: env.bool(&ROLLUP_AGGREGATOR_ENABLED)?,
            bucket_seconds,
            poll_interval_ms: env.at_least(&ROLLUP_POLL_INTERVAL_MS, 100)?,
            lateness_seconds: env.parse(&ROLLUP_LATENESS_SECONDS)?,
            late_horizon_minutes: env.parse(&ROLLUP_LATE_HORIZON_MINUTES)?,
            initial_lookback_minutes: env.parse(&ROLLUP_INITIAL_LOOKBACK_MINUTES)?,
            max_windows_per_cycle: env.at_least(&ROLLUP_MAX_WINDOWS_PER_CYCLE, 1)?,
            max_services: env.at_least(&ROLLUP_MAX_SERVICE_BUCKETS, 1)?,
            max_environments: env.at_least(&ROLLUP_MAX_ENV_BUCKETS, 1)?,
            max_endpoints: env.at_least(&ROLLUP_MAX_ENDPOINT_BUCKETS, 1)?,
            checkpoint_index: env.text(&ROLLUP_CHECKPOINT_INDEX),
            leader_election: LeaderElection {
                mode,
                lease_name: env.text(&ROLLUP_LEASE_NAME),
                lease_namespace: env
                    .value(&ROLLUP_LEASE_NAMESPACE)
                    .or_else(|| env.value(&POD_NAMESPACE)),
                lease_duration_seconds: env.at_least(&ROLLUP_LEASE_DURATION_SECONDS, 3)?,
            },
        };
        // The aggregation of one (service, environment) may ask for this many buckets; the
        // engine's default `search.max_buckets` is 65 535.
        if config.max_services * config.max_environments > 10_000 {
            return Err(ConfigError::new(
                format!(
                    "{}/{}",
                    ROLLUP_MAX_SERVICE_BUCKETS.name, ROLLUP_MAX_ENV_BUCKETS.name
                ),
                format!(
                    "their product must be at most 10000, got {} x {}",
                    config.max_services, config.max_environments
                ),
            ));
        }
        if config.max_endpoints > 10_000 {
            return Err(ConfigError::new(
                ROLLUP_MAX_ENDPOINT_BUCKETS.name,
                format!("must be at most 10000, got {}", config.max_endpoints),
            ));
        }
        Ok(config)
    }
}

impl ToEnv for RollupConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = self.elasticsearch.to_env();
        let le = &self.leader_election;
        vars.extend([
            (ROLLUP_AGGREGATOR_ENABLED.name, self.enabled.to_string()),
            (ROLLUP_BUCKET_SECONDS.name, self.bucket_seconds.to_string()),
            (
                ROLLUP_POLL_INTERVAL_MS.name,
                self.poll_interval_ms.to_string(),
            ),
            (
                ROLLUP_LATENESS_SECONDS.name,
                self.lateness_seconds.to_string(),
            ),
            (
                ROLLUP_LATE_HORIZON_MINUTES.name,
                self.late_horizon_minutes.to_string(),
            ),
            (
                ROLLUP_INITIAL_LOOKBACK_MINUTES.name,
                self.initial_lookback_minutes.to_string(),
            ),
            (
                ROLLUP_MAX_WINDOWS_PER_CYCLE.name,
                self.max_windows_per_cycle.to_string(),
            ),
            (
                ROLLUP_MAX_SERVICE_BUCKETS.name,
                self.max_services.to_string(),
            ),
            (
                ROLLUP_MAX_ENV_BUCKETS.name,
                self.max_environments.to_string(),
            ),
            (
                ROLLUP_MAX_ENDPOINT_BUCKETS.name,
                self.max_endpoints.to_string(),
            ),
            (ROLLUP_CHECKPOINT_INDEX.name, self.checkpoint_index.clone()),
            (ROLLUP_LEADER_ELECTION.name, le.mode.as_str().to_owned()),
            (ROLLUP_LEASE_NAME.name, le.lease_name.clone()),
            (
                ROLLUP_LEASE_DURATION_SECONDS.name,
                le.lease_duration_seconds.to_string(),
            ),
        ]);
        if let Some(ns) = &le.lease_namespace {
            vars.push((ROLLUP_LEASE_NAMESPACE.name, ns.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RollupConfig::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(c.bucket_seconds, 60);
        assert_eq!(c.lateness_seconds, 120);
        assert_eq!(c.max_services, 200);
        assert_eq!(c.leader_election.mode, ElectionMode::Auto);
        assert_eq!(c.checkpoint_index, ".metrics-rollup-state");
    }

    #[test]
    fn renders_what_it_reads() {
        let pairs = [
            ("ROLLUP_BUCKET_SECONDS", "300"),
            ("ROLLUP_LEADER_ELECTION", "LEASE"),
            ("POD_NAMESPACE", "apm"),
            ("ROLLUP_MAX_ENDPOINT_BUCKETS", "7"),
        ];
        let c = RollupConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
        assert_eq!(c.leader_election.lease_namespace.as_deref(), Some("apm"));
        let rendered = c.to_env();
        let back = RollupConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ROLLUP_BUCKET_SECONDS", "7"),
            ("ROLLUP_BUCKET_SECONDS", "0"),
            ("ROLLUP_LEADER_ELECTION", "maybe"),
            ("ROLLUP_LATENESS_SECONDS", "-1"),
            ("ROLLUP_MAX_ENDPOINT_BUCKETS", "20000"),
            ("ROLLUP_AGGREGATOR_ENABLED", "perhaps"),
        ] {
            let pairs = [(var, value)];
            let e = RollupConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
        let pairs = [
            ("ROLLUP_MAX_SERVICE_BUCKETS", "1000"),
            ("ROLLUP_MAX_ENV_BUCKETS", "20"),
        ];
        let e = RollupConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap_err();
        assert!(e.var.contains("ROLLUP_MAX_SERVICE_BUCKETS"), "{e}");
    }
}
