//! Rollup's Prometheus metrics, registered under the `panopticon_rollup` prefix.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollLabel {
    /// `first` (the window had not been rolled up) or `again` (late spans arrived).
    pub roll: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    /// Which cap folded the spans: `service`, `environment` or `endpoint`.
    pub level: &'static str,
}

/// Every metric of rollup. Cheap to clone (handles).
#[derive(Clone)]
pub struct Metrics {
    pub windows_rolled: Family<RollLabel, Counter>,
    pub window_seconds: Histogram,
    pub documents_written: Counter,
    pub documents_removed: Counter,
    pub spans_rolled: Counter,
    pub overflow_spans: Family<LevelLabel, Counter>,
    pub unaccounted_spans: Counter,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub leader: Gauge,
    pub cycle_errors: Counter,
    pub checkpoint_conflicts: Counter,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            windows_rolled: Family::default(),
            window_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            documents_written: Counter::default(),
            documents_removed: Counter::default(),
            spans_rolled: Counter::default(),
            overflow_spans: Family::default(),
            unaccounted_spans: Counter::default(),
            lag_seconds: Gauge::default(),
            leader: Gauge::default(),
            cycle_errors: Counter::default(),
            checkpoint_conflicts: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("panopticon_rollup");
        r.register(
            "windows_rolled",
            "Windows rolled up, first time or again after late spans",
            m.windows_rolled.clone(),
        );
        r.register(
            "window_duration_seconds",
            "Time to roll up one window (aggregate, write, checkpoint)",
            m.window_seconds.clone(),
        );
        r.register(
            "documents_written",
            "Rollup documents written (created or replaced)",
            m.documents_written.clone(),
        );
        r.register(
            "documents_removed",
            "Rollup documents of an earlier roll that a re-roll no longer has",
            m.documents_removed.clone(),
        );
        r.register(
            "spans_rolled",
            "SERVER spans aggregated (a re-rolled window counts again)",
            m.spans_rolled.clone(),
        );
        r.register(
            "overflow_spans",
            "Spans folded into an overflow series by a cardinality cap, by level",
            m.overflow_spans.clone(),
        );
        r.register(
            "unaccounted_spans",
            "Spans of a window that no series counted (should stay 0)",
            m.unaccounted_spans.clone(),
        );
        r.register(
            "lag_seconds",
            "Wall clock minus the checkpoint's watermark (lateness included)",
            m.lag_seconds.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the one rolling up",
            m.leader.clone(),
        );
        r.register(
            "cycle_errors",
            "Cycles that stopped on an error (retried next cycle)",
            m.cycle_errors.clone(),
        );
        r.register(
            "checkpoint_conflicts",
            "Checkpoint saves that found another roller's save",
            m.checkpoint_conflicts.clone(),
        );
        m
    }
}
