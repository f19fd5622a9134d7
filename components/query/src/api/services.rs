//! The ranking routes: service overview and a service's endpoints.
//!
//! Both count SERVER spans only (as the metrics route and the rollups do, so the numbers agree
//! across routes), apply `name_filter` in the search (before any cut, not after the
//! top-N), rank by `sort_by` over every group (up to [`MAX_GROUPS`]) and only then cut to
//! `limit`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::params::{Params, TimeRange, escape_wildcard, iso};
use crate::search::{error_rate, malformed, percentile, round};

/// Most groups (services, environments per service, endpoints) ranked per request.
pub const MAX_GROUPS: u64 = 1000;
pub const SORT_KEYS: [&str; 3] = ["request_count", "latency_p95_ms", "error_rate"];

/// The measurements both rankings show.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measures {
    request_count: u64,
    latency_p95_ms: f64,
    error_rate: f64,
}

impl Measures {
    fn read(bucket: &Value) -> Self {
        let total = bucket["doc_count"].as_u64().unwrap_or(0);
        let errors = bucket["errors"]["doc_count"].as_u64().unwrap_or(0);
        Self {
            request_count: total,
            latency_p95_ms: round(percentile(&bucket["latency"], 95.0), 3),
            error_rate: error_rate(errors, total),
        }
    }

    fn key(&self, sort_by: &str) -> f64 {
        match sort_by {
            "latency_p95_ms" => self.latency_p95_ms,
            "error_rate" => self.error_rate,
            _ => self.request_count as f64,
        }
    }
}

fn measures_aggs() -> Value {
    json!({
        "latency": {"percentiles": {"field": "duration_ms", "percents": [95.0], "keyed": false}},
        "errors": {"filter": {"term": {"status": "ERROR"}}},
    })
}

fn name_filter(field: &str, filter: &Option<String>) -> Option<Value> {
    filter.as_ref().map(|f| {
        json!({"wildcard": {field: {
            "value": format!("*{}*", escape_wildcard(f)),
            "case_insensitive": true,
        }}})
    })
}

// ---- GET /query/services --------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub range: TimeRange,
    pub environment: Option<String>,
    pub name_filter: Option<String>,
    pub sort_by: &'static str,
    pub limit: u64,
}

impl Overview {
    pub fn parse(p: &mut Params, now: DateTime<Utc>) -> Self {
        Self {
            range: p.time_range(now, 60),
            environment: p.environment(),
            name_filter: p.text("name_filter"),
            sort_by: p.one_of("sort_by", &SORT_KEYS).unwrap_or("request_count"),
            limit: p.clamped("limit", 50, 1, MAX_GROUPS),
        }
    }

    pub fn query(&self) -> Value {
        let mut filter = vec![json!({"term": {"kind": "SERVER"}}), self.range.filter()];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        filter.extend(name_filter("service_name", &self.name_filter));
        json!({
            "size": 0,
            "query": {"bool": {"filter": filter}},
            "aggs": {"services": {
                "terms": {"field": "service_name", "size": MAX_GROUPS},
                "aggs": {"envs": {
                    "terms": {"field": "environment", "size": MAX_GROUPS},
                    "aggs": measures_aggs(),
                }},
            }},
        })
    }

