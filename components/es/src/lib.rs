//! Elasticsearch/OpenSearch client wrapper: bulk, search, bootstrap of templates, lifecycle policies and data streams. Filled by issue #3 (ingest).
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
