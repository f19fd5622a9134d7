//! Elasticsearch/OpenSearch access for Panopticon's components.
//!
//! - [`EsClient`]: one client per process, built from
//!   [`ElasticsearchConfig`](panopticon_model::config::ElasticsearchConfig) plus the secrets read
//!   from the environment or Kubernetes Secrets (basic auth or API key, CA as a file or as PEM
//!   bytes, verification switch); detects whether it talks to Elasticsearch or OpenSearch, and
//!   which version ([`EsClient::info`]).
//! - [`bulk`]: building `_bulk create` bodies and classifying every item of the response into
//!   created, duplicate (409, absorbed), retryable (429/5xx) or rejected (other 4xx, with the
//!   engine's reason). Pure, so it is unit-tested without a server.
//! - [`bootstrap`]: index templates and data streams as components create them when they run
//!   standalone, idempotent and safe when several replicas start at once.
//! - [`provision`]: what the operator calls: index templates with lifecycle settings,
//!   lifecycle policies (ILM on Elasticsearch, ISM on OpenSearch) and data streams, written only
//!   when they differ from the plan, and removed for `deletionPolicy: Delete`.
//! - [`templates`]: the index template bodies and field mappings.

pub mod bootstrap;
pub mod bulk;
mod client;
pub mod provision;
pub mod templates;

pub use client::{ClusterInfo, EsClient, EsError, EsSecrets, Flavour, truncate};
