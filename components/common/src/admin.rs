//! The admin HTTP server every component runs on its own port:
//! - `GET /health`: liveness, 200 while the process serves requests;
//! - `GET /ready`: readiness, 200 when the component's dependencies answer, else 503 with the
//!   reason (JSON);
//! - `GET /metrics`: Prometheus text format from the component's registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Probes the component's dependencies: `Ok` when ready, else why not.
pub type ReadinessProbe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    ready: ReadinessProbe,
}

/// The admin routes, for embedding or tests.
pub fn router(registry: Arc<Registry>, ready: ReadinessProbe) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(AdminState { registry, ready })
}

async fn ready_handler(State(state): State<AdminState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), (state.ready)()).await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": "readiness probe timed out after 5s"})),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(state): State<AdminState>) -> Response {
    encode_metrics(&state.registry)
}

/// A registry in the Prometheus/OpenMetrics text format.
pub fn encode_metrics(registry: &Registry) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The `/health` body that existing probes and dashboards parse: `{"status":"정상","timestamp":<ISO 8601, ms, UTC>}`.
pub fn health_body() -> Json<serde_json::Value> {
    Json(json!({
        "status": "정상",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

/// Binds `addr` and serves until `shutdown` is cancelled. Returns the bound address (useful
/// with port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: ReadinessProbe,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "admin server listening");
    tokio::spawn(async move {
        let server = axum::serve(listener, router(registry, ready))
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(error) = server.await {
            tracing::error!(%error, "admin server failed");
        }
    });
    Ok(bound)
}
