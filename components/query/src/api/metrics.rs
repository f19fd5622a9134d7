//! `GET /query/services/{service}/metrics`: a service's time series, from rollups
//! where they cover the range and raw spans elsewhere (see [`crate::series`]).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use panopticon_es::EsClient;
use panopticon_model::rollup::RollupDocument;
use panopticon_model::sketch::Sketch;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[cfg(test)]
use crate::error::ApiError;
use crate::error::Result;
use crate::params::{Params, TimeRange, iso, parse_interval};
use crate::search::{error_rate, malformed, round, search};
use crate::series::{self, Coverage, Layout, Stats};

pub const METRIC_NAMES: [&str; 5] = [
    "http_requests_total",
    "latency_p95_ms",
    "latency_p90_ms",
    "latency_p50_ms",
    "error_rate",
];
/// Most points per series.
pub const MAX_POINTS: usize = 2000;
/// Interval buckets per raw request: each may hold one `terms` bucket per distinct duration
/// bucket (at most ~1 500), and the engine refuses more than 65 535 buckets per search.
const RAW_BUCKETS_PER_REQUEST: usize = 25;
/// More raw ranges than this (coverage flickering window by window) and the whole range is
/// read raw, which is simpler for the engine than a filter with that many clauses.
const MAX_RAW_RANGES: usize = 64;
/// Rollup documents fetched per page.
const ROLLUP_PAGE: usize = 5000;
/// Most rollup documents read for one request (about 4 days of one service in two
/// environments). Past it, reading stops; the window cut in the middle no longer matches its
/// span count and the rest have no documents, so they are all read raw: correct, only slower.
const MAX_ROLLUP_DOCS: usize = 4 * ROLLUP_PAGE;
/// Concurrent searches one request makes.
const CONCURRENCY: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRequest {
    pub service: String,
    pub environment: Option<String>,
    pub metric: Option<&'static str>,
    pub range: TimeRange,
    pub interval: TimeDelta,
}

impl MetricsRequest {
    /// Reads the parameters. Without `from` and `to` the range is the last
    /// `default_window_minutes`, ending at now rounded down to `quantum`.
    pub fn parse(
        p: &mut Params,
        service: String,
        now: DateTime<Utc>,
        default_window_minutes: i64,
        quantum: TimeDelta,
    ) -> Self {
        let environment = p.environment();
        let metric = p.one_of("metric", &METRIC_NAMES);
        let mut range = p.time_range(now, default_window_minutes);
        if !range.explicit {
            range = range.quantised(now, quantum);
        }
        let minutes = p.integer("intervalMinutes", 0, 1, 525_600);
        let interval = if minutes > 0 {
            Some(TimeDelta::minutes(minutes as i64))
        } else {
            p.text("interval").and_then(|v| {
                let parsed = parse_interval(&v);
                if parsed.is_none() {
                    p.error(
                        "interval",
                        format!("must be <n>s, <n>m, <n>h or <n>d of at least 1s, got {v:?}"),
                    );
                }
                parsed
            })
        };
        let interval = interval.unwrap_or_else(|| auto_interval(range));
        let points = (range.to - range.from).num_milliseconds() / interval.num_milliseconds() + 2;
        if points > MAX_POINTS as i64 {
            p.error(
                "interval",
                format!(
                    "gives {points} points over this range; at most {MAX_POINTS} are served, use a longer interval"
                ),
            );
        }
        Self {
            service,
            environment,
            metric,
            range,
            interval,
        }
    }

    pub fn key(&self, prefix: &str) -> String {
        crate::cache::KeyBuilder::new(prefix, "metrics")
            .field("service", &self.service)
            .field("env", self.environment.as_deref().unwrap_or("all"))
            .field("metric", self.metric.unwrap_or("all"))
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .field("interval", self.interval.num_seconds())
            .build()
    }

