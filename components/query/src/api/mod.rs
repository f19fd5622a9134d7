//! The HTTP routes. Each handler reads its parameters into a typed request (every bad one named
//! in a single 400), builds the search from the area module's pure functions, and answers
//! through the cache.

pub mod logs;
pub mod metrics;
pub mod services;
pub mod spans;
pub mod traces;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use panopticon_es::EsClient;
use panopticon_model::config::{QueryConfig, StreamNames};
use serde::Serialize;
use serde_json::json;

use crate::cache::{Cache, Outcome};
use crate::error::{ApiError, ErrorBody, Result};
use crate::metrics::Metrics;
use crate::params::{Params, TimeRange};
use crate::search::search;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

pub struct Shared {
    pub es: EsClient,
    pub streams: StreamNames,
    /// The alias of service-series rollups (`metrics-apm`).
    pub rollup_alias: String,
    pub config: QueryConfig,
    pub cache: Cache,
    pub metrics: Metrics,
}

/// Longest a whole request may take; several searches run per request, each bounded by
/// `QUERY_TIMEOUT_MS`.
fn request_deadline(config: &QueryConfig) -> Duration {
    Duration::from_millis(config.timeout_ms.saturating_mul(2))
}

impl Shared {
    fn quantum(&self) -> TimeDelta {
        TimeDelta::seconds(i64::try_from(self.config.cache.quantization_seconds).unwrap_or(10))
    }

    /// A live range rounded so that polling clients share cache entries.
    fn quantise(&self, range: TimeRange) -> TimeRange {
        range.quantised(Utc::now(), self.quantum())
    }

    /// Answers from the cache under `key`, computing with `compute` on a miss.
    async fn cached<T, F, Fut>(&self, key: String, ttl: u64, compute: F) -> Response
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (result, outcome) = self
            .cache
            .get_or_compute(key, ttl, || self.within_deadline(compute()))
            .await;
        self.respond(result, outcome)
    }

    /// Answers without the cache.
    async fn uncached<T, Fut>(&self, compute: Fut) -> Response
    where
        T: Serialize,
        Fut: Future<Output = Result<T>>,
    {
        let result = self.within_deadline(compute).await;
        self.respond(result, Outcome::Bypass)
    }

    /// Runs `compute` within the request deadline and encodes its answer as JSON.
    async fn within_deadline<T, Fut>(&self, compute: Fut) -> Result<Bytes>
    where
        T: Serialize,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = request_deadline(&self.config);
        match tokio::time::timeout(deadline, compute).await {
            Ok(value) => to_json(&value?),
            Err(_) => Err(ApiError::Timeout(
                format!("request took longer than {deadline:?}").into(),
            )),
        }
    }

    fn respond(&self, result: Result<Bytes>, outcome: Outcome) -> Response {
        match result {
            Ok(body) => {
                let mut response = Response::new(Body::from(body));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                headers.insert(
                    "x-panopticon-cache",
                    HeaderValue::from_static(outcome.as_str()),
                );
                response
            }
            Err(error) => {
                if matches!(
                    error,
                    ApiError::Timeout(_) | ApiError::Unavailable(_) | ApiError::Internal(_)
                ) {
                    self.metrics
                        .elasticsearch_errors
                        .get_or_create(&crate::metrics::ErrorLabel {
                            kind: error.metric_label(),
                        })
                        .inc();
                }
                error.into_response()
            }
        }
    }
}

/// A request whose time range is live-quantised and whose answer is cached under a key.
pub trait Cacheable {
    fn range_mut(&mut self) -> &mut TimeRange;
    fn cache_key(&self, prefix: &str) -> String;
}

/// Every search request keeps its range in `range` and its key in `key`.
macro_rules! cacheable {
    ($($request:ty),* $(,)?) => {$(
        impl Cacheable for $request {
            fn range_mut(&mut self) -> &mut TimeRange {
                &mut self.range
            }
            fn cache_key(&self, prefix: &str) -> String {
                self.key(prefix)
            }
        }
    )*};
}

cacheable!(
    logs::LogSearch,
    spans::SpanSearch,
    services::Overview,
    services::Endpoints,
    traces::ServiceTraces,
    traces::EndpointTraces,
    metrics::MetricsRequest,
);

/// Reads a request from its path segments and query string: a 400 naming every bad part.
fn read<P, T>(
    path: Result<P>,
    query: Option<&str>,
    parse: impl FnOnce(&mut Params, P) -> T,
) -> Result<T> {
    let path = path?;
    let mut p = Params::parse(query);
    let request = parse(&mut p, path);
    p.finish(request)
}

/// Which cache settings a route uses.
#[derive(Clone, Copy)]
enum CacheClass {
    Metrics,
    Search,
}

