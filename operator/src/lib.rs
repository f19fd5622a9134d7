//! The Panopticon operator: reconciles a `Panopticon` custom resource into the four components,
//! Elasticsearch templates and lifecycle, and Kafka topics (issue #7), and scales ingest from
//! consumer lag (issue #8).
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
