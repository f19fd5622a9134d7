//! `GET /query/spans`: span search, and the span item the trace route shares.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::params::{Page, Params, TimeRange, iso};
use crate::search::{Source, sources, total};

pub const MAX_SIZE: u64 = 1000;
pub const KINDS: [&str; 5] = ["SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"];
pub const STATUSES: [&str; 2] = ["OK", "ERROR"];
const SORTS: [&str; 4] = [
    "duration_asc",
    "duration_desc",
    "start_time_asc",
    "start_time_desc",
];

/// `sort` of the span searches: the field and the order.
pub fn sort_clause(sort: &str) -> Value {
    let (field, order) = match sort {
        "duration_asc" => ("duration_ms", "asc"),
        "duration_desc" => ("duration_ms", "desc"),
        "start_time_asc" => ("@timestamp", "asc"),
        _ => ("@timestamp", "desc"),
    };
    json!([{field: {"order": order}}])
}

/// Reads a sort parameter with the route's default.
pub fn parse_sort(p: &mut Params, default: &'static str) -> &'static str {
    p.one_of("sort", &SORTS).unwrap_or(default)
}

/// `min_duration_ms`/`max_duration_ms` as a range filter, checked min <= max.
pub fn duration_filter(p: &mut Params) -> Option<Value> {
    let min = p.number("min_duration_ms", 0.0, 1e12);
    let max = p.number("max_duration_ms", 0.0, 1e12);
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        p.error(
            "min_duration_ms",
            "must not be greater than max_duration_ms",
        );
    }
    if min.is_none() && max.is_none() {
        return None;
    }
    let mut range = serde_json::Map::new();
    if let Some(v) = min {
        range.insert("gte".into(), json!(v));
    }
    if let Some(v) = max {
        range.insert("lte".into(), json!(v));
    }
    Some(json!({"range": {"duration_ms": range}}))
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanSearch {
    pub terms: Vec<(&'static str, String)>,
    pub duration: Option<Value>,
    pub range: TimeRange,
    pub page: Page,
    pub sort: &'static str,
}

impl SpanSearch {
    pub fn parse(p: &mut Params, now: DateTime<Utc>) -> Self {
        let mut terms = Vec::new();
        for field in ["service_name", "name", "trace_id", "parent_span_id"] {
            if let Some(v) = p.text(field) {
                terms.push((field, v));
            }
        }
        if let Some(env) = p.environment() {
            terms.push(("environment", env));
        }
        if let Some(kind) = p.one_of("kind", &KINDS) {
            terms.push(("kind", kind.to_owned()));
        }
        if let Some(status) = p.one_of("status", &STATUSES) {
            terms.push(("status", status.to_owned()));
        }
        Self {
            terms,
            duration: duration_filter(p),
            range: p.time_range(now, 15),
            page: p.page(50, MAX_SIZE),
            sort: parse_sort(p, "start_time_desc"),
        }
    }

    pub fn query(&self) -> Value {
        let mut filter = vec![self.range.filter()];
        filter.extend(
            self.terms
                .iter()
                .map(|(field, value)| json!({"term": {*field: value}})),
        );
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
        let mut key = crate::cache::KeyBuilder::new(prefix, "spans");
        for (field, value) in &self.terms {
            key = key.field(field, value);
        }
        key.opt("duration", self.duration.as_ref())
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .field("page", self.page.page)
            .field("size", self.page.size)
            .field("sort", self.sort)
            .build()
    }
}

/// One span.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SpanItem {
    /// The span's start, ISO-8601.
    pub timestamp: String,
    pub trace_id: String,
    pub span_id: String,
    /// Always present: `null` for a root span (the dashboard matches `=== null`).
    pub parent_span_id: Option<String>,
    pub name: String,
    #[schema(example = "SERVER")]
    pub kind: String,
    pub duration_ms: f64,
    #[schema(example = "OK")]
    pub status: String,
    pub service_name: String,
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<u16>,
}

impl SpanItem {
    pub fn from_source(s: &Source<'_>) -> Self {
        Self {
            timestamp: s.text("@timestamp"),
            trace_id: s.text("trace_id"),
            span_id: s.text("span_id"),
            // An empty parent is a root too.
            parent_span_id: s.opt_text("parent_span_id").filter(|p| !p.is_empty()),
            name: s.text("name"),
            kind: s.text("kind"),
            duration_ms: s.number("duration_ms"),
            status: s.opt_text("status").unwrap_or_else(|| "OK".to_owned()),
            service_name: s.text("service_name"),
            environment: s.text("environment"),
            labels: s.labels(),
            http_method: s.opt_text("http_method"),
            http_path: s.opt_text("http_path"),
            http_status_code: s.opt_u16("http_status_code"),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpanPage {
    pub total: u64,
    pub page: u64,
    pub size: u64,
    pub items: Vec<SpanItem>,
}

pub fn response(search: &SpanSearch, answer: &Value) -> SpanPage {
    SpanPage {
        total: total(answer),
        page: search.page.page,
        size: search.page.size,
        items: sources(answer)
            .map(|s| SpanItem::from_source(&Source(s)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SpanSearch, crate::error::ApiError> {
        let mut p = Params::parse(Some(q));
        let s = SpanSearch::parse(&mut p, Utc::now());
        p.finish(s)
    }

    #[test]
    fn filters_and_sort() {
        let s = parse("service_name=api&kind=server&status=error&environment=dev&min_duration_ms=10&sort=duration_desc&size=5000").unwrap();
        let q = s.query();
        let filter = q["query"]["bool"]["filter"].as_array().unwrap();
        assert!(filter.contains(&json!({"term": {"kind": "SERVER"}})));
        assert!(filter.contains(&json!({"term": {"status": "ERROR"}})));
        assert!(filter.contains(&json!({"term": {"environment": "development"}})));
        assert!(filter.contains(&json!({"range": {"duration_ms": {"gte": 10.0}}})));
        assert_eq!(q["sort"], json!([{"duration_ms": {"order": "desc"}}]));
        assert_eq!(q["size"], MAX_SIZE);
    }

    #[test]
    fn inverted_duration_bounds_are_refused() {
        let Err(crate::error::ApiError::BadRequest(f)) =
            parse("min_duration_ms=10&max_duration_ms=5&max_duration_ms=abc")
        else {
            panic!("expected 400");
        };
        assert_eq!(f[0].parameter, "min_duration_ms");
    }

    #[test]
    fn roots_carry_an_explicit_null_parent() {
        let src = json!({"@timestamp": "2026-11-25T00:00:00.000Z", "trace_id": "t", "span_id": "s",
            "parent_span_id": "", "name": "GET /", "kind": "SERVER", "duration_ms": 3.5,
            "status": "OK", "service_name": "api", "environment": "production"});
        let item = SpanItem::from_source(&Source(src.as_object().unwrap()));
        let out = serde_json::to_value(&item).unwrap();
        assert_eq!(out["parent_span_id"], Value::Null);
        assert!(out.as_object().unwrap().contains_key("parent_span_id"));
        assert!(!out.as_object().unwrap().contains_key("labels"));
    }
}