impl Shared {
    /// Quantises a live range, then answers through the cache.
    async fn search_route<R, T, F, Fut>(
        &self,
        request: Result<R>,
        class: CacheClass,
        compute: F,
    ) -> Response
    where
        R: Cacheable,
        T: Serialize,
        F: FnOnce(R) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut request = match request {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        let range = self.quantise(*request.range_mut());
        *request.range_mut() = range;
        let c = &self.config.cache;
        let (prefix, ttl) = match class {
            CacheClass::Metrics => (&c.metrics_prefix, c.metrics_ttl_seconds),
            CacheClass::Search => (&c.query_prefix, c.query_ttl_seconds),
        };
        let key = request.cache_key(prefix);
        self.cached(key, ttl, || compute(request)).await
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// A path segment as text: percent-decoded (`GET%20%2Forders` is `GET /orders`), non-empty
/// and bounded.
fn segment(name: &str, value: std::result::Result<Path<String>, PathRejection>) -> Result<String> {
    match value {
        Ok(Path(v)) if !v.trim().is_empty() && v.len() <= 512 => Ok(v),
        Ok(_) => Err(ApiError::bad(name, "must be 1 to 512 characters")),
        Err(e) => Err(ApiError::bad(name, e.body_text())),
    }
}

fn segments(
    names: [&str; 2],
    value: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String)> {
    match value {
        Ok(Path((a, b))) => Ok((
            segment(names[0], Ok(Path(a)))?,
            segment(names[1], Ok(Path(b)))?,
        )),
        Err(e) => Err(ApiError::bad(names[0], e.body_text())),
    }
}

// ---- handlers -------------------------------------------------------------------------------

/// Liveness: `{"status": "정상", "timestamp": …}`, the body existing health checks expect.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process serves requests", body = Object,
        example = json!({"status": "정상", "timestamp": "2026-11-25T02:23:52.266Z"}))))]
pub async fn health() -> Response {
    panopticon_common::admin::health_body().into_response()
}

/// Readiness: Elasticsearch answers. Redis is reported but optional.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Object),
              (status = 503, description = "Elasticsearch does not answer", body = Object)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let redis = match state.0.cache.ping().await {
        None => "off",
        Some(true) => "up",
        Some(false) => "down",
    };
    match tokio::time::timeout(Duration::from_secs(5), state.0.es.ping()).await {
        Ok(Ok(())) => axum::Json(json!({"status": "ready", "redis": redis})).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "reason": e.to_string(), "redis": redis})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "not ready", "reason": "Elasticsearch did not answer in 5s", "redis": redis}),
            ),
        )
            .into_response(),
    }
}

/// All spans and logs of one trace, oldest first.
#[utoipa::path(get, path = "/query/traces/{traceId}", tag = "traces",
    params(
        ("traceId" = String, Path, description = "The trace id"),
        ("service" = Option<String>, Query, description = "Only this service's spans and logs"),
        ("environment" = Option<String>, Query, description = "Only this environment (aliases such as prod are normalised)"),
    ),
    responses((status = 200, body = traces::TraceDetail),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trace(
    State(state): State<AppState>,
    trace_id: std::result::Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = &state.0;
    let lookup = read(segment("traceId", trace_id), q.as_deref(), |p, id| {
        traces::TraceLookup::parse(p, id)
    });
    let lookup = match lookup {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    s.uncached(async {
        let (spans_query, logs_query) = (lookup.spans_query(), lookup.logs_query());
        let (spans, logs) = futures::try_join!(
            search(&s.es, &s.streams.spans, &spans_query),
            search(&s.es, &s.streams.logs, &logs_query),
        )?;
        traces::trace_response(&lookup, &spans, &logs).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no spans or logs found for trace_id {}",
                lookup.trace_id
            ))
        })
    })
    .await
}

/// Log search, newest first by default.
#[utoipa::path(get, path = "/query/logs", tag = "logs",
    params(
        ("service_name" = Option<String>, Query),
        ("environment" = Option<String>, Query, description = "Normalised like ingest does (prod → production)"),
        ("level" = Option<String>, Query, description = "DEBUG, INFO, WARN or ERROR (any case)"),
        ("trace_id" = Option<String>, Query),
        ("span_id" = Option<String>, Query),
        ("message" = Option<String>, Query, description = "Full-text; every term must match"),
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 15 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("page" = Option<u64>, Query, minimum = 1, description = "1-based; page × size ≤ 10000"),
        ("size" = Option<u64>, Query, minimum = 1, description = "Default 50; values above 1000 are served as 1000"),
        ("sort" = Option<String>, Query, description = "asc or desc (default)"),
    ),
    responses((status = 200, body = logs::LogPage), (status = 400, body = ErrorBody)))]
