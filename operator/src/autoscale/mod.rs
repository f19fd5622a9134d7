//! Ingest replicas from Kafka consumer lag (issue #8): the pure policy ([`policy`]), the KEDA
//! objects ([`keda`]) and the loop around them.

pub mod keda;
pub mod policy;
