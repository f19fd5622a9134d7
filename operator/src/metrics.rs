//! The operator's Prometheus metrics (`panopticon_operator_*`).

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub condition: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    /// Resources whose condition is False, by condition (after their last reconcile).
    pub not_ready: Family<ConditionLabels, Gauge>,
    pub leader: Gauge,
    /// Ingest's consumer lag as the built-in autoscaler last read it.
    pub ingest_lag: Family<ResourceLabels, Gauge>,
    /// The built-in autoscaler's last decision.
    pub ingest_desired_replicas: Family<ResourceLabels, Gauge>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            not_ready: Family::default(),
            leader: Gauge::default(),
            ingest_lag: Family::default(),
            ingest_desired_replicas: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("panopticon_operator");
        r.register("reconciles", "Reconciles run", m.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciles that failed or found a failure, by reason",
            m.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            m.duration.clone(),
        );
        r.register(
            "resources_not_ready",
            "Panopticon resources whose condition is False",
            m.not_ready.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease",
            m.leader.clone(),
        );
        r.register(
            "ingest_lag",
            "Ingest consumer lag (sum over its partitions) at the last autoscaler poll",
            m.ingest_lag.clone(),
        );
        r.register(
            "ingest_desired_replicas",
            "Ingest replicas the built-in autoscaler last decided",
            m.ingest_desired_replicas.clone(),
        );
        m
    }

    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts the reconcile and observes its duration when dropped.
    pub fn timer(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            started: Instant::now(),
            metrics: self,
        }
    }
}

pub struct ReconcileTimer<'a> {
    started: Instant,
    metrics: &'a Metrics,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// One Panopticon resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub namespace: String,
    pub name: String,
}

impl ResourceLabels {
    pub fn of(pano: &crate::crd::Panopticon) -> Self {
        Self {
            namespace: pano.metadata.namespace.clone().unwrap_or_default(),
            name: pano.metadata.name.clone().unwrap_or_default(),
        }
    }
}
