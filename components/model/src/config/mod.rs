//! Component configuration: plain serde types, read from environment variables. Each variable
//! is declared once in [`vars`] (name, default, meaning, secrecy; see [`var`] for the form):
//! `from_env` reads through the declarations, [`ToEnv`] renders by their names (the operator
//! renders with it), and `--help`, the configuration reference and the CRD's defaults come from
//! them too.
//!
//! Secrets (passwords, API keys, tokens) are not part of these types: components read them with
//! [`EnvSource::secret`] into redacting types, and the operator passes them as `secretKeyRef`
//! environment variables, never through a ConfigMap.

#[cfg(test)]
mod agreement;
mod alert;
mod elasticsearch;
mod env;
mod ingest;
mod kafka;
mod query;
pub mod retired;
mod rollup;
pub mod var;
pub mod vars;

pub use alert::AlertConfig;
pub use elasticsearch::{ElasticsearchConfig, StreamNames};
pub use env::{ConfigError, EnvSource, ToEnv};
pub use ingest::{BulkConfig, IngestConfig};
pub use kafka::{KafkaConfig, SaslMechanism};
pub use query::{CacheConfig, MetricsQueryConfig, QueryConfig};
pub use rollup::{ElectionMode, LeaderElection, RollupConfig};
