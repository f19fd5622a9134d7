//! Ingest replicas from Kafka consumer lag: the pure policy ([`policy`]), the KEDA
//! objects ([`keda`]) and the thin step the reconciler runs for `mode: builtin`.
//!
//! One built-in step, at most once per `pollIntervalSeconds` per resource:
//! 1. Read the ingest group's committed offsets and the end offsets of the logs and spans
//!    topics (`panopticon_kafka::group_offsets`, bounded). On failure nothing is scaled; the
//!    `AutoscalingReady` condition says why.
//! 2. [`policy::Autoscaler::decide`] with the Deployment's current replicas.
//! 3. A changed count is written through the Deployment's `/scale` subresource under the field
//!    manager [`SCALE_MANAGER`] (never by the apply of the Deployment, which leaves `replicas`
//!    out while autoscaled), with a `ScaledUp` or `ScaledDown` Event carrying the reason.
//!
//! The recommendation history lives in the operator's memory: a restarted operator waits one
//! full stabilization window before it scales down (as the HPA does).

pub mod keda;
pub mod policy;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::crd::{AutoscalingStatus, Panopticon};
use crate::provision::{self, Failure, Secrets};
use policy::{Autoscaler, Decision, PartitionLag};

/// Field manager of replica changes (through `/scale`).
pub const SCALE_MANAGER: &str = "panopticon-autoscaler";

/// The partitions of the ingest group's input topics, with their lag inputs.
pub async fn read_lag(pano: &Panopticon, secrets: &Secrets) -> Result<Vec<PartitionLag>, Failure> {
    let client = provision::kafka_client(&pano.spec, secrets).await?;
    let topics = [
        pano.spec.kafka.topics.logs.name.as_str(),
        pano.spec.kafka.topics.spans.name.as_str(),
    ];
    let offsets =
        panopticon_kafka::group_offsets(&client, &pano.spec.ingest.consumer_group, &topics)
            .await
            .map_err(|e| Failure {
                reason: "LagUnavailable",
                message: e.to_string(),
            })?;
    Ok(offsets
        .partitions
        .iter()
        .map(|p| PartitionLag {
            end: p.end,
            committed: p.committed,
        })
        .collect())
}

/// Sets the Deployment's replicas through its `/scale` subresource.
pub async fn scale(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    replicas: i32,
) -> Result<(), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(SCALE_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_scale(
        deployment,
        &params,
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    Ok(())
}

/// Makes [`SCALE_MANAGER`] a co-owner of the Deployment's `spec.replicas` at its current
/// value, by a server-side apply of that one field (the same value, so no conflict). After it,
/// an apply of the Deployment that leaves `replicas` out no longer removes the field (which
/// the API server would default to 1); Kubernetes' documented way to hand replicas to an
/// autoscaler.
pub async fn take_over_replicas(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    current: i32,
) -> Result<(), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment, "namespace": namespace},
        "spec": {"replicas": current},
    });
    api.patch(
        deployment,
        &PatchParams::apply(SCALE_MANAGER),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Whether `field_manager`'s apply owns the Deployment's `spec.replicas` (so leaving it out of
/// the next apply would remove it, and the API server would default it to 1).
pub fn applies_replicas(deployment: &Deployment, field_manager: &str) -> bool {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(field_manager))
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.fields_v1.as_ref())
        .any(|f| {
            f.0.get("f:spec")
                .and_then(|s| s.get("f:replicas"))
                .is_some()
        })
}

/// The status block of one decision.
pub fn status(
    decision: &Decision,
    current: i32,
    previous: Option<&AutoscalingStatus>,
) -> AutoscalingStatus {
    let mut s = previous.cloned().unwrap_or_default();
    s.mode = "builtin".to_owned();
    s.total_lag = Some(decision.total_lag);
    s.partitions = Some(decision.partitions);
    s.desired_replicas = Some(decision.desired);
    s.current_replicas = Some(current);
    s
}

/// How often the built-in step runs for a resource.
pub fn poll_interval(pano: &Panopticon) -> Duration {
    Duration::from_secs(
        u64::try_from(pano.spec.ingest.autoscaling.poll_interval_seconds.max(1)).unwrap_or(10),
    )
}

/// A fresh autoscaler for a resource's policy.
pub fn autoscaler(pano: &Panopticon) -> Autoscaler {
    Autoscaler::new(policy::Policy::from_spec(&pano.spec.ingest.autoscaling))
}
