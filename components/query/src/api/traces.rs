//! The trace routes: one trace, a service's root spans and an endpoint's sample traces.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::logs::LogItem;
use super::spans::{STATUSES, SpanItem, duration_filter, parse_sort, sort_clause};
use crate::params::{Page, Params, TimeRange, iso};
use crate::search::{Source, sources, total};

/// Most spans and logs returned for one trace.
pub const TRACE_MAX_SPANS: u64 = 2000;
pub const TRACE_MAX_LOGS: u64 = 1000;
/// Largest page of root spans.
pub const SERVICE_TRACES_MAX_SIZE: u64 = 200;
/// Most sample traces of an endpoint.
pub const ENDPOINT_TRACES_MAX_LIMIT: u64 = 1000;
const MAX_ID_LEN: usize = 256;

// ---- GET /query/traces/{traceId} ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct TraceLookup {
    pub trace_id: String,
    pub service: Option<String>,
    pub environment: Option<String>,
}

impl TraceLookup {
    pub fn parse(p: &mut Params, trace_id: String) -> Self {
        if trace_id.trim().is_empty() || trace_id.len() > MAX_ID_LEN {
            p.error("traceId", format!("must be 1 to {MAX_ID_LEN} characters"));
        }
        Self {
            trace_id,
            service: p.text("service"),
            environment: p.environment(),
        }
    }

    fn filter(&self) -> Vec<Value> {
        let mut filter = vec![json!({"term": {"trace_id": self.trace_id}})];
        if let Some(s) = &self.service {
            filter.push(json!({"term": {"service_name": s}}));
        }
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        filter
    }

    /// Spans, oldest first.
    pub fn spans_query(&self) -> Value {
        json!({
            "size": TRACE_MAX_SPANS,
            "sort": [{"@timestamp": {"order": "asc"}}],
            "query": {"bool": {"filter": self.filter()}},
        })
    }

