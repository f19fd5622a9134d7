//! The HTTP server on `ERROR_STREAM_PORT`: Socket.IO, the plain WebSocket, the probes and
//! metrics, behind the origin check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use panopticon_model::config::AlertConfig;
use prometheus_client::registry::Registry;
use serde_json::json;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use crate::access::{Gate, OriginPolicy, Refused};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::{socketio, websocket};

/// What every connection shares.
pub struct AlertState {
    pub config: AlertConfig,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
    pub gate: Gate,
    pub origins: OriginPolicy,
    /// True once the error topic's partitions are assigned.
    pub ready: Arc<AtomicBool>,
    pub registry: Arc<Registry>,
    /// Cancelled when the process stops: WebSocket sessions close.
    pub shutdown: CancellationToken,
}

impl AlertState {
    /// `Ok` once the error topic is being read, else why not: `/ready` on both ports.
    pub fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(format!(
                "not reading {} yet (Kafka or the topic unavailable)",
                self.config.error_topic
            ))
        }
    }
}

/// The whole HTTP surface, and the Socket.IO handle (to close its clients on shutdown).
pub fn router(state: Arc<AlertState>) -> (Router, SocketIo) {
    let (socketio_layer, io) = socketio::layer(state.clone());
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(readiness))
        .route("/metrics", get(metrics))
        .route(&state.config.websocket_path, get(websocket::upgrade))
        .with_state(state.clone())
        .layer(socketio_layer)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_origin,
        ));
    let cors = panopticon_common::cors::layer(
        &state.config.allowed_origins,
        &[Method::GET, Method::POST, Method::OPTIONS],
        &[header::CONTENT_TYPE, header::AUTHORIZATION],
    );
    if let Some(cors) = cors {
        // Socket.IO's polling transport is plain HTTP: listed origins need CORS headers.
        app = app.layer(cors);
    }
    (app, io)
}

/// Refuses a connection from a web origin that is not allowed, before any protocol runs.
async fn check_origin(
    State(state): State<Arc<AlertState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let guarded = path.starts_with(&state.config.socketio_path)
        || path.starts_with(&state.config.websocket_path);
    if guarded {
        let header_str = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let origin = header_str(header::ORIGIN);
        if !state.origins.allows(origin, header_str(header::HOST)) {
            let refused = Refused::Origin(origin.unwrap_or_default().to_owned());
            state.gate.refused(&refused);
            return refusal_response(&refused);
        }
    }
    next.run(request).await
}

/// An HTTP refusal: status and a JSON body in the error shape of the query API
/// (`statusCode`, `message`, `error`).
pub fn refusal_response(refused: &Refused) -> Response {
    let status = refused.status();
    let mut body = json!({
        "statusCode": status.as_u16(),
        "message": refused.to_string(),
        "error": status.canonical_reason().unwrap_or_default(),
    });
    if let Refused::Parameter(bad) = refused {
        body["errors"] = json!([{"parameter": bad.parameter, "message": bad.message}]);
    }
    (status, Json(body)).into_response()
}

/// Liveness: `{"status": "정상", "timestamp": …}`, the body existing health checks expect.
async fn health() -> Response {
    panopticon_common::admin::health_body().into_response()
}

/// Ready once the error topic is being read.
async fn readiness(State(state): State<Arc<AlertState>>) -> Response {
    match state.readiness() {
        Ok(()) => {
            Json(json!({"status": "ready", "clients": state.gate.connected()})).into_response()
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AlertState>>) -> Response {
    panopticon_common::admin::encode_metrics(&state.registry)
}
