//! The alert component: error logs pushed live to dashboards, on `ERROR_STREAM_PORT` (3010).
//!
//! Contract:
//! - Every replica pushes every error: the error topic is read without a consumer group, all
//!   partitions assigned, live from the end ([`consumer`]). The last `ERROR_STREAM_REPLAY_SIZE`
//!   errors are kept for clients that ask for a replay.
//! - Socket.IO as the dashboard expects ([`socketio`]): path `/ws/error-logs`, default
//!   namespace, event `error-log`, the dashboard's LogItem payload (normalised by ingest). A
//!   plain WebSocket streams the same JSON ([`websocket`]).
//! - Clients may filter by service, environment and minimum level, and ask for a replay, in the
//!   handshake query ([`filter`]); the dashboard sends nothing and gets every error.
//! - Optional bearer-token auth (`ERROR_STREAM_AUTH_TOKENS`, `ERROR_STREAM_AUTH_TOKENS_FILE`)
//!   and an origin allowlist (`ERROR_STREAM_WS_ORIGINS`; `*` = any, only when configured so)
//!   on both ([`access`]).
//! - Backpressure: the consumer never waits for a client ([`hub`]). Each client has a bounded
//!   queue (`ERROR_STREAM_CLIENT_QUEUE`); a client that falls behind misses events, is told how
//!   many, and carries on ([`deliver`]). Nothing else slows down.
//! - `/health` (`{"status": "정상", "timestamp": …}`), `/ready` (the topic is being read),
//!   `/metrics`.
//!
//! Delivery is at most once per connected client: a client that is disconnected while an
//! error passes does not get it later unless it asks for a replay when it reconnects.

pub mod access;
pub mod consumer;
pub mod deliver;
pub mod event;
pub mod filter;
pub mod hub;
pub mod metrics;
pub mod server;
pub mod socketio;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use panopticon_common::auth::Tokens;
use panopticon_kafka::KafkaSecrets;
use panopticon_model::config::{AlertConfig, EnvSource, vars};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::access::{Gate, OriginPolicy};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::server::AlertState;

/// Runtime options that are not alert configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where Socket.IO, the WebSocket and the probes listen; `None` uses `0.0.0.0:ERROR_STREAM_PORT`.
    pub listen: Option<SocketAddr>,
    /// Where the common admin server (`/health`, `/ready`, `/metrics`, as every component
    /// has) listens; the main port serves the same probes too.
    pub admin_addr: Option<SocketAddr>,
}

/// Serves until `shutdown` is cancelled, then closes every client's connection.
pub async fn run(
    config: AlertConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tokens = Tokens::load(
        vars::ERROR_STREAM_AUTH_TOKENS.name,
        EnvSource::process().secret_even_blank(&vars::ERROR_STREAM_AUTH_TOKENS),
        vars::ERROR_STREAM_AUTH_TOKENS_FILE.name,
        config.auth_tokens_file.as_deref(),
    )?;
    if tokens.is_none() {
        tracing::info!(
            "token auth is off (set ERROR_STREAM_AUTH_TOKENS or ERROR_STREAM_AUTH_TOKENS_FILE)"
        );
    }
    if config.allowed_origins.iter().any(|o| o == "*") {
        tracing::warn!("ERROR_STREAM_WS_ORIGINS=*: pages of any web origin may connect");
    }
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let registry = Arc::new(registry);
    let ready = Arc::new(AtomicBool::new(false));
    let hub = Arc::new(Hub::new(config.replay_size, config.client_queue));
    let state = Arc::new(AlertState {
        gate: Gate::new(tokens, config.max_clients, metrics.clone()),
        origins: OriginPolicy::new(&config.allowed_origins),
        hub: hub.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        registry: registry.clone(),
        shutdown: shutdown.clone(),
        config,
    });
    let config = &state.config;

    let admin_stop = CancellationToken::new();
    let _admin_stop = admin_stop.clone().drop_guard();
    if let Some(admin_addr) = options.admin_addr {
        let state = state.clone();
        let probe: panopticon_common::admin::ReadinessProbe = Arc::new(move || {
            let readiness = state.readiness();
            Box::pin(async move { readiness })
        });
        panopticon_common::admin::serve(admin_addr, registry.clone(), probe, admin_stop)
            .await
            .with_context(|| format!("cannot bind the admin server on {admin_addr}"))?;
    }

    let listen = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.port)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let (app, io) = server::router(state.clone());
    tracing::info!(
        address = %listener.local_addr()?,
        socketio = %config.socketio_path,
        websocket = %config.websocket_path,
        "alert listening"
    );

    let reader = tokio::spawn({
        let config = config.clone();
        let shutdown = shutdown.clone();
        async move {
            consumer::run(
                &config,
                &KafkaSecrets::from_process_env(),
                hub,
                metrics,
                ready,
                shutdown,
            )
            .await
        }
    });
    let served = axum::serve(listener, app).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            // Socket.IO connections close at the transport, not with a DISCONNECT packet: after
            // "io server disconnect" socket.io-client would not reconnect, after "transport
            // close" the dashboard's client reconnects (through the Service, to a live replica).
            // WebSocket sessions get a close frame (1001).
            io.close().await;
        }
    });
    let (served, read) = tokio::join!(
        async {
            // A reader that fails to start stops the server too.
            let result = served.await.context("alert server failed");
            shutdown.cancel();
            result
        },
        async {
            let result = reader.await.context("error-topic reader panicked")?;
            if result.is_err() {
                shutdown.cancel();
            }
            result
        }
    );
    served?;
    read?;
    tracing::info!("alert stopped");
    Ok(())
}
