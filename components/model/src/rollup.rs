//! Rollup documents: one per series and window, written by `rollup`, read by `query`.
//!
//! A window is `[start, start + bucket)`, aligned to multiples of the bucket since the epoch. Two
//! kinds of series are rolled up for every window:
//! - `service`: per (service, environment), the `metrics-apm` document the dashboard reads
//!   (the NestJS backend's fields) plus the new fields;
//! - `endpoint`: per (service, environment, endpoint = span name).
//!
//! Each document carries a mergeable latency sketch ([`StoredSketch`], DDSketch buckets at 1 %
//! relative accuracy) with exact count, min, max and sum, so a coarser interval or a union of
//! environments or endpoints is computed by merging sketches ([`RollupDocument::sketch`]), never
//! by averaging percentiles.
//!
//! Series beyond the cardinality caps are folded into overflow series: their service,
//! environment and/or endpoint is [`OVERFLOW_KEY`] and `overflow` is true.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids;
use crate::sketch::{RELATIVE_ACCURACY, Sketch};
use crate::timestamp::format_timestamp;

/// What stands for the folded values of an overflow series (Elastic APM's convention).
pub const OVERFLOW_KEY: &str = "_other";

/// A window of `bucket_seconds`, starting at `start_ms` (epoch milliseconds, aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: i64,
    pub bucket_seconds: u32,
}

impl Window {
    /// The window that contains `t_ms`.
    pub fn containing(t_ms: i64, bucket_seconds: u32) -> Self {
        let len = i64::from(bucket_seconds) * 1000;
        Self {
            start_ms: t_ms.div_euclid(len) * len,
            bucket_seconds,
        }
    }

    pub fn len_ms(&self) -> i64 {
        i64::from(self.bucket_seconds) * 1000
    }

    /// Exclusive end.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.len_ms()
    }

    pub fn next(&self) -> Self {
        Self {
            start_ms: self.end_ms(),
            bucket_seconds: self.bucket_seconds,
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.start_ms).unwrap_or_default()
    }

    pub fn end(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.end_ms()).unwrap_or_default()
    }

    /// The UTC day of the window's start, `YYYY.MM.DD`: the partition its documents live in.
    pub fn partition_day(&self) -> String {
        self.start().format("%Y.%m.%d").to_string()
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}~{}",
            format_timestamp(&self.start()),
            format_timestamp(&self.end())
        )
    }
}

/// Which series a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesKind {
    Service,
    Endpoint,
}

impl SeriesKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::Service => "service",
            SeriesKind::Endpoint => "endpoint",
        }
    }
}

/// Where rollup documents live. Plain indices, one per (series kind, bucket length, UTC day of
/// the window), instead of a data stream: a window always maps to the same index, so
/// re-rolling it replaces its documents by id, also after the day's index is full or old (in a
/// data stream, ids are unique per backing index only, so a re-roll after a rollover would
/// duplicate). Readers use the aliases: `metrics-apm` (the name the dashboard's backend always
/// read) covers the service series, `metrics-apm-endpoints` the endpoint series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupIndices {
    /// The configured rollup stream name (`ELASTICSEARCH_APM_ROLLUP_STREAM`, `metrics-apm`).
    pub base: String,
}

impl RollupIndices {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
        }
    }

    /// The read alias of a series kind.
    pub fn alias(&self, kind: SeriesKind) -> String {
        match kind {
            SeriesKind::Service => self.base.clone(),
            SeriesKind::Endpoint => format!("{}-endpoints", self.base),
        }
    }

    /// The pattern every index of a series kind matches (for templates).
    pub fn pattern(&self, kind: SeriesKind) -> String {
        format!("{}-{}-*", self.base, kind.as_str())
    }

    /// The index holding a window's documents of a series kind.
    pub fn index(&self, kind: SeriesKind, window: &Window) -> String {
        format!(
            "{}-{}-{}s-{}",
            self.base,
            kind.as_str(),
            window.bucket_seconds,
            window.partition_day()
        )
    }
}

