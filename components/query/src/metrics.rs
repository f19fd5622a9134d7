//! Query's Prometheus metrics, registered under the `panopticon_query` prefix. Route labels
//! are route templates (`/query/services/{service}/metrics`), never raw paths.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cache::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    /// `2xx`, `4xx`, `5xx`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `hit`, `miss`, `coalesced` or `bypass`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// `timeout`, `unavailable` or `internal`.
    pub kind: &'static str,
}

/// Every metric of query. Cheap to clone (handles).
#[derive(Clone)]
pub struct Metrics {
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub cache_requests: Family<CacheLabel, Counter>,
    pub cache_errors: Counter,
    pub elasticsearch_errors: Family<ErrorLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            cache_requests: Family::default(),
            cache_errors: Counter::default(),
            elasticsearch_errors: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("panopticon_query");
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status class",
            m.request_seconds.clone(),
        );
        r.register(
            "cache_requests",
            "Cacheable requests by how they were answered",
            m.cache_requests.clone(),
        );
        r.register(
            "cache_errors",
            "Redis commands that failed or timed out (each served as a miss)",
            m.cache_errors.clone(),
        );
        r.register(
            "elasticsearch_errors",
            "Requests that failed because of Elasticsearch, by kind",
            m.elasticsearch_errors.clone(),
        );
        m
    }

    pub fn cache(&self, outcome: Outcome) {
        self.cache_requests
            .get_or_create(&CacheLabel {
                result: outcome.as_str(),
            })
            .inc();
    }

    pub fn cache_error(&self) {
        self.cache_errors.inc();
    }
}

/// Middleware: times every request under its route template.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        0..=399 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .request_seconds
        .get_or_create(&RouteLabels { route, status })
        .observe(started.elapsed().as_secs_f64());
    response
}
