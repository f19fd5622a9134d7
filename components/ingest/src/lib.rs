//! The ingest component: Kafka → Elasticsearch/OpenSearch, at-least-once. Built in issue #3.
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