    pub fn layout(&self) -> Layout {
        Layout::new(
            self.range.from.timestamp_millis(),
            self.range.to.timestamp_millis(),
            self.interval.num_milliseconds(),
        )
    }

    fn span_filter(&self) -> Vec<Value> {
        let mut filter = vec![
            json!({"term": {"service_name": self.service}}),
            json!({"term": {"kind": "SERVER"}}),
        ];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        filter
    }

    /// SERVER spans per rollup window over the windows that end by `to`.
    pub fn span_counts_query(&self, layout: &Layout, window_ms: i64) -> Value {
        let mut filter = self.span_filter();
        filter.push(json!({"range": {"@timestamp": {
            "gte": layout.start_ms, "lt": layout.full_windows_end(window_ms), "format": "epoch_millis",
        }}}));
        json!({
            "size": 0,
            "query": {"bool": {"filter": filter}},
            "aggs": {"windows": {"date_histogram": {
                "field": "@timestamp", "fixed_interval": format!("{}ms", window_ms), "min_doc_count": 1,
            }}},
        })
    }

    /// One page of the service-series rollup documents of the same windows.
    pub fn rollups_query(&self, layout: &Layout, window_s: u32, after: Option<&Value>) -> Value {
        let mut filter = vec![
            json!({"term": {"service_name": self.service}}),
            json!({"term": {"series": "service"}}),
            json!({"term": {"bucket_duration_seconds": window_s}}),
            json!({"range": {"@timestamp_bucket": {
                "gte": layout.start_ms,
                "lt": layout.full_windows_end(i64::from(window_s) * 1000),
                "format": "epoch_millis",
            }}}),
        ];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        let mut body = json!({
            "size": ROLLUP_PAGE,
            "sort": [{"@timestamp_bucket": "asc"}, {"environment": "asc"}, {"overflow": "asc"}],
            "query": {"bool": {"filter": filter}},
        });
        if let Some(after) = after {
            body["search_after"] = after.clone();
        }
        body
    }

    /// Raw stats per interval bucket over `ranges` (half-open, epoch ms), for buckets
    /// `first..first+count`.
    pub fn raw_query(&self, layout: &Layout, ranges: &[(i64, i64)]) -> Value {
        let mut filter = self.span_filter();
        let should: Vec<Value> = ranges
            .iter()
            .map(|(a, b)| {
                json!({"range": {"@timestamp": {"gte": a, "lt": b, "format": "epoch_millis"}}})
            })
            .collect();
        filter.push(json!({"bool": {"should": should, "minimum_should_match": 1}}));
        json!({
            "size": 0,
            "query": {"bool": {"filter": filter}},
            "aggs": {"buckets": {
                "date_histogram": {
                    "field": "@timestamp",
                    "fixed_interval": format!("{}ms", layout.interval_ms),
                    "min_doc_count": 1,
                },
                "aggs": {
                    "durations": {"terms": {"field": "duration_bucket", "size": 3000}},
                    "duration": {"stats": {"field": "duration_ms"}},
                    "errors": {"filter": {"term": {"status": "ERROR"}}},
                },
            }},
        })
    }
}

/// The automatic interval for a range (the steps the dashboard has always been given).
pub fn auto_interval(range: TimeRange) -> TimeDelta {
    let minutes = ((range.to - range.from).num_milliseconds() as f64 / 60_000.0).max(1.0);
    match minutes {
        m if m <= 15.0 => TimeDelta::seconds(10),
        m if m <= 30.0 => TimeDelta::seconds(30),
        m if m <= 120.0 => TimeDelta::minutes(1),
        m if m <= 360.0 => TimeDelta::minutes(5),
        m if m <= 1440.0 => TimeDelta::minutes(10),
        _ => TimeDelta::minutes(30),
    }
}

