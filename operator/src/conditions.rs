//! From what one reconcile observed to the resource's status conditions (pure).
//!
//! | type | True means | False means |
//! |---|---|---|
//! | `ElasticsearchReady` | templates, lifecycle and data streams are in place | the cluster failed or refused; the message has the cause |
//! | `KafkaReady` | the topics exist as specified | Kafka failed or refused |
//! | `ComponentsReady` | every Deployment has all its replicas ready and updated | replicas missing |
//! | `RetentionEnforced` | ILM/ISM policies delete old data | no lifecycle support: data is never deleted |
//! | `Progressing` | a rollout or a provisioning step is still under way | nothing left to do |
//! | `Degraded` | something failed that the operator cannot fix alone | — |
//! | `Paused` | `spec.paused`: nothing is reconciled | — |
//! | `Ready` | the three `*Ready` conditions are True | the first that is not, with its reason |
//!
//! Every condition carries the generation it describes; `lastTransitionTime` moves only when
//! the condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::ComponentStatus;
use crate::render::Component;

/// A condition before times and generations are stamped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Observed {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The outcome of one area (Elasticsearch or Kafka) in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    Ready { message: String },
    Failed { reason: String, message: String },
}

/// Everything a reconcile observed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The spec cannot be rendered (a field the component would refuse).
    pub invalid_spec: Option<String>,
    pub paused: bool,
    pub elasticsearch: Area,
    pub kafka: Area,
    /// `None`: lifecycle policies are in place; `Some(why not)`.
    pub retention_not_enforced: Option<String>,
    pub components: Vec<(Component, ComponentStatus)>,
}

/// The conditions an observation leads to, in a stable order.
pub fn evaluate(o: &Observation) -> Vec<Observed> {
    let mut out = Vec::new();
    if o.paused {
        out.push(Observed::new(
            "Paused",
            true,
            "ReconciliationPaused",
            "spec.paused is true: children, Elasticsearch and Kafka are left as they are",
        ));
    } else {
        out.push(Observed::new("Paused", false, "ReconciliationActive", ""));
    }
    if let Some(why) = &o.invalid_spec {
        for t in ["ElasticsearchReady", "KafkaReady", "ComponentsReady"] {
            out.push(Observed::new(t, false, "InvalidSpec", why.clone()));
        }
        out.push(Observed::new(
            "Progressing",
            false,
            "InvalidSpec",
            why.clone(),
        ));
        out.push(Observed::new("Degraded", true, "InvalidSpec", why.clone()));
        out.push(Observed::new("Ready", false, "InvalidSpec", why.clone()));
        return out;
    }
    let area = |t: &'static str, a: &Area| match a {
        Area::Ready { message } => Observed::new(t, true, "Provisioned", message.clone()),
        Area::Failed { reason, message } => {
            Observed::new(t, false, reason.clone(), message.clone())
        }
    };
    let es = area("ElasticsearchReady", &o.elasticsearch);
    let kafka = area("KafkaReady", &o.kafka);
    let waiting: Vec<String> = o
        .components
        .iter()
        .filter(|(_, s)| {
            s.ready_replicas < s.desired_replicas || s.updated_replicas < s.desired_replicas
        })
        .map(|(c, s)| {
            format!(
                "{} {}/{} ready, {} updated",
                c.as_str(),
                s.ready_replicas,
                s.desired_replicas,
                s.updated_replicas
            )
        })
        .collect();
    let components = if waiting.is_empty() {
        let summary: Vec<String> = o
            .components
            .iter()
            .map(|(c, s)| format!("{} {}", c.as_str(), s.replicas))
            .collect();
        Observed::new(
            "ComponentsReady",
            true,
            "ReplicasReady",
            format!("all replicas ready: {}", summary.join(", ")),
        )
    } else {
        Observed::new(
            "ComponentsReady",
            false,
            "ReplicasNotReady",
            format!("waiting for {}", waiting.join("; ")),
        )
    };
    let retention = match &o.retention_not_enforced {
        None => Observed::new(
            "RetentionEnforced",
            true,
            "LifecyclePoliciesApplied",
            "lifecycle policies delete data older than each stream's retention",
        ),
        Some(why) => Observed::new(
            "RetentionEnforced",
            false,
            "LifecycleUnavailable",
            why.clone(),
        ),
    };
    let failed: Vec<&Observed> = [&es, &kafka].into_iter().filter(|c| !c.status).collect();
    let degraded = match failed.first() {
        Some(first) => Observed::new(
            "Degraded",
            true,
            first.reason.clone(),
            failed
                .iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => Observed::new("Degraded", false, "AsExpected", ""),
    };
    let progressing = if !components.status {
        Observed::new(
            "Progressing",
            true,
            "RollingOut",
            components.message.clone(),
        )
    } else if !failed.is_empty() {
        Observed::new(
            "Progressing",
            false,
            "Blocked",
            "waiting for Elasticsearch or Kafka; retrying with backoff",
        )
    } else {
        Observed::new("Progressing", false, "ReconcileComplete", "")
    };
    let ready = match [&es, &kafka, &components].into_iter().find(|c| !c.status) {
        None => Observed::new(
            "Ready",
            true,
            "AllReady",
            "Elasticsearch, Kafka and all components are ready",
        ),
        Some(c) => Observed::new(
            "Ready",
            false,
            c.reason.clone(),
            format!("{}: {}", c.type_, c.message),
        ),
    };
    out.extend([
        es,
        kafka,
        components,
        retention,
        progressing,
        degraded,
        ready,
    ]);
    out
}