/// A latency sketch as stored: bucket indexes with their counts (parallel arrays, ascending),
/// plus the number of zero durations. Not indexed (`enabled: false`); readers merge it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredSketch {
    /// Relative accuracy the buckets were computed with.
    pub alpha: f64,
    pub index: Vec<i32>,
    pub count: Vec<u64>,
    pub zeros: u64,
}

/// One rollup document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupDocument {
    /// Window start.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Window start (what readers sort and filter on).
    #[serde(rename = "@timestamp_bucket")]
    pub timestamp_bucket: String,
    pub bucket_duration_seconds: u32,
    pub series: SeriesKind,
    pub service_name: String,
    pub environment: String,
    /// The span name, for endpoint series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The endpoint again, in the `target` field the index template has always mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether this series folds values beyond the cardinality caps.
    pub overflow: bool,
    pub request_count: u64,
    pub error_count: u64,
    pub error_rate: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_min_ms: f64,
    pub latency_max_ms: f64,
    pub latency_sum_ms: f64,
    pub latency_sketch: StoredSketch,
    pub source_window_from: String,
    pub source_window_to: String,
    /// When this document was computed.
    #[serde(rename = "ingestedAt")]
    pub ingested_at: String,
}

/// The measurements of one series in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesStats {
    pub errors: u64,
    /// Durations, with exact count, min, max and sum.
    pub sketch: Sketch,
}

impl SeriesStats {
    pub fn merge(&mut self, other: &SeriesStats) {
        self.errors += other.errors;
        self.sketch.merge(&other.sketch);
    }
}

impl RollupDocument {
    /// Builds the document of a series.
    pub fn new(
        window: &Window,
        kind: SeriesKind,
        key: [&str; 3],
        overflow: bool,
        stats: &SeriesStats,
        now: &DateTime<Utc>,
    ) -> Self {
        let start = format_timestamp(&window.start());
        let s = &stats.sketch;
        let q = |q: f64| s.quantile(q).unwrap_or(0.0);
        let endpoint = (kind == SeriesKind::Endpoint).then(|| key[2].to_owned());
        Self {
            timestamp: start.clone(),
            timestamp_bucket: start.clone(),
            bucket_duration_seconds: window.bucket_seconds,
            series: kind,
            service_name: key[0].to_owned(),
            environment: key[1].to_owned(),
            target: endpoint.clone(),
            endpoint,
            overflow,
            request_count: s.count,
            error_count: stats.errors,
            error_rate: if s.count == 0 {
                0.0
            } else {
                stats.errors as f64 / s.count as f64
            },
            latency_p50_ms: q(0.5),
            latency_p90_ms: q(0.9),
            latency_p95_ms: q(0.95),
            latency_p99_ms: q(0.99),
            latency_min_ms: if s.count == 0 { 0.0 } else { s.min },
            latency_max_ms: if s.count == 0 { 0.0 } else { s.max },
            latency_sum_ms: s.sum,
            latency_sketch: StoredSketch {
                alpha: RELATIVE_ACCURACY,
                index: s.buckets.keys().copied().collect(),
                count: s.buckets.values().copied().collect(),
                zeros: s.zeros,
            },
            source_window_from: start,
            source_window_to: format_timestamp(&window.end()),
            ingested_at: format_timestamp(now),
        }
    }

    /// The document id: see [`ids::rollup_id`].
    pub fn id(&self, window_start_ms: i64) -> String {
        ids::rollup_id(
            self.bucket_duration_seconds,
            window_start_ms,
            self.series.as_str(),
            [
                &self.service_name,
                &self.environment,
                self.endpoint.as_deref().unwrap_or(""),
            ],
            self.overflow,
        )
    }

