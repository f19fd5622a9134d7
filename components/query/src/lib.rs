//! The query component: the `/query` HTTP API the dashboard reads, on `PORT` (3001).
//!
//! Contract:
//! - Routes, parameters and JSON shapes are the ones the dashboard reads ([`ROUTES`]; OpenAPI
//!   at `/api-docs-json`, UI at `/api-docs`), with consistent semantics: environments are
//!   normalised on every route the way ingest stores them; rankings count SERVER spans and
//!   filter names before the top-N; `status=SLOW` applies its percentile threshold; number
//!   fields are never null; roots carry `parent_span_id: null`.
//! - Bounded: every search has a size bound and a timeout (`QUERY_TIMEOUT_MS`, 504 when it
//!   runs out; 503 when Elasticsearch is unreachable or overloaded). `size` above a route's
//!   maximum is clamped; a page past the engine's 10 000-hit window is a 400.
//! - Bad input is a 400 whose body names each bad parameter; unknown routes are 404; a 500
//!   never carries internal detail.
//! - Metric series come from rollups where they provably cover a window and raw spans
//!   elsewhere ([`series`]).
//! - Answers are cached in Redis ([`cache`]); live ranges are rounded to
//!   `METRICS_QUANTIZATION_SECONDS` so polling clients share entries. Redis trouble is a miss.
//! - Optional bearer-token auth on `/query/*` (tokens from `QUERY_AUTH_TOKENS` or the file
//!   `QUERY_AUTH_TOKENS_FILE`, compared in constant time); off when none are configured.
//!   CORS only for the configured origins (`*` = any, only when configured so).

pub mod api;
pub mod auth;
pub mod cache;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod search;
pub mod series;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, Method, header};
use axum::routing::get;
use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{EnvSource, QueryConfig, vars};
use panopticon_model::rollup::{RollupIndices, SeriesKind};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, Shared};
use crate::auth::Tokens;
use crate::cache::Cache;
use crate::metrics::Metrics;

/// Every API route, as documented.
pub const ROUTES: [&str; 10] = [
    "/health",
    "/ready",
    "/query/traces/{traceId}",
    "/query/logs",
    "/query/spans",
    "/query/services",
    "/query/services/{service}/metrics",
    "/query/services/{service}/endpoints",
    "/query/services/{service}/endpoints/{endpoint}/traces",
    "/query/services/{service}/traces",
];

/// Runtime options that are not query configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the API listens; `None` uses `0.0.0.0:PORT`.
    pub listen: Option<SocketAddr>,
    /// Where the common admin server (`/health`, `/ready`, `/metrics`, as every component
    /// has) listens; the API port serves the same probes too.
    pub admin_addr: Option<SocketAddr>,
}

/// Builds the shared state from configuration and the process environment's secrets.
pub fn state(config: QueryConfig, registry: &mut Registry) -> anyhow::Result<AppState> {
    let metrics = Metrics::register(registry);
    // Each search is bounded by QUERY_TIMEOUT_MS (the client's timeout).
    let mut es_config = config.elasticsearch.clone();
    es_config.request_timeout_ms = config.timeout_ms;
    let env = EnvSource::process();
    let es = EsClient::new(&es_config, &EsSecrets::from_env(&env))?;
    let redis_password = env.secret(&vars::REDIS_PASSWORD);
    let cache = Cache::new(&config.cache, redis_password, metrics.clone())?;
    let rollup_alias =
        RollupIndices::new(&config.elasticsearch.streams.metrics).alias(SeriesKind::Service);
    Ok(AppState(Arc::new(Shared {
        es,
        streams: config.elasticsearch.streams.clone(),
        rollup_alias,
        config,
        cache,
        metrics,
    })))
}

/// The whole HTTP surface: API, probes, metrics and OpenAPI.
pub fn router(state: AppState, registry: Arc<Registry>, tokens: Option<Arc<Tokens>>) -> Router {
    let query = Router::new()
        .route("/query/traces/{traceId}", get(api::trace))
        .route("/query/logs", get(api::search_logs))
        .route("/query/spans", get(api::search_spans))
        .route("/query/services", get(api::overview))
        .route(
            "/query/services/{service}/metrics",
            get(api::service_metrics),
        )
        .route("/query/services/{service}/endpoints", get(api::endpoints))
        .route(
            "/query/services/{service}/endpoints/{endpoint}/traces",
            get(api::endpoint_traces),
        )
        .route("/query/services/{service}/traces", get(api::service_traces))
        .route_layer(axum::middleware::from_fn_with_state(tokens, auth::require));
    let metrics = state.0.metrics.clone();
    let cors = cors(&state.0.config.cors_allowed_origins);
    let mut app = Router::new()
        .merge(query)
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/api-docs", get(openapi::ui))
        .route("/api-docs-json", get(openapi::document))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { panopticon_common::admin::encode_metrics(&registry) }
            }),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ));
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app
}

/// CORS from `CORS_ALLOWED_ORIGINS`: none when unset (never "reflect any origin").
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    panopticon_common::cors::layer(
        origins,
        &[Method::GET, Method::HEAD, Method::OPTIONS],
        &[
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-requested-with"),
            header::ACCEPT,
        ],
    )
}

/// Runs the API until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(
    config: QueryConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tokens = Tokens::load(
        vars::QUERY_AUTH_TOKENS.name,
        EnvSource::process().secret_even_blank(&vars::QUERY_AUTH_TOKENS),
        vars::QUERY_AUTH_TOKENS_FILE.name,
        config.auth_tokens_file.as_deref(),
    )?;
    if tokens.is_none() {
        tracing::info!(
            "bearer-token auth is off (set QUERY_AUTH_TOKENS or QUERY_AUTH_TOKENS_FILE)"
        );
    }
    if config.cors_allowed_origins.iter().any(|o| o == "*") {
        tracing::warn!("CORS_ALLOWED_ORIGINS=*: any web origin may read this API");
    } else if config.cors_allowed_origins.is_empty() {
        tracing::info!(
            "CORS is off: a dashboard served from another origin cannot read this API (set \
             CORS_ALLOWED_ORIGINS to a comma-separated list of origins, or * for any)"
        );
    } else {
        tracing::info!(
            origins = ?config.cors_allowed_origins,
            "CORS allows these origins (CORS_ALLOWED_ORIGINS)"
        );
    }
    let listen = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.port)));
    let mut registry = Registry::default();
    let state = state(config, &mut registry)?;
    if !state.0.cache.has_redis() {
        tracing::info!("Redis cache is off (set REDIS_HOST or REDIS_URL)");
    }
    let registry = Arc::new(registry);
    let admin_stop = CancellationToken::new();
    if let Some(admin_addr) = options.admin_addr {
        let es = state.0.es.clone();
        let ready: panopticon_common::admin::ReadinessProbe = Arc::new(move || {
            let es = es.clone();
            Box::pin(async move { es.ping().await.map_err(|e| e.to_string()) })
        });
        panopticon_common::admin::serve(admin_addr, registry.clone(), ready, admin_stop.clone())
            .await
            .with_context(|| format!("cannot bind the admin server on {admin_addr}"))?;
    }
    let _admin_stop = admin_stop.drop_guard();
    let app = router(state, registry, tokens.map(Arc::new));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "query API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("query API server failed")?;
    tracing::info!("query stopped");
    Ok(())
}
