//! Kafka consumer with ack-tracked offsets, producer, and security configuration. Filled by issue #3 (ingest).
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
