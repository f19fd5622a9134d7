//! The Panopticon operator: reconciles a `Panopticon` custom resource (`panopticon.io/v1alpha1`)
//! into the four components, Elasticsearch templates, lifecycle and data streams, and Kafka
//! topics, and reports what it sees in the resource's status and Events.
//!
//! - [`crd`]: the resource, its schema defaults and CEL validation.
//! - [`render`]: spec → each component's configuration (the variables of
//!   `panopticon_model::config`), validated by the components' own parsers.
//! - [`resources`]: pure builders of the children.
//! - [`provision`]: Elasticsearch/OpenSearch and Kafka, through `panopticon-es` and
//!   `panopticon-kafka`.
//! - [`conditions`]: observations → status conditions (pure).
//! - [`controller`]: the reconcile loop (kube-runtime), finalizer, Events, backoff.
//! - [`reference`]: the configuration reference in `docs/`, generated from the declarations.

pub mod autoscale;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod provision;
pub mod reference;
pub mod render;
pub mod resources;

/// The CRD as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd::definition())
}

/// At most `max` bytes of a text, cut on a character boundary (Event notes and condition
/// messages have size limits).
pub use panopticon_es::truncate;
