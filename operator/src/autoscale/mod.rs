//! Ingest replicas from Kafka consumer lag (issue #8): the pure policy ([`policy`]) and the
//! loop around it.

pub mod policy;
