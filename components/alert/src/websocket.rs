//! The plain WebSocket endpoint (`ERROR_STREAM_PLAIN_WS_PATH`, `/ws/errors`) for clients
//! without a Socket.IO library: `ws://host:3010/ws/errors?service=checkout&level=ERROR`.
//!
//! Each error is one text frame holding the same JSON object as Socket.IO's `error-log`
//! payload. A client that missed events receives `{"event":"missed","missed":n}` before its next
//! error (an error payload never has an `event` field). The server pings every
//! [`KEEPALIVE`] and closes a connection that sent nothing (not even a pong) for [`IDLE_LIMIT`].
//! Parameters are those of [`crate::filter`]; the token is an `Authorization: Bearer` header
//! or `?token=`. A refused upgrade is an HTTP error with a JSON body naming the cause.
//!
//! Each connection has a send task and a receive task; when either ends, the other is
//! aborted. On shutdown, clients get a close frame (1001, going away).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse as _, Response};
use futures::stream::SplitSink;
use futures::{Sink, SinkExt as _, StreamExt as _};
use serde_json::json;

use crate::access::{ClientSlot, Refused};
use crate::deliver::{self, Outbound, Refusal};
use crate::filter::ClientOptions;
use crate::metrics::Transport;
use crate::server::{AlertState, refusal_response};

/// Ping interval of an idle connection.
pub const KEEPALIVE: Duration = Duration::from_secs(25);
/// A connection that sent no frame for this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Largest frame a client may send (clients have nothing to say but pongs and close).
const MAX_INCOMING: usize = 4096;

pub async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    State(state): State<Arc<AlertState>>,
) -> Response {
    let options = match ClientOptions::parse(query.as_deref(), state.config.replay_size) {
        Ok(options) => options,
        Err(bad) => {
            let refused = Refused::from(bad);
            state.gate.refused(&refused);
            return refusal_response(&refused);
        }
    };
    let slot = match state.gate.admit(
        Transport::WebSocket,
        &[
            panopticon_common::auth::bearer(&headers),
            options.token.as_deref(),
        ],
    ) {
        Ok(slot) => slot,
        Err(refused) => return refusal_response(&refused),
    };
    ws.max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| session(socket, state, options, slot))
        .into_response()
}

async fn session(
    socket: WebSocket,
    state: Arc<AlertState>,
    options: ClientOptions,
    slot: ClientSlot,
) {
    let replay = options.replay.unwrap_or(state.config.replay_on_connect);
    let subscription = state.hub.subscribe(&options.filter, replay);
    let (sink, mut stream) = socket.split();
    let shutdown = state.shutdown.clone();
    let mut send = tokio::spawn({
        let state = state.clone();
        async move {
            let mut outlet = WsOutlet(sink);
            let counters = state.metrics.counters(Transport::WebSocket);
            tokio::select! {
                () = deliver::forward(subscription, &options.filter, &mut outlet, counters, Some(KEEPALIVE)) => {}
                () = shutdown.cancelled() => {
                    let close = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                    // A client already gone needs no close frame.
                    if outlet.0.send(Message::Close(Some(close))).await.is_err() {}
                }
            }
        }
    });
    let mut receive = tokio::spawn(async move {
        // Pings are answered by the WebSocket layer; anything else a client sends is ignored.
        loop {
            match tokio::time::timeout(IDLE_LIMIT, stream.next()).await {
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
    });
    tokio::select! {
        _ = &mut send => receive.abort(),
        _ = &mut receive => send.abort(),
    }
    drop(slot);
}

/// The socket's writing half as a sink of [`Outbound`]; its write buffer and the hub's
/// broadcast buffer hold what a slow client has not read yet.
struct WsOutlet(SplitSink<WebSocket, Message>);

impl WsOutlet {
    fn message(item: Outbound) -> Message {
        match item {
            Outbound::Event(event) => Message::Text(event.payload.get().into()),
            Outbound::Missed(missed) => Message::Text(
                json!({"event": "missed", "missed": missed})
                    .to_string()
                    .into(),
            ),
            Outbound::Keepalive => Message::Ping(Default::default()),
        }
    }
}

impl Sink<Outbound> for WsOutlet {
    type Error = Refusal;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(ready!(self.0.poll_ready_unpin(cx)).map_err(|_| Refusal::Closed))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), Refusal> {
        self.0
            .start_send_unpin(Self::message(item))
            .map_err(|_| Refusal::Closed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(ready!(self.0.poll_flush_unpin(cx)).map_err(|_| Refusal::Closed))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(ready!(self.0.poll_close_unpin(cx)).map_err(|_| Refusal::Closed))
    }
}
