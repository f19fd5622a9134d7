//! Component configuration: plain serde types, read from environment variables whose names are
//! the seed's where the seed had one (spec/seed-behaviour.md §9), so operations knowledge
//! carries over. The operator renders the same variables ([`ToEnv`]), so the names live in one
//! place only.
//!
//! Secrets (passwords, API keys) are not part of these types: components read them from the
//! environment or a mounted file into redacting types, and the operator passes them as
//! `secretKeyRef` environment variables, never through a ConfigMap.

mod alert;
mod elasticsearch;
mod env;
mod ingest;
mod kafka;
mod query;
mod rollup;

pub use alert::AlertConfig;
pub use elasticsearch::{ElasticsearchConfig, StreamNames};
pub use env::{ConfigError, EnvSource, ToEnv};
pub use ingest::{BulkConfig, IngestConfig};
pub use kafka::{KafkaConfig, SaslMechanism};
pub use query::{CacheConfig, MetricsQueryConfig, QueryConfig};
pub use rollup::{ElectionMode, LeaderElection, RollupConfig};