pub async fn search_logs(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let s = &state.0;
    let request = read(Ok(()), q.as_deref(), |p, ()| {
        logs::LogSearch::parse(p, Utc::now())
    });
    s.search_route(request, CacheClass::Search, |r| async move {
        let answer = search(&s.es, &s.streams.logs, &r.query()).await?;
        Ok(logs::response(&r, &answer))
    })
    .await
}

/// Span search.
#[utoipa::path(get, path = "/query/spans", tag = "spans",
    params(
        ("service_name" = Option<String>, Query),
        ("environment" = Option<String>, Query),
        ("name" = Option<String>, Query, description = "Exact span name"),
        ("kind" = Option<String>, Query, description = "SERVER, CLIENT, INTERNAL, PRODUCER or CONSUMER"),
        ("status" = Option<String>, Query, description = "OK or ERROR"),
        ("min_duration_ms" = Option<f64>, Query, minimum = 0),
        ("max_duration_ms" = Option<f64>, Query, minimum = 0),
        ("trace_id" = Option<String>, Query),
        ("parent_span_id" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 15 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("page" = Option<u64>, Query, minimum = 1),
        ("size" = Option<u64>, Query, minimum = 1, description = "Default 50; above 1000 served as 1000"),
        ("sort" = Option<String>, Query, description = "duration_asc, duration_desc, start_time_asc, start_time_desc (default)"),
    ),
    responses((status = 200, body = spans::SpanPage), (status = 400, body = ErrorBody)))]
pub async fn search_spans(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let s = &state.0;
    let request = read(Ok(()), q.as_deref(), |p, ()| {
        spans::SpanSearch::parse(p, Utc::now())
    });
    s.search_route(request, CacheClass::Search, |r| async move {
        let answer = search(&s.es, &s.streams.spans, &r.query()).await?;
        Ok(spans::response(&r, &answer))
    })
    .await
}

/// Services ranked by SERVER-span measures, one row per service and environment.
#[utoipa::path(get, path = "/query/services", tag = "services",
    params(
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 60 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("environment" = Option<String>, Query),
        ("name_filter" = Option<String>, Query, description = "Case-insensitive substring of the service name"),
        ("sort_by" = Option<String>, Query, description = "request_count (default), latency_p95_ms or error_rate"),
        ("limit" = Option<u64>, Query, minimum = 1, description = "Rows; default 50, above 1000 served as 1000"),
    ),
    responses((status = 200, body = services::ServiceOverview), (status = 400, body = ErrorBody)))]
pub async fn overview(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let s = &state.0;
    let request = read(Ok(()), q.as_deref(), |p, ()| {
        services::Overview::parse(p, Utc::now())
    });
    s.search_route(request, CacheClass::Search, |r| async move {
        let answer = search(&s.es, &s.streams.spans, &r.query()).await?;
        services::overview_response(&r, &answer)
    })
    .await
}

/// A service's endpoints ranked by `sort_by` over all of them, then cut to `limit`.
#[utoipa::path(get, path = "/query/services/{service}/endpoints", tag = "services",
    params(
        ("service" = String, Path),
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 60 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("environment" = Option<String>, Query),
        ("name_filter" = Option<String>, Query, description = "Case-insensitive substring of the endpoint"),
        ("sort_by" = Option<String>, Query, description = "request_count (default), latency_p95_ms or error_rate"),
        ("metric" = Option<String>, Query, description = "Same as sort_by (sort_by wins)"),
        ("limit" = Option<u64>, Query, minimum = 1, description = "Default 10; above 1000 served as 1000"),
    ),
    responses((status = 200, body = services::EndpointRanking), (status = 400, body = ErrorBody)))]
pub async fn endpoints(
    State(state): State<AppState>,
    service: std::result::Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = &state.0;
    let request = read(segment("service", service), q.as_deref(), |p, service| {
        services::Endpoints::parse(p, service, Utc::now())
    });
    s.search_route(request, CacheClass::Search, |r| async move {
        let answer = search(&s.es, &s.streams.spans, &r.query()).await?;
        services::endpoints_response(&r, &answer)
    })
    .await
}

/// Recent SERVER spans of one endpoint: all, errors, or the slowest.
#[utoipa::path(get, path = "/query/services/{service}/endpoints/{endpoint}/traces", tag = "traces",
    params(
        ("service" = String, Path),
        ("endpoint" = String, Path, description = "The span name, percent-encoded (GET%20%2Forders)"),
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 60 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("environment" = Option<String>, Query),
        ("status" = Option<String>, Query, description = "ERROR, or SLOW (at or above slow_percentile)"),
        ("limit" = Option<u64>, Query, minimum = 1, description = "Default 20; above 1000 served as 1000"),
        ("slow_percentile" = Option<f64>, Query, minimum = 50, maximum = 100, description = "Default 95"),
    ),
    responses((status = 200, body = Vec<traces::EndpointTrace>), (status = 400, body = ErrorBody)))]
