//! Kafka access for Panopticon's components.
//!
//! - [`client_config`]: an rdkafka `ClientConfig` from
//!   [`KafkaConfig`](panopticon_model::config::KafkaConfig) plus the SASL password read from the
//!   environment (TLS, SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512).
//! - [`OffsetTracker`]: which consumed offsets are settled, and so which offset each partition
//!   may commit. The heart of at-least-once consumption.
//! - [`ensure_topics`]: create missing topics, idempotently (what the components call at
//!   start-up).
//! - [`reconcile_topics`] and [`delete_topics`]: what the operator calls to bring the topics a
//!   `Panopticon` resource declares ([`TopicPlan`]: partitions, replication factor, retention)
//!   into the cluster and, with `deletionPolicy: Delete`, to remove them. Partitions are only
//!   ever raised; every broker round trip is bounded (about ten seconds); failures are
//!   [`TopicError`]s whose messages name the topic and the cause. [`reconcile_topics`] says why
//!   a retention change resends the topic's other dynamic settings; the `topics` module source
//!   explains its observe → pure plan → execute split.
//! - [`group_offsets`]: a consumer group's committed offset and each partition's end offset
//!   ([`GroupOffsets`]), what the operator's ingest autoscaler computes lag from. Read-only (the
//!   group is never joined, nothing is committed) and bounded by [`GROUP_OFFSETS_TIMEOUT`];
//!   failures are [`LagError`]s whose messages name the group, topic or brokers and the cause.

mod config;
mod lag;
mod offsets;
mod topics;

pub use config::{KafkaSecrets, client_config};
pub use lag::{GROUP_OFFSETS_TIMEOUT, GroupOffsets, LagError, PartitionOffsets, group_offsets};
pub use offsets::{OffsetTracker, PartitionKey};
pub use topics::{
    ADMIN_OPERATION_TIMEOUT, ADMIN_REQUEST_TIMEOUT, METADATA_TIMEOUT, TopicError, TopicOperation,
    TopicPlan, TopicsReport, Unreachable, check_topics, delete_topics, ensure_topics,
    reconcile_topics,
};
