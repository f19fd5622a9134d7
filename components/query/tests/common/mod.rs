//! Shared by the query tests and benchmark: streams and rollup indices of their own in the
//! stack's OpenSearch, data stored exactly as ingest stores it, rollups written by the rollup
//! component's own aggregator and writer, and the API router over them with the stack's Redis.
#![allow(dead_code)]

use std::sync::Arc;

use anyhow::Result;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt as _;
use panopticon_es::bulk::{self, BulkBody};
use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{EnvSource, QueryConfig};
use panopticon_model::rollup::{RollupIndices, Window};
use panopticon_model::{DecodeContext, Limits, decode_log, decode_span, ids};
use panopticon_query::auth::Tokens;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const MIN: i64 = 60_000;

/// A private corner of the stack: streams, rollup indices, cache prefixes.
pub struct World {
    pub es: EsClient,
    /// Environment variables of a query process over this world.
    pub vars: Vec<(String, String)>,
    pub name: String,
}

impl World {
    pub async fn create(prefix: &str) -> Result<Self> {
        Self::named(&panopticon_e2e::unique_name(prefix)).await
    }

    /// A world with a fixed name (the benchmark keeps its data between runs).
    pub async fn named(name: &str) -> Result<Self> {
        let name = name.to_owned();
        let url = panopticon_e2e::elasticsearch_url();
        let redis = panopticon_e2e::redis_url();
        let vars: Vec<(String, String)> = [
            ("ELASTICSEARCH_NODE", url),
            ("ELASTICSEARCH_APM_SPAN_STREAM", format!("traces-{name}")),
            ("ELASTICSEARCH_APM_LOG_STREAM", format!("logs-{name}")),
            ("ELASTICSEARCH_APM_ROLLUP_STREAM", format!("metrics-{name}")),
            ("REDIS_URL", redis),
            ("METRICS_CACHE_PREFIX", format!("{name}:metrics")),
            ("QUERY_CACHE_PREFIX", format!("{name}:query")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let es_config = QueryConfig::from_env(&source(&vars, &[]))?.elasticsearch;
        let world = Self {
            es: EsClient::new(&es_config, &EsSecrets::default())?,
            vars,
            name,
        };
        let config = world.config(&[])?;
        let streams = &config.elasticsearch.streams;
        panopticon_es::bootstrap::ensure_stream(
            &world.es,
            &streams.spans_template,
            &streams.spans,
            panopticon_es::templates::StreamKind::Spans,
            config.elasticsearch.index_replicas,
        )
        .await?;
        panopticon_es::bootstrap::ensure_stream(
            &world.es,
            &streams.logs_template,
            &streams.logs,
            panopticon_es::templates::StreamKind::Logs,
            config.elasticsearch.index_replicas,
        )
        .await?;
        panopticon_es::bootstrap::ensure_rollup_templates(
            &world.es,
            streams,
            config.elasticsearch.index_replicas,
        )
        .await?;
        Ok(world)
    }

    /// The query configuration of this world, with `overrides`.
    pub fn config(&self, overrides: &[(&str, &str)]) -> Result<QueryConfig> {
        Ok(QueryConfig::from_env(&source(&self.vars, overrides))?)
    }

    pub fn spans(&self) -> String {
        format!("traces-{}", self.name)
    }

    pub fn logs(&self) -> String {
        format!("logs-{}", self.name)
    }

    pub fn rollup_indices(&self) -> RollupIndices {
        RollupIndices::new(&format!("metrics-{}", self.name))
    }

    /// Stores span events as ingest does.
    pub async fn index_spans(&self, events: &[Value]) -> Result<()> {
        let ctx_limits = Limits::default();
        let ctx = DecodeContext {
            limits: &ctx_limits,
            now: Utc::now(),
        };
        let spans = self.spans();
        let mut body = BulkBody::with_capacity(events.len() * 400);
        for event in events {
            let doc = decode_span(event, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = ids::span_id(&doc.trace_id, &doc.span_id);
            body.push_create(&spans, &id, &serde_json::to_vec(&doc)?);
        }
        self.bulk(body).await?;
        self.refresh(&spans).await
    }

    /// Stores log events as ingest does.
    pub async fn index_logs(&self, events: &[Value]) -> Result<()> {
        let ctx_limits = Limits::default();
        let ctx = DecodeContext {
            limits: &ctx_limits,
            now: Utc::now(),
        };
        let logs = self.logs();
        let mut body = BulkBody::with_capacity(events.len() * 400);
        for (i, event) in events.iter().enumerate() {
            let doc = decode_log(event, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
            body.push_create(&logs, &format!("log-{i}"), &serde_json::to_vec(&doc)?);
        }
        self.bulk(body).await?;
        self.refresh(&logs).await
    }

    /// Sends a bulk body; every item must be stored.
    pub async fn bulk(&self, body: BulkBody) -> Result<()> {
        Ok(bulk::send_all_stored(&self.es, body, "POST /_bulk (fixture)").await?)
    }

    pub async fn refresh(&self, target: &str) -> Result<()> {
        Ok(self.es.refresh(target).await?)
    }

    /// Rolls up the 60-second windows starting at `starts` with the rollup component itself.
    pub async fn roll(&self, starts: impl IntoIterator<Item = i64>) -> Result<()> {
        let aggregator = panopticon_rollup::window::Aggregator {
            es: self.es.clone(),
            spans: self.spans(),
            caps: panopticon_rollup::aggregate::Caps {
                services: 200,
                environments: 10,
                endpoints: 100,
            },
        };
        let writer = panopticon_rollup::writer::Writer {
            es: self.es.clone(),
            indices: self.rollup_indices(),
        };
        for start in starts {
            let window = Window::containing(start, 60);
            let rollup = aggregator
                .roll(&window)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let docs = panopticon_rollup::writer::documents(
                &writer.indices,
                &window,
                &rollup,
                &Utc::now(),
            );
            writer.write(&window, &docs).await?;
        }
        let alias = self.rollup_indices().base;
        self.refresh(&format!("{alias}-*")).await
    }

    /// The API over this world.
    pub fn api(&self, overrides: &[(&str, &str)]) -> Result<Api> {
        self.api_with_tokens(overrides, None)
    }

    pub fn api_with_tokens(
        &self,
        overrides: &[(&str, &str)],
        tokens: Option<Tokens>,
    ) -> Result<Api> {
        let config = self.config(overrides)?;
        let mut registry = Registry::default();
        let state = panopticon_query::state(config, &mut registry)?;
        let registry = Arc::new(registry);
        Ok(Api {
            router: panopticon_query::router(state, registry, tokens.map(Arc::new)),
        })
    }
}

fn source<'a>(vars: &'a [(String, String)], overrides: &'a [(&'a str, &'a str)]) -> EnvSource<'a> {
    EnvSource::from_fn(move |name| {
        overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    })
}

/// The in-process router.
pub struct Api {
    pub router: axum::Router,
}

/// An answer: status, headers, body as JSON (`Value::Null` when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub fn cache(&self) -> &str {
        self.headers
            .get("x-panopticon-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Api {
    pub async fn get(&self, uri: &str) -> Answer {
        self.request(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    pub async fn request(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// GET that must answer 200; returns the JSON.
    pub async fn ok(&self, uri: &str) -> Value {
        let a = self.get(uri).await;
        assert_eq!(a.status, StatusCode::OK, "GET {uri}: {}", a.text);
        a.json
    }
}

/// ISO-8601 with milliseconds, URL-encoded as `URLSearchParams` does.
pub fn iso_param(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).expect("time");
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace(':', "%3A")
}

pub fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A span event as applications publish it.
#[allow(clippy::too_many_arguments)]
pub fn span(
    service: &str,
    environment: &str,
    name: &str,
    kind: &str,
    error: bool,
    duration_ms: f64,
    at_ms: i64,
    trace: &str,
    span_id: &str,
    parent: Option<&str>,
) -> Value {
    let mut event = json!({
        "timestamp": at_ms,
        "service_name": service,
        "environment": environment,
        "trace_id": trace,
        "span_id": span_id,
        "name": name,
        "kind": kind,
        "duration_ms": duration_ms,
        "status": if error { "ERROR" } else { "OK" },
    });
    if let Some(p) = parent {
        event["parent_span_id"] = json!(p);
    }
    event
}

/// The known data set, starting at `t0` (a whole hour, hours in the past):
///
/// | service  | env (as sent → stored) | SERVER spans per minute, minutes 0–9                         |
/// |----------|------------------------|----------------------------------------------------------------|
/// | checkout | prod → production      | `GET /orders` ×10 (10..100 ms, 1 error), `POST /pay` ×5 (200..204 ms, 1 error) |
/// | checkout | stage → staging        | `GET /orders` ×2 (50 ms)                                       |
/// | search   | prod → production      | `GET /a/b` ×3 (1000, 2000, 3000 ms)                            |
/// | billing  | dev → development      | `GET /invoices` ×1 at minute 5 only (7 ms)                     |
///
/// Every checkout SERVER span of production has a CLIENT child `SELECT orders` (5 ms), which
/// no ranking may count. Trace `trace-0-0` also has two logs.
pub struct DataSet {
    pub t0: i64,
    pub spans: Vec<Value>,
    pub logs: Vec<Value>,
}

impl DataSet {
    pub fn new(t0: i64) -> Self {
        let mut spans = Vec::new();
        for minute in 0..10i64 {
            let at = |s: i64| t0 + minute * MIN + s * 1000;
            for i in 0..10i64 {
                let trace = format!("trace-{minute}-{i}");
                let id = format!("orders-{minute}-{i}");
                spans.push(span(
                    "checkout",
                    "prod",
                    "GET /orders",
                    "SERVER",
                    i == 0,
                    (10 + i * 10) as f64,
                    at(i),
                    &trace,
                    &id,
                    None,
                ));
                spans.push(span(
                    "checkout",
                    "prod",
                    "SELECT orders",
                    "CLIENT",
                    false,
                    5.0,
                    at(i),
                    &trace,
                    &format!("db-{minute}-{i}"),
                    Some(&id),
                ));
            }
            for i in 0..5i64 {
                let trace = format!("pay-{minute}-{i}");
                spans.push(span(
                    "checkout",
                    "prod",
                    "POST /pay",
                    "SERVER",
                    i == 4,
                    (200 + i) as f64,
                    at(20 + i),
                    &trace,
                    &format!("pay-{minute}-{i}"),
                    Some(""),
                ));
            }
            for i in 0..2i64 {
                spans.push(span(
                    "checkout",
                    "stage",
                    "GET /orders",
                    "SERVER",
                    false,
                    50.0,
                    at(30 + i),
                    &format!("stg-{minute}-{i}"),
                    &format!("stg-{minute}-{i}"),
                    None,
                ));
            }
            for i in 0..3i64 {
                spans.push(span(
                    "search",
                    "prod",
                    "GET /a/b",
                    "SERVER",
                    false,
                    ((i + 1) * 1000) as f64,
                    at(40 + i),
                    &format!("search-{minute}-{i}"),
                    &format!("search-{minute}-{i}"),
                    None,
                ));
            }
        }
        spans.push(span(
            "billing",
            "dev",
            "GET /invoices",
            "SERVER",
            false,
            7.0,
            t0 + 5 * MIN + 50_000,
            "bill-1",
            "bill-1",
            None,
        ));
        let logs = vec![
            json!({"timestamp": t0 + 100, "service_name": "checkout", "environment": "prod",
                   "level": "INFO", "message": "order received", "trace_id": "trace-0-0",
                   "span_id": "orders-0-0"}),
            json!({"timestamp": t0 + 200, "service_name": "checkout", "environment": "prod",
                   "level": "ERROR", "message": "payment declined by issuer", "trace_id": "trace-0-0",
                   "span_id": "orders-0-0", "labels": {"card": "visa"}}),
            json!({"timestamp": t0 + 5 * MIN, "service_name": "search", "environment": "prod",
                   "level": "WARN", "message": "slow shard"}),
        ];
        Self { t0, spans, logs }
    }

    /// SERVER spans matching `keep`, as (timestamp, duration, error).
    pub fn server_spans(&self, keep: impl Fn(&Value) -> bool) -> Vec<(i64, f64, bool)> {
        self.spans
            .iter()
            .filter(|s| s["kind"] == "SERVER" && keep(s))
            .map(|s| {
                (
                    s["timestamp"].as_i64().unwrap_or(0),
                    s["duration_ms"].as_f64().unwrap_or(0.0),
                    s["status"] == "ERROR",
                )
            })
            .collect()
    }
}

/// A whole hour, at least three hours ago (so no range in the tests counts as live).
pub fn past_hour() -> i64 {
    let now = Utc::now().timestamp_millis();
    let t = now - 3 * 3_600_000;
    t - t.rem_euclid(3_600_000)
}

/// A world loaded with the data set.
pub async fn loaded(prefix: &str) -> Result<(World, DataSet)> {
    let world = World::create(prefix).await?;
    let data = DataSet::new(past_hour());
    world.index_spans(&data.spans).await?;
    world.index_logs(&data.logs).await?;
    Ok((world, data))
}
