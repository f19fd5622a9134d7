//! Kafka access for Panopticon's components.
//!
//! - [`client_config`]: an rdkafka `ClientConfig` from
//!   [`KafkaConfig`](panopticon_model::config::KafkaConfig) plus the SASL password read from the
//!   environment (TLS, SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512).
//! - [`OffsetTracker`]: which consumed offsets are settled, and so which offset each partition
//!   may commit. The heart of at-least-once consumption.
//! - [`ensure_topics`]: create missing topics, idempotently.

mod config;
mod offsets;
mod topics;

pub use config::{KafkaSecrets, client_config};
pub use offsets::{OffsetTracker, PartitionKey};
pub use topics::ensure_topics;