/// Stamps generation and times: a condition whose status did not change keeps its
/// `lastTransitionTime`. Conditions of other types in `previous` are kept (others may own
/// them).
pub fn merge(
    previous: &[Condition],
    observed: &[Observed],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = observed
        .iter()
        .map(|o| {
            let status = if o.status { "True" } else { "False" }.to_owned();
            let since = previous
                .iter()
                .find(|p| p.type_ == o.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: o.type_.to_owned(),
                status,
                reason: o.reason.clone(),
                message: crate::truncate(&o.message, 32_000),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect();
    for p in previous {
        if !merged.iter().any(|m| m.type_ == p.type_) {
            merged.push(p.clone());
        }
    }
    merged
}

/// The status of one condition type, if present.
pub fn is_true(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(desired: i32, ready: i32, updated: i32) -> ComponentStatus {
        ComponentStatus {
            desired_replicas: desired,
            ready_replicas: ready,
            updated_replicas: updated,
            replicas: format!("{ready}/{desired}"),
        }
    }

    fn healthy() -> Observation {
        Observation {
            invalid_spec: None,
            paused: false,
            elasticsearch: Area::Ready {
                message: "OpenSearch 2.19.3".to_owned(),
            },
            kafka: Area::Ready {
                message: "4 topics".to_owned(),
            },
            retention_not_enforced: None,
            components: Component::ALL
                .iter()
                .map(|c| (*c, replicas(2, 2, 2)))
                .collect(),
        }
    }

    fn get<'a>(c: &'a [Observed], t: &str) -> &'a Observed {
        c.iter().find(|o| o.type_ == t).unwrap()
    }

    #[test]
    fn all_ready_is_ready_and_not_degraded() {
        let c = evaluate(&healthy());
        assert!(get(&c, "Ready").status);
        assert!(!get(&c, "Degraded").status);
        assert!(!get(&c, "Progressing").status);
        assert_eq!(get(&c, "ComponentsReady").reason, "ReplicasReady");
    }

    #[test]
    fn a_rollout_is_progressing_and_not_ready() {
        let mut o = healthy();
        o.components[2].1 = replicas(2, 2, 1);
        let c = evaluate(&o);
        assert!(get(&c, "Progressing").status);
        assert!(!get(&c, "Ready").status);
        assert_eq!(get(&c, "Ready").reason, "ReplicasNotReady");
        assert!(
            get(&c, "Ready")
                .message
                .contains("query 2/2 ready, 1 updated")
        );
        assert!(!get(&c, "Degraded").status, "a rollout is not a failure");
    }

    #[test]
    fn an_unreachable_cluster_degrades_with_its_cause() {
        let mut o = healthy();
        o.kafka = Area::Failed {
            reason: "KafkaUnreachable".to_owned(),
            message: "cannot reach Kafka at k:9092: timed out".to_owned(),
        };
        let c = evaluate(&o);
        assert!(!get(&c, "KafkaReady").status);
        assert!(get(&c, "ElasticsearchReady").status);
        let degraded = get(&c, "Degraded");
        assert!(degraded.status);
        assert_eq!(degraded.reason, "KafkaUnreachable");
        assert!(degraded.message.contains("k:9092"));
        assert_eq!(get(&c, "Ready").reason, "KafkaUnreachable");
    }

    #[test]
    fn an_invalid_spec_names_the_field_everywhere() {
        let mut o = healthy();
        o.invalid_spec = Some("spec.ingest.bulkBatchMb: must hold one batch".to_owned());
        let c = evaluate(&o);
        for t in [
            "Ready",
            "ElasticsearchReady",
            "KafkaReady",
            "ComponentsReady",
        ] {
            assert!(!get(&c, t).status, "{t}");
            assert!(get(&c, t).message.contains("spec.ingest.bulkBatchMb"));
        }
        assert!(get(&c, "Degraded").status);
    }

    #[test]
    fn missing_lifecycle_does_not_block_ready() {
        let mut o = healthy();
        o.retention_not_enforced = Some("no ISM plugin".to_owned());
        let c = evaluate(&o);
        assert!(!get(&c, "RetentionEnforced").status);
        assert!(get(&c, "Ready").status);
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
        let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
        let first = merge(&[], &evaluate(&healthy()), Some(1), &t0);
        let mut o = healthy();
        o.kafka = Area::Failed {
            reason: "KafkaUnreachable".to_owned(),
            message: "down".to_owned(),
        };
        let second = merge(&first, &evaluate(&o), Some(2), &t1);
        let by_type =
            |cs: &[Condition], t: &str| cs.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_eq!(
            by_type(&second, "ElasticsearchReady").last_transition_time,
            t0
        );
        assert_eq!(by_type(&second, "KafkaReady").last_transition_time, t1);
        assert_eq!(by_type(&second, "Ready").observed_generation, Some(2));
        // A foreign condition survives.
        let mut with_foreign = first.clone();
        with_foreign.push(Condition {
            type_: "Autoscaling".to_owned(),
            status: "True".to_owned(),
            reason: "X".to_owned(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: t0.clone(),
        });
        let third = merge(&with_foreign, &evaluate(&healthy()), Some(3), &t1);
        assert!(third.iter().any(|c| c.type_ == "Autoscaling"));
    }
}