    pub fn key(&self, prefix: &str) -> String {
        crate::cache::KeyBuilder::new(prefix, "services")
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .opt("env", self.environment.as_ref())
            .opt("name", self.name_filter.as_ref())
            .field("sort", self.sort_by)
            .field("limit", self.limit)
            .build()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceRow {
    pub service_name: String,
    pub environment: String,
    /// SERVER spans in the range.
    pub request_count: u64,
    pub latency_p95_ms: f64,
    /// Fraction of SERVER spans with status ERROR, 0 to 1.
    pub error_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceOverview {
    pub from: String,
    pub to: String,
    /// The environment filter (normalised), or null.
    pub environment: Option<String>,
    pub services: Vec<ServiceRow>,
}

pub fn overview_response(
    o: &Overview,
    answer: &Value,
) -> Result<ServiceOverview, crate::error::ApiError> {
    let buckets = answer["aggregations"]["services"]["buckets"]
        .as_array()
        .ok_or_else(|| malformed("services buckets"))?;
    let mut rows: Vec<(Measures, ServiceRow)> = Vec::new();
    for service in buckets {
        let name = key_text(service);
        for env in service["envs"]["buckets"].as_array().into_iter().flatten() {
            let m = Measures::read(env);
            rows.push((
                m,
                ServiceRow {
                    service_name: name.clone(),
                    environment: key_text(env),
                    request_count: m.request_count,
                    latency_p95_ms: m.latency_p95_ms,
                    error_rate: m.error_rate,
                },
            ));
        }
    }
    Ok(ServiceOverview {
        from: iso(o.range.from),
        to: iso(o.range.to),
        environment: o.environment.clone(),
        services: rank(rows, o.sort_by, o.limit, |r| {
            (r.service_name.clone(), r.environment.clone())
        }),
    })
}

/// Sorts rows by `sort_by`, highest first (ties by `name`, ascending), and keeps `limit`.
fn rank<R, K: Ord>(
    mut rows: Vec<(Measures, R)>,
    sort_by: &str,
    limit: u64,
    name: impl Fn(&R) -> K,
) -> Vec<R> {
    rows.sort_by(|(a, ra), (b, rb)| {
        b.key(sort_by)
            .total_cmp(&a.key(sort_by))
            .then_with(|| name(ra).cmp(&name(rb)))
    });
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    rows.into_iter().map(|(_, r)| r).collect()
}

fn key_text(bucket: &Value) -> String {
    match &bucket["key"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---- GET /query/services/{service}/endpoints ------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub service: String,
    pub range: TimeRange,
    pub environment: Option<String>,
    pub name_filter: Option<String>,
    pub sort_by: &'static str,
    pub limit: u64,
}

impl Endpoints {
    pub fn parse(p: &mut Params, service: String, now: DateTime<Utc>) -> Self {
        let metric = p.one_of("metric", &SORT_KEYS);
        let sort_by = p.one_of("sort_by", &SORT_KEYS);
        Self {
            service,
            range: p.time_range(now, 60),
            environment: p.environment(),
            name_filter: p.text("name_filter"),
            sort_by: sort_by.or(metric).unwrap_or("request_count"),
            limit: p.clamped("limit", 10, 1, MAX_GROUPS),
        }
    }

    pub fn query(&self) -> Value {
        let mut filter = vec![
            json!({"term": {"service_name": self.service}}),
            json!({"term": {"kind": "SERVER"}}),
            self.range.filter(),
        ];
        if let Some(e) = &self.environment {
            filter.push(json!({"term": {"environment": e}}));
        }
        filter.extend(name_filter("name", &self.name_filter));
        json!({
            "size": 0,
            "query": {"bool": {"filter": filter}},
            "aggs": {"endpoints": {
                "terms": {"field": "name", "size": MAX_GROUPS},
                "aggs": measures_aggs(),
            }},
        })
    }

    pub fn key(&self, prefix: &str) -> String {
        crate::cache::KeyBuilder::new(prefix, "endpoints")
            .field("service", &self.service)
            .field("from", iso(self.range.from))
            .field("to", iso(self.range.to))
            .opt("env", self.environment.as_ref())
            .opt("name", self.name_filter.as_ref())
            .field("sort", self.sort_by)
            .field("limit", self.limit)
            .build()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointRow {
    /// The span name, e.g. `GET /api/orders`.
    pub endpoint_name: String,
    pub service_name: String,
    /// The environment filter, or `all`.
    pub environment: String,
    pub request_count: u64,
    pub latency_p95_ms: f64,
    pub error_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointRanking {
    pub service_name: String,
    pub environment: Option<String>,
    pub from: String,
    pub to: String,
    pub endpoints: Vec<EndpointRow>,
}

pub fn endpoints_response(
    e: &Endpoints,
    answer: &Value,
) -> Result<EndpointRanking, crate::error::ApiError> {
    let buckets = answer["aggregations"]["endpoints"]["buckets"]
        .as_array()
        .ok_or_else(|| malformed("endpoint buckets"))?;
    let env = e.environment.clone().unwrap_or_else(|| "all".to_owned());
    let rows: Vec<(Measures, EndpointRow)> = buckets
        .iter()
        .map(|b| {
            let m = Measures::read(b);
            (
                m,
                EndpointRow {
                    endpoint_name: key_text(b),
                    service_name: e.service.clone(),
                    environment: env.clone(),
                    request_count: m.request_count,
                    latency_p95_ms: m.latency_p95_ms,
                    error_rate: m.error_rate,
                },
            )
        })
        .collect();
    Ok(EndpointRanking {
        service_name: e.service.clone(),
        environment: e.environment.clone(),
        from: iso(e.range.from),
        to: iso(e.range.to),
        endpoints: rank(rows, e.sort_by, e.limit, |r| r.endpoint_name.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(q: &str) -> Endpoints {
        let mut p = Params::parse(Some(q));
        let e = Endpoints::parse(&mut p, "api".into(), Utc::now());
        p.finish(e).unwrap()
    }

    fn bucket(key: &str, count: u64, errors: u64, p95: f64) -> Value {
        json!({"key": key, "doc_count": count, "errors": {"doc_count": errors},
               "latency": {"values": [{"key": 95.0, "value": p95}]}})
    }

    #[test]
    fn ranking_covers_every_group_then_cuts() {
        let e = endpoints("limit=2&sort_by=error_rate");
        let answer = json!({"aggregations": {"endpoints": {"buckets": [
            bucket("GET /busy", 1000, 1, 10.0),
            bucket("GET /flaky", 10, 5, 20.0),
            bucket("GET /broken", 2, 2, 30.0),
        ]}}});
        let r = endpoints_response(&e, &answer).unwrap();
        let names: Vec<_> = r
            .endpoints
            .iter()
            .map(|x| x.endpoint_name.as_str())
            .collect();
        assert_eq!(names, ["GET /broken", "GET /flaky"]);
        assert_eq!(r.endpoints[1].error_rate, 0.5);
        assert_eq!(r.endpoints[0].environment, "all");
    }

    #[test]
    fn name_filter_is_in_the_search() {
        let e = endpoints("name_filter=Order*");
        let q = e.query();
        assert_eq!(
            q["query"]["bool"]["filter"][3],
            json!({"wildcard": {"name": {"value": "*Order\\**", "case_insensitive": true}}})
        );
        assert_eq!(q["aggs"]["endpoints"]["terms"]["size"], MAX_GROUPS);
    }

    #[test]
    fn overview_counts_server_spans_and_ranks_rows() {
        let mut p = Params::parse(Some("sort_by=latency_p95_ms&limit=2&environment=prod"));
        let o = Overview::parse(&mut p, Utc::now());
        let o = p.finish(o).unwrap();
        let q = o.query();
        assert_eq!(
            q["query"]["bool"]["filter"][0],
            json!({"term": {"kind": "SERVER"}})
        );
        assert_eq!(
            q["query"]["bool"]["filter"][2],
            json!({"term": {"environment": "production"}})
        );
        let answer = json!({"aggregations": {"services": {"buckets": [
            {"key": "a", "envs": {"buckets": [bucket("production", 5, 0, 1.0), bucket("staging", 5, 0, 9.0)]}},
            {"key": "b", "envs": {"buckets": [bucket("production", 1, 1, 5.0)]}},
        ]}}});
        let r = overview_response(&o, &answer).unwrap();
        let rows: Vec<_> = r
            .services
            .iter()
            .map(|s| (s.service_name.as_str(), s.environment.as_str()))
            .collect();
        assert_eq!(rows, [("a", "staging"), ("b", "production")]);
        assert_eq!(r.environment.as_deref(), Some("production"));
    }
}