    /// The latency sketch with its exact count, min, max and sum, ready to merge.
    pub fn sketch(&self) -> Sketch {
        let stored = &self.latency_sketch;
        Sketch::from_parts(
            stored
                .index
                .iter()
                .copied()
                .zip(stored.count.iter().copied()),
            stored.zeros,
            self.latency_sum_ms,
            self.latency_min_ms,
            self.latency_max_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f64], errors: u64) -> SeriesStats {
        let mut sketch = Sketch::new();
        for v in values {
            sketch.add(*v);
        }
        SeriesStats { errors, sketch }
    }

    #[test]
    fn windows_are_epoch_aligned() {
        let w = Window::containing(1_764_000_123_456, 60);
        assert_eq!(w.start_ms, 1_764_000_120_000);
        assert_eq!(w.end_ms(), 1_764_000_180_000);
        assert_eq!(w.next().start_ms, w.end_ms());
        assert_eq!(Window::containing(-1, 60).start_ms, -60_000);
        assert_eq!(
            w.to_string(),
            "2025-11-24T16:02:00.000Z~2025-11-24T16:03:00.000Z"
        );
    }

    #[test]
    fn a_window_always_maps_to_the_same_index() {
        let names = RollupIndices::new("metrics-apm");
        let w = Window::containing(1_764_028_799_999, 60); // 23:59:59.999 UTC
        assert_eq!(
            names.index(SeriesKind::Service, &w),
            "metrics-apm-service-60s-2025.11.24"
        );
        assert_eq!(
            names.index(SeriesKind::Endpoint, &w.next()),
            "metrics-apm-endpoint-60s-2025.11.25"
        );
        assert_eq!(names.alias(SeriesKind::Service), "metrics-apm");
        assert_eq!(names.alias(SeriesKind::Endpoint), "metrics-apm-endpoints");
    }

    #[test]
    fn documents_keep_the_dashboard_fields_and_round_trip_their_sketch() {
        let w = Window::containing(1_764_000_000_000, 60);
        let s = stats(&[10.0, 20.0, 30.0, 0.0], 1);
        let doc = RollupDocument::new(
            &w,
            SeriesKind::Endpoint,
            ["checkout", "production", "POST /pay"],
            false,
            &s,
            &w.end(),
        );
        let json = serde_json::to_value(&doc).unwrap();
        for field in [
            "@timestamp",
            "@timestamp_bucket",
            "bucket_duration_seconds",
            "service_name",
            "environment",
            "request_count",
            "error_count",
            "error_rate",
            "latency_p50_ms",
            "latency_p90_ms",
            "latency_p95_ms",
            "source_window_from",
            "source_window_to",
            "ingestedAt",
        ] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
        assert_eq!(json["request_count"], 4);
        assert_eq!(json["error_rate"], 0.25);
        assert_eq!(json["target"], "POST /pay");
        let back: RollupDocument = serde_json::from_value(json).unwrap();
        assert_eq!(back.sketch(), s.sketch);
    }

    #[test]
    fn ids_differ_by_bucket_kind_key_and_overflow() {
        let w = Window::containing(0, 60);
        let s = stats(&[1.0], 0);
        let id = |bucket: u32, kind, key: [&str; 3], overflow| {
            let w = Window {
                bucket_seconds: bucket,
                ..w
            };
            RollupDocument::new(&w, kind, key, overflow, &s, &w.end()).id(w.start_ms)
        };
        let base = id(60, SeriesKind::Service, ["a", "b", ""], false);
        assert_eq!(base, id(60, SeriesKind::Service, ["a", "b", ""], false));
        for other in [
            id(300, SeriesKind::Service, ["a", "b", ""], false),
            id(60, SeriesKind::Service, ["a", "b", ""], true),
            id(60, SeriesKind::Service, ["ab", "", ""], false),
            id(60, SeriesKind::Endpoint, ["a", "b", "c"], false),
        ] {
            assert_ne!(base, other);
        }
    }
}