pub fn read_span_counts(answer: &Value) -> Result<BTreeMap<i64, u64>> {
    answer["aggregations"]["windows"]["buckets"]
        .as_array()
        .ok_or_else(|| malformed("window buckets"))?
        .iter()
        .map(|b| {
            Ok((
                b["key"].as_i64().ok_or_else(|| malformed("window key"))?,
                b["doc_count"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

/// Rollup stats per window: the merge of the window's documents (one per environment).
pub fn read_rollups(hits: &[Value]) -> Result<BTreeMap<i64, (u64, Stats)>> {
    let mut windows: BTreeMap<i64, (u64, Stats)> = BTreeMap::new();
    for hit in hits {
        let doc: RollupDocument = serde_json::from_value(hit["_source"].clone())
            .map_err(|e| malformed(&format!("rollup document: {e}")))?;
        let start = chrono::DateTime::parse_from_rfc3339(&doc.timestamp_bucket)
            .map_err(|_| malformed("rollup @timestamp_bucket"))?
            .timestamp_millis();
        let entry = windows.entry(start).or_default();
        entry.0 += doc.request_count;
        entry.1.merge(&Stats {
            errors: doc.error_count,
            sketch: doc.sketch(),
        });
    }
    Ok(windows)
}

/// Raw stats per interval bucket start.
pub fn read_raw(answer: &Value) -> Result<Vec<(i64, Stats)>> {
    let buckets = answer["aggregations"]["buckets"]["buckets"]
        .as_array()
        .ok_or_else(|| malformed("raw buckets"))?;
    buckets
        .iter()
        .map(|b| {
            let start = b["key"].as_i64().ok_or_else(|| malformed("bucket key"))?;
            let count = b["doc_count"].as_u64().unwrap_or(0);
            let mut indexed = 0;
            let pairs: Vec<(i32, u64)> = b["durations"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let index = i32::try_from(d["key"].as_i64()?).ok()?;
                    let n = d["doc_count"].as_u64()?;
                    indexed += n;
                    Some((index, n))
                })
                .collect();
            // Spans without a duration bucket are the zero durations.
            let zeros = count.saturating_sub(indexed);
            let d = &b["duration"];
            let sketch = Sketch::from_parts(
                pairs,
                zeros,
                d["sum"].as_f64().unwrap_or(0.0),
                d["min"].as_f64().unwrap_or(0.0),
                d["max"].as_f64().unwrap_or(0.0),
            );
            let errors = b["errors"]["doc_count"].as_u64().unwrap_or(0);
            Ok((start, Stats { errors, sketch }))
        })
        .collect()
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// The bucket start, ISO-8601.
    pub timestamp: String,
    /// Never null: 0 for a bucket without spans.
    pub value: f64,
    /// `{"environment": ...}` when the request named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Series {
    #[schema(example = "http_requests_total")]
    pub metric_name: String,
    pub service_name: String,
    /// The environment filter, or `all`.
    pub environment: String,
    pub points: Vec<Point>,
}

/// The series of the request from the stats of each bucket.
pub fn series(request: &MetricsRequest, layout: &Layout, buckets: &[Stats]) -> Vec<Series> {
    let labels = request
        .environment
        .as_ref()
        .map(|e| BTreeMap::from([("environment".to_owned(), e.clone())]));
    METRIC_NAMES
        .iter()
        .filter(|name| request.metric.is_none_or(|m| m == **name))
        .map(|name| Series {
            metric_name: (*name).to_owned(),
            service_name: request.service.clone(),
            environment: request
                .environment
                .clone()
                .unwrap_or_else(|| "all".to_owned()),
            points: buckets
                .iter()
                .enumerate()
                .map(|(i, stats)| {
                    let q = |q: f64| round(stats.sketch.quantile(q).unwrap_or(0.0), 3);
                    let value = match *name {
                        "http_requests_total" => stats.sketch.count as f64,
                        "latency_p95_ms" => q(0.95),
                        "latency_p90_ms" => q(0.90),
                        "latency_p50_ms" => q(0.50),
                        _ => error_rate(stats.errors, stats.sketch.count),
                    };
                    Point {
                        timestamp: iso(DateTime::from_timestamp_millis(layout.bucket_start(i))
                            .unwrap_or_default()),
                        value,
                        labels: labels.clone(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// Where the data of the request lies, for the engine.
pub struct Sources<'a> {
    pub es: &'a EsClient,
    pub spans: &'a str,
    /// The alias of the service-series rollups, or `None` when rollups are off.
    pub rollups: Option<&'a str>,
    pub rollup_bucket_seconds: u32,
}

/// Computes the series of a request.
pub async fn fetch(sources: &Sources<'_>, request: &MetricsRequest) -> Result<Vec<Series>> {
    let layout = request.layout();
    let window_s = sources.rollup_bucket_seconds;
    let window_ms = i64::from(window_s) * 1000;
    let usable = sources
        .rollups
        .filter(|_| layout.interval_ms % window_ms == 0);

    let (span_counts, rollups) = match usable {
        Some(alias) if layout.full_windows_end(window_ms) > layout.start_ms => {
            let counts_query = request.span_counts_query(&layout, window_ms);
            let counts = search(sources.es, sources.spans, &counts_query);
            let docs = fetch_rollups(sources.es, alias, request, &layout, window_s);
            let (counts, docs) = futures::try_join!(counts, docs)?;
            (read_span_counts(&counts)?, read_rollups(&docs)?)
        }
        _ => (BTreeMap::new(), BTreeMap::new()),
    };
    let rollup_counts: BTreeMap<i64, u64> = rollups.iter().map(|(t, (n, _))| (*t, *n)).collect();
    let mut coverage = series::plan(
        &layout,
        usable.map(|_| window_ms),
        &span_counts,
        &rollup_counts,
    );
    if coverage.raw_ranges.len() > MAX_RAW_RANGES {
        coverage = series::plan(&layout, None, &BTreeMap::new(), &BTreeMap::new());
    }
    let raw = fetch_raw(sources, request, &layout, &coverage).await?;
    let covered = rollups
        .into_iter()
        .filter(|(t, _)| coverage.covered.contains(t))
        .map(|(t, (_, stats))| (t, stats));
    let buckets = series::assemble(&layout, covered, raw);
    Ok(series(request, &layout, &buckets))
}

/// Every rollup document of the range, paged with `search_after`.
async fn fetch_rollups(
    es: &EsClient,
    alias: &str,
    request: &MetricsRequest,
    layout: &Layout,
    window_s: u32,
) -> Result<Vec<Value>> {
    let mut hits = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let query = request.rollups_query(layout, window_s, after.as_ref());
        let answer = search(es, alias, &query).await?;
        let page = answer["hits"]["hits"]
            .as_array()
            .ok_or_else(|| malformed("rollup hits"))?;
        let done = page.len() < ROLLUP_PAGE;
        after = page.last().map(|h| h["sort"].clone());
        hits.extend(page.iter().cloned());
        if done || after.is_none() || hits.len() >= MAX_ROLLUP_DOCS {
            return Ok(hits);
        }
    }
}

/// Raw stats of the uncovered ranges, in requests of at most [`RAW_BUCKETS_PER_REQUEST`]
/// interval buckets.
async fn fetch_raw(
    sources: &Sources<'_>,
    request: &MetricsRequest,
    layout: &Layout,
    coverage: &Coverage,
) -> Result<Vec<(i64, Stats)>> {
    let chunk_ms = layout.interval_ms * RAW_BUCKETS_PER_REQUEST as i64;
    let mut chunks: Vec<Vec<(i64, i64)>> = Vec::new();
    let mut chunk_start = layout.start_ms;
    let end = layout.to_ms + 1;
    while chunk_start < end {
        let chunk_end = (chunk_start + chunk_ms).min(end);
        let clipped: Vec<(i64, i64)> = coverage
            .raw_ranges
            .iter()
            .filter_map(|(a, b)| {
                let (a, b) = ((*a).max(chunk_start), (*b).min(chunk_end));
                (a < b).then_some((a, b))
            })
            .collect();
        if !clipped.is_empty() {
            chunks.push(clipped);
        }
        chunk_start = chunk_end;
    }
    let answers: Vec<Vec<(i64, Stats)>> = futures::stream::iter(chunks)
        .map(|ranges| async move {
            let query = request.raw_query(layout, &ranges);
            let answer = search(sources.es, sources.spans, &query).await?;
            read_raw(&answer)
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(answers.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<MetricsRequest> {
        let mut p = Params::parse(Some(q));
        let r = MetricsRequest::parse(&mut p, "api".into(), Utc::now(), 15, TimeDelta::seconds(10));
        p.finish(r)
    }

    #[test]
    fn intervals_from_the_dashboard_presets() {
        for (interval, secs) in [
            ("45s", 45),
            ("1m", 60),
            ("2m", 120),
            ("1h", 3600),
            ("1d", 86_400),
        ] {
            let r = parse(&format!(
                "from=2026-11-24T00:00:00.000Z&to=2026-11-25T00:00:00.000Z&interval={interval}"
            ))
            .unwrap();
            assert_eq!(r.interval.num_seconds(), secs, "{interval}");
        }
        let r = parse("intervalMinutes=5").unwrap();
        assert_eq!(r.interval, TimeDelta::minutes(5));
    }

    #[test]
    fn bad_intervals_and_too_many_points_are_named() {
        for q in [
            "interval=0s",
            "interval=soon",
            "intervalMinutes=0",
            "from=2026-01-01T00:00:00Z&to=2026-11-25T00:00:00Z&interval=10s",
        ] {
            let Err(ApiError::BadRequest(f)) = parse(q) else {
                panic!("{q}: expected 400");
            };
            assert!(f[0].parameter.starts_with("interval"), "{q}: {f:?}");
        }
    }

    #[test]
    fn sliding_window_is_quantised_and_auto_interval_applies() {
        let r = parse("").unwrap();
        assert_eq!(r.range.to.timestamp_millis() % 10_000, 0);
        assert_eq!(r.range.to - r.range.from, TimeDelta::minutes(15));
        assert_eq!(r.interval, TimeDelta::seconds(10));
    }

    #[test]
    fn raw_rows_become_sketches_with_zero_durations() {
        let answer = json!({"aggregations": {"buckets": {"buckets": [{
            "key": 60_000, "doc_count": 3,
            "durations": {"buckets": [{"key": panopticon_model::sketch::bucket_index(10.0).unwrap(), "doc_count": 2}]},
            "duration": {"min": 0.0, "max": 10.0, "sum": 20.0},
            "errors": {"doc_count": 1},
        }]}}});
        let raw = read_raw(&answer).unwrap();
        assert_eq!(raw[0].0, 60_000);
        assert_eq!(raw[0].1.sketch.count, 3);
        assert_eq!(raw[0].1.sketch.zeros, 1);
        assert_eq!(raw[0].1.errors, 1);
    }

    #[test]
    fn every_series_has_every_point() {
        let r =
            parse("from=2026-11-25T00:00:30Z&to=2026-11-25T00:04:10Z&interval=1m&environment=prod")
                .unwrap();
        let layout = r.layout();
        let buckets = vec![Stats::default(); layout.buckets];
        let s = series(&r, &layout, &buckets);
        assert_eq!(s.len(), 5);
        for one in &s {
            assert_eq!(one.points.len(), 5);
            assert_eq!(one.environment, "production");
            assert!(one.points.iter().all(|p| p.value == 0.0));
        }
        assert_eq!(s[0].points[0].timestamp, "2026-11-25T00:00:00.000Z");
        let only = parse("metric=error_rate").unwrap();
        assert_eq!(series(&only, &only.layout(), &[]).len(), 1);
    }
}
