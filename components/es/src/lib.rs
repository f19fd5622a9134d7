//! Elasticsearch/OpenSearch access for Panopticon's components.
//!
//! - [`EsClient`]: one client per process, built from
//!   [`ElasticsearchConfig`](panopticon_model::config::ElasticsearchConfig) plus the secrets read
//!   from the environment (basic auth or API key, CA file, verification switch); detects whether
//!   it talks to Elasticsearch or OpenSearch.
//! - [`bulk`]: building `_bulk create` bodies and classifying every item of the response into
//!   created, duplicate (409, absorbed), retryable (429/5xx) or rejected (other 4xx, with the
//!   engine's reason). Pure, so it is unit-tested without a server.
//! - [`bootstrap`]: index templates and data streams, idempotent and safe when several
//!   replicas start at once. The operator will own them through the same code.

pub mod bootstrap;
pub mod bulk;
mod client;
pub mod templates;

pub use client::{EsClient, EsError, EsSecrets, Flavour, truncate};