    /// Logs, oldest first; the environment is normalised here too, as on every route.
    pub fn logs_query(&self) -> Value {
        json!({
            "size": TRACE_MAX_LOGS,
            "sort": [{"@timestamp": {"order": "asc"}}],
            "query": {"bool": {"filter": self.filter()}},
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TraceDetail {
    pub trace_id: String,
    pub spans: Vec<SpanItem>,
    pub logs: Vec<LogItem>,
}

/// The trace, or `None` when neither spans nor logs mention it.
pub fn trace_response(lookup: &TraceLookup, spans: &Value, logs: &Value) -> Option<TraceDetail> {
    let detail = TraceDetail {
        trace_id: lookup.trace_id.clone(),
        spans: sources(spans)
            .map(|s| SpanItem::from_source(&Source(s)))
            .collect(),
        logs: sources(logs)
            .map(|s| LogItem::from_source(&Source(s)))
            .collect(),
    };
    (!detail.spans.is_empty() || !detail.logs.is_empty()).then_some(detail)
}

// ---- GET /query/services/{service}/traces ---------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTraces {
    pub service: String,
    pub environment: Option<String>,
    pub status: Option<&'static str>,
    pub duration: Option<Value>,
    pub range: TimeRange,
    pub page: Page,
    pub sort: &'static str,
}

impl ServiceTraces {
    pub fn parse(p: &mut Params, service: String, now: DateTime<Utc>) -> Self {
        Self {
            service,
            environment: p.environment(),
            status: p.one_of("status", &STATUSES),
            duration: duration_filter(p),
            range: p.time_range(now, 60),
            page: p.page(20, SERVICE_TRACES_MAX_SIZE),
            sort: parse_sort(p, "duration_desc"),
        }
    }

    pub fn query(&self) -> Value {
        let mut filter = vec![
            json!({"term": {"service_name": self.service}}),
            json!({"term": {"kind": "SERVER"}}),
            self.range.filter(),
            // A root has no parent; an empty-string parent counts as none.
            json!({"bool": {"should": [
                {"bool": {"must_not": {"exists": {"field": "parent_span_id"}}}},
                {"term": {"parent_span_id": ""}},
            ], "minimum_should_match": 1}}),
        ];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        if let Some(s) = self.status {
            filter.push(json!({"term": {"status": s}}));
        }
        filter.extend(self.duration.clone());
        json!({
            "from": self.page.offset(),
            "size": self.page.size,
            "sort": sort_clause(self.sort),
            "track_total_hits": true,
            "query": {"bool": {"filter": filter}},
        })
    }

    pub fn key(&self, prefix: &str) -> String {
        crate::cache::KeyBuilder::new(prefix, "service-traces")
            .field("service", &self.service)
            .opt("env", self.environment.as_ref())
            .opt("status", self.status)
            .opt("duration", self.duration.as_ref())
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .field("page", self.page.page)
            .field("size", self.page.size)
            .field("sort", self.sort)
            .build()
    }
}

/// A trace, by its root span.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_span_name: String,
    #[schema(example = "OK")]
    pub status: String,
    pub duration_ms: f64,
    /// The root span's start, ISO-8601.
    pub start_time: String,
    pub service_name: String,
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TracePage {
    pub total: u64,
    pub page: u64,
    pub size: u64,
    pub traces: Vec<TraceSummary>,
}

pub fn service_traces_response(search: &ServiceTraces, answer: &Value) -> TracePage {
    TracePage {
        total: total(answer),
        page: search.page.page,
        size: search.page.size,
        traces: sources(answer)
            .map(|s| {
                let s = Source(s);
                TraceSummary {
                    trace_id: s.text("trace_id"),
                    root_span_name: s.text("name"),
                    status: s.opt_text("status").unwrap_or_else(|| "OK".to_owned()),
                    duration_ms: s.number("duration_ms"),
                    start_time: s.text("@timestamp"),
                    service_name: s.text("service_name"),
                    environment: s.text("environment"),
                    labels: s.labels(),
                }
            })
            .collect(),
    }
}

// ---- GET /query/services/{service}/endpoints/{endpoint}/traces -------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Error,
    /// At or above the `slow_percentile` of the endpoint's durations in the range.
    Slow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointTraces {
    pub service: String,
    pub endpoint: String,
    pub environment: Option<String>,
    pub status: Option<EndpointStatus>,
    pub slow_percentile: f64,
    pub limit: u64,
    pub range: TimeRange,
}

impl EndpointTraces {
    pub fn parse(p: &mut Params, service: String, endpoint: String, now: DateTime<Utc>) -> Self {
        let status = p.one_of("status", &["ERROR", "SLOW"]).map(|s| {
            if s == "SLOW" {
                EndpointStatus::Slow
            } else {
                EndpointStatus::Error
            }
        });
        Self {
            service,
            endpoint,
            environment: p.environment(),
            status,
            slow_percentile: p.number("slow_percentile", 50.0, 100.0).unwrap_or(95.0),
            limit: p.clamped("limit", 20, 1, ENDPOINT_TRACES_MAX_LIMIT),
            range: p.time_range(now, 60),
        }
    }

    fn filter(&self) -> Vec<Value> {
        let mut filter = vec![
            json!({"term": {"service_name": self.service}}),
            json!({"term": {"kind": "SERVER"}}),
            json!({"term": {"name": self.endpoint}}),
            self.range.filter(),
        ];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        filter
    }

    /// The percentile of the endpoint's durations that `status=SLOW` filters on.
    pub fn threshold_query(&self) -> Value {
        json!({
            "size": 0,
            "query": {"bool": {"filter": self.filter()}},
            "aggs": {"threshold": {"percentiles": {
                "field": "duration_ms", "percents": [self.slow_percentile], "keyed": false,
            }}},
        })
    }

    /// The sample search; `threshold` is the SLOW cut-off (0 is a real threshold).
    pub fn query(&self, threshold: Option<f64>) -> Value {
        let mut filter = self.filter();
        match self.status {
            Some(EndpointStatus::Error) => filter.push(json!({"term": {"status": "ERROR"}})),
            Some(EndpointStatus::Slow) => {
                if let Some(t) = threshold {
                    filter.push(json!({"range": {"duration_ms": {"gte": t}}}));
                }
            }
            None => {}
        }
        json!({
            "size": self.limit,
            "sort": [{"@timestamp": {"order": "desc"}}],
            "query": {"bool": {"filter": filter}},
        })
    }

    pub fn key(&self, prefix: &str) -> String {
        crate::cache::KeyBuilder::new(prefix, "endpoint-traces")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .opt("env", self.environment.as_ref())
            .opt("status", self.status.map(|s| format!("{s:?}")))
            .field("percentile", self.slow_percentile)
            .field("limit", self.limit)
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .build()
    }
}

/// A sample trace of an endpoint (camelCase: the one route whose fields the dashboard reads so).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTrace {
    pub trace_id: String,
    pub span_id: String,
    pub timestamp: String,
    pub duration_ms: f64,
    #[schema(example = "ERROR")]
    pub status: String,
    pub service_name: String,
    pub environment: String,
}

pub fn endpoint_traces_response(answer: &Value) -> Vec<EndpointTrace> {
    sources(answer)
        .map(|s| {
            let s = Source(s);
            EndpointTrace {
                trace_id: s.text("trace_id"),
                span_id: s.text("span_id"),
                timestamp: s.text("@timestamp"),
                duration_ms: s.number("duration_ms"),
                status: s.opt_text("status").unwrap_or_else(|| "OK".to_owned()),
                service_name: s.text("service_name"),
                environment: s.text("environment"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_applies_the_threshold_even_when_zero() {
        let mut p = Params::parse(Some("status=slow&slow_percentile=99"));
        let e = EndpointTraces::parse(&mut p, "api".into(), "GET /a".into(), Utc::now());
        assert!(p.finish(()).is_ok());
        assert_eq!(e.status, Some(EndpointStatus::Slow));
        let t = e.threshold_query();
        assert_eq!(
            t["aggs"]["threshold"]["percentiles"]["percents"],
            json!([99.0])
        );
        let q = e.query(Some(0.0));
        let filter = q["query"]["bool"]["filter"].as_array().unwrap();
        assert!(filter.contains(&json!({"range": {"duration_ms": {"gte": 0.0}}})));
    }

    #[test]
    fn slow_percentile_is_bounded() {
        let mut p = Params::parse(Some("slow_percentile=150"));
        EndpointTraces::parse(&mut p, "api".into(), "x".into(), Utc::now());
        let Err(crate::error::ApiError::BadRequest(f)) = p.finish(()) else {
            panic!("expected 400")
        };
        assert_eq!(f[0].parameter, "slow_percentile");
    }

    #[test]
    fn roots_include_empty_string_parents() {
        let mut p = Params::parse(Some("size=1000"));
        let s = ServiceTraces::parse(&mut p, "api".into(), Utc::now());
        assert_eq!(s.page.size, SERVICE_TRACES_MAX_SIZE);
        let q = s.query();
        let roots = &q["query"]["bool"]["filter"][3]["bool"]["should"];
        assert_eq!(roots[1], json!({"term": {"parent_span_id": ""}}));
        assert_eq!(q["sort"], json!([{"duration_ms": {"order": "desc"}}]));
    }

    #[test]
    fn an_absent_trace_is_none() {
        let lookup = TraceLookup {
            trace_id: "t".into(),
            service: None,
            environment: None,
        };
        let empty = json!({"hits": {"hits": []}});
        assert!(trace_response(&lookup, &empty, &empty).is_none());
    }
}