pub async fn endpoint_traces(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = &state.0;
    let request = read(
        segments(["service", "endpoint"], path),
        q.as_deref(),
        |p, (service, endpoint)| traces::EndpointTraces::parse(p, service, endpoint, Utc::now()),
    );
    s.search_route(request, CacheClass::Search, |request| async move {
        let threshold = if request.status == Some(traces::EndpointStatus::Slow) {
            let answer = search(&s.es, &s.streams.spans, &request.threshold_query()).await?;
            let hits = answer["hits"]["total"]["value"].as_u64().unwrap_or(1);
            if hits == 0 {
                return Ok(Vec::new());
            }
            Some(crate::search::percentile(
                &answer["aggregations"]["threshold"],
                request.slow_percentile,
            ))
        } else {
            None
        };
        let answer = search(&s.es, &s.streams.spans, &request.query(threshold)).await?;
        Ok(traces::endpoint_traces_response(&answer))
    })
    .await
}

/// A service's traces, by their root SERVER span.
#[utoipa::path(get, path = "/query/services/{service}/traces", tag = "traces",
    params(
        ("service" = String, Path),
        ("status" = Option<String>, Query, description = "OK or ERROR"),
        ("min_duration_ms" = Option<f64>, Query, minimum = 0),
        ("max_duration_ms" = Option<f64>, Query, minimum = 0),
        ("from" = Option<String>, Query, description = "ISO-8601; default to − 60 min"),
        ("to" = Option<String>, Query, description = "ISO-8601; default now"),
        ("environment" = Option<String>, Query),
        ("page" = Option<u64>, Query, minimum = 1),
        ("size" = Option<u64>, Query, minimum = 1, description = "Default 20; above 200 served as 200"),
        ("sort" = Option<String>, Query, description = "duration_desc (default), duration_asc, start_time_desc, start_time_asc"),
    ),
    responses((status = 200, body = traces::TracePage), (status = 400, body = ErrorBody)))]
pub async fn service_traces(
    State(state): State<AppState>,
    service: std::result::Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = &state.0;
    let request = read(segment("service", service), q.as_deref(), |p, service| {
        traces::ServiceTraces::parse(p, service, Utc::now())
    });
    s.search_route(request, CacheClass::Search, |r| async move {
        let answer = search(&s.es, &s.streams.spans, &r.query()).await?;
        Ok(traces::service_traces_response(&r, &answer))
    })
    .await
}

/// A service's request count, latency percentiles and error rate per interval bucket.
#[utoipa::path(get, path = "/query/services/{service}/metrics", tag = "metrics",
    params(
        ("service" = String, Path),
        ("environment" = Option<String>, Query, description = "Default: all environments, summed"),
        ("metric" = Option<String>, Query, description = "Only this series: http_requests_total, latency_p95_ms, latency_p90_ms, latency_p50_ms or error_rate"),
        ("from" = Option<String>, Query, description = "ISO-8601. Without from and to: the last 15 minutes"),
        ("to" = Option<String>, Query, description = "ISO-8601"),
        ("interval" = Option<String>, Query, description = "<n>s, <n>m, <n>h or <n>d; default from the range length"),
        ("intervalMinutes" = Option<u64>, Query, minimum = 1, description = "Interval in minutes (wins over interval)"),
    ),
    responses((status = 200, body = Vec<metrics::Series>), (status = 400, body = ErrorBody)))]
pub async fn service_metrics(
    State(state): State<AppState>,
    service: std::result::Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = &state.0;
    let config = &s.config;
    let request = read(segment("service", service), q.as_deref(), |p, service| {
        metrics::MetricsRequest::parse(
            p,
            service,
            Utc::now(),
            i64::try_from(config.metrics.default_window_minutes).unwrap_or(15),
            s.quantum(),
        )
    });
    s.search_route(request, CacheClass::Metrics, |request| async move {
        let sources = metrics::Sources {
            es: &s.es,
            spans: &s.streams.spans,
            rollups: config
                .metrics
                .rollup_enabled
                .then_some(s.rollup_alias.as_str()),
            rollup_bucket_seconds: config.metrics.rollup_bucket_seconds,
        };
        metrics::fetch(&sources, &request).await
    })
    .await
}

/// Unknown routes: 404 with NestJS's body (`Cannot GET /x`), which existing clients recognise.
pub async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "statusCode": 404,
            "message": format!("Cannot GET {}", uri.path()),
            "error": "Not Found",
        })),
    )
        .into_response()
}

/// Methods other than GET/HEAD: 405 with a JSON body.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({
            "statusCode": 405,
            "message": "Only GET is served",
            "error": "Method Not Allowed",
        })),
    )
        .into_response()
}
