//! The Socket.IO endpoint the dashboard uses (spec/dashboard-contract.md, "WebSocket: live
//! error feed"): Socket.IO v5 over Engine.IO v4 (and v4 over v3 for old clients), path
//! `ERROR_STREAM_WS_PATH` (`/ws/error-logs`), default namespace, websocket and polling
//! transports, event `error-log` with the LogItem payload.
//!
//! A client may set filters and `replay` in the handshake query (`io(url, { query })`, see
//! [`crate::filter`]) and present a token as `auth: { token }`, an `Authorization: Bearer`
//! header or `?token=`. A refused client gets Socket.IO's `connect_error` with the reason.
//! A client that missed events because it read too slowly receives
//! `error-log-missed` with `{ "missed": n }` before its next `error-log`.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::Sink;
use serde_json::json;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler as _;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio_util::sync::CancellationToken;

use crate::access::{ClientSlot, Refused};
use crate::deliver::{self, Outbound, Refusal};
use crate::filter::ClientOptions;
use crate::metrics::Transport;
use crate::server::AlertState;

/// The event of an error log.
pub const EVENT: &str = "error-log";
/// The event telling a client how many error logs it missed.
pub const MISSED_EVENT: &str = "error-log-missed";

/// The Socket.IO layer for the HTTP server, and its handle (to close it on shutdown).
pub fn layer(state: Arc<AlertState>) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .req_path(state.config.socketio_path.clone())
        .max_buffer_size(state.config.client_queue)
        .with_state(state)
        .build_layer();
    io.ns("/", on_connect.with(admit));
    (layer, io)
}

/// What [`admit`] decided, for [`on_connect`].
#[derive(Clone)]
struct Admission {
    options: ClientOptions,
    slot: Arc<Mutex<Option<ClientSlot>>>,
}

/// Connect middleware: parameters, token, client limit. An `Err` becomes `connect_error`.
async fn admit(
    socket: SocketRef,
    TryData(auth): TryData<serde_json::Value>,
    State(state): State<Arc<AlertState>>,
) -> Result<(), Refused> {
    let parts = socket.req_parts();
    let options = ClientOptions::parse(parts.uri.query(), state.config.replay_size)
        .map_err(Refused::from)
        .inspect_err(|refused| state.gate.refused(refused))?;
    let auth_token = auth
        .ok()
        .and_then(|a| a.get("token").and_then(|t| t.as_str()).map(str::to_owned));
    let slot = state.gate.admit(
        Transport::SocketIo,
        &[
            auth_token.as_deref(),
            panopticon_common::auth::bearer(&parts.headers),
            options.token.as_deref(),
        ],
    )?;
    socket.extensions.insert(Admission {
        options,
        slot: Arc::new(Mutex::new(Some(slot))),
    });
    Ok(())
}

async fn on_connect(socket: SocketRef, State(state): State<Arc<AlertState>>) {
    let Some(admission) = socket.extensions.get::<Admission>() else {
        return;
    };
    let slot = admission
        .slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let options = admission.options;
    tracing::debug!(sid = %socket.id, filter = ?options.filter, "Socket.IO client connected");
    let replay = options.replay.unwrap_or(state.config.replay_on_connect);
    let subscription = state.hub.subscribe(&options.filter, replay);
    let gone = CancellationToken::new();
    socket.on_disconnect({
        let gone = gone.clone();
        async move |socket: SocketRef| {
            tracing::debug!(sid = %socket.id, "Socket.IO client disconnected");
            gone.cancel();
        }
    });
    let outlet = SocketIoOutlet(socket);
    tokio::spawn(async move {
        let _slot = slot;
        let counters = state.metrics.counters(Transport::SocketIo);
        tokio::select! {
            () = deliver::forward(subscription, &options.filter, outlet, counters, None) => {}
            () = gone.cancelled() => {}
        }
    });
}

/// A socket as a never-waiting sink: socketioxide's per-socket buffer is the client's queue.
struct SocketIoOutlet(SocketRef);

impl Sink<Outbound> for SocketIoOutlet {
    type Error = Refusal;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outbound) -> Result<(), Refusal> {
        let sent = match item {
            Outbound::Event(event) => self.0.emit(EVENT, &*event.payload),
            Outbound::Missed(missed) => self.0.emit(MISSED_EVENT, &json!({ "missed": missed })),
            // Engine.IO pings on its own.
            Outbound::Keepalive => Ok(()),
        };
        sent.map_err(|e| match e {
            SendError::Socket(SocketError::InternalChannelFull) => Refusal::Full,
            SendError::Socket(SocketError::Closed) => Refusal::Closed,
            // Cannot happen for a JSON payload; drop the one message rather than the client.
            SendError::Serialize(_) => Refusal::Full,
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }
}
