//! Clients of alert's live error feed, for tests and benchmarks:
//! - [`SocketIoClient`]: a minimal Socket.IO v5 / Engine.IO v4 client over the websocket
//!   transport (what `socket.io-client` with `transports: ['websocket']` speaks). Cheap enough
//!   to run a thousand in one process, and able to stall on purpose.
//! - [`NodeClient`]: the real `socket.io-client` from npm with the dashboard's exact options
//!   (`e2e/socketio-client/listen.js`), for the compatibility tests.
//! - [`websocket`]: a plain WebSocket connection.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`, with extra request headers. A refused upgrade is an error
/// carrying the HTTP status and body.
pub async fn websocket(url: &str, headers: &[(&str, &str)]) -> Result<Ws> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            axum_header_name(name)?,
            value.parse().context("header value")?,
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(anyhow!("HTTP {status}: {body}"))
        }
        Err(e) => Err(e.into()),
    }
}

fn axum_header_name(name: &str) -> Result<tokio_tungstenite::tungstenite::http::HeaderName> {
    name.parse().context("header name")
}

/// The next text frame of a plain WebSocket, as JSON; `None` when the connection ended.
pub async fn next_json(ws: &mut Ws) -> Result<Option<Value>> {
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) => return Ok(Some(serde_json::from_str(&text)?)),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// A Socket.IO connection to the default namespace.
pub struct SocketIoClient {
    ws: Ws,
    pub sid: String,
}

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event {
        name: String,
        data: Value,
    },
    /// The server disconnected the socket (or the connection closed).
    Disconnected,
}

impl SocketIoClient {
    /// Connects like `io(base, { path, transports: ['websocket'], query, auth })`. A refused
    /// connection (`connect_error`) is an error with the server's message.
    pub async fn connect(
        base: &str,
        path: &str,
        query: &[(&str, &str)],
        auth: Option<Value>,
    ) -> Result<Self> {
        let mut url = format!(
            "{base}{}/?EIO=4&transport=websocket",
            path.trim_end_matches('/')
        );
        for (k, v) in query {
            url.push_str(&format!("&{k}={v}"));
        }
        let mut ws = websocket(&url, &[]).await?;
        let open = next_text(&mut ws)
            .await?
            .context("closed before the open packet")?;
        if !open.starts_with('0') {
            bail!("expected an Engine.IO open packet, got {open:?}");
        }
        let connect = match auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        ws.send(Message::Text(connect.into())).await?;
        loop {
            let packet = next_text(&mut ws).await?.context("closed before CONNECT")?;
            if let Some(body) = packet.strip_prefix("40") {
                let v: Value = serde_json::from_str(body)?;
                let sid = v["sid"].as_str().unwrap_or_default().to_owned();
                return Ok(Self { ws, sid });
            }
            if let Some(body) = packet.strip_prefix("44") {
                let v: Value = serde_json::from_str(body)?;
                bail!("connect_error: {}", v["message"].as_str().unwrap_or(body));
            }
            if packet == "2" {
                ws.send(Message::Text("3".into())).await?;
            }
        }
    }

    /// The next event, answering pings on the way.
    pub async fn next(&mut self) -> Result<Received> {
        loop {
            let Some(packet) = self.next_packet().await? else {
                return Ok(Received::Disconnected);
            };
            if let Some(body) = packet.strip_prefix('2') {
                let v: Value = serde_json::from_str(body)?;
                let name = v[0].as_str().unwrap_or_default().to_owned();
                return Ok(Received::Event {
                    name,
                    data: v.get(1).cloned().unwrap_or(Value::Null),
                });
            }
            if packet.starts_with('1') {
                return Ok(Received::Disconnected);
            }
        }
    }

    /// The next Socket.IO packet as text (`2["error-log",{...}]` for an event: the Engine.IO
    /// message prefix `4` is removed), answering pings; `None` when the connection closed. Cheaper than [`next`](Self::next): nothing is parsed.
    pub async fn next_packet(&mut self) -> Result<Option<String>> {
        loop {
            let Some(text) = next_text(&mut self.ws).await? else {
                return Ok(None);
            };
            match text.as_bytes().first() {
                Some(b'2') if text.len() == 1 => {
                    self.ws.send(Message::Text("3".into())).await?;
                }
                Some(b'4') => return Ok(Some(text[1..].to_owned())),
                Some(b'1') => return Ok(None),
                _ => {}
            }
        }
    }

    /// Events (name, data) received within `window`, answering pings.
    pub async fn events_within(&mut self, window: Duration) -> Result<Vec<(String, Value)>> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(received) = tokio::time::timeout_at(deadline, self.next()).await {
            match received? {
                Received::Event { name, data } => events.push((name, data)),
                Received::Disconnected => break,
            }
        }
        Ok(events)
    }
}

async fn next_text(ws: &mut Ws) -> Result<Option<String>> {
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) => return Ok(Some(text.as_str().to_owned())),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// The dashboard's own client: `socket.io-client` from npm, run by node.
pub struct NodeClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

/// The client driver's directory; `e2e/setup` installs its `node_modules`.
pub fn node_client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("socketio-client")
}

impl NodeClient {
    /// Starts `listen.js` against `url` (`ws://host:port`) with the dashboard's options plus
    /// `extra` (merged into the `io()` options: `query`, `auth`, …). Does not wait for the
    /// connection: read [`next_line`](Self::next_line) for `connect` or `connect_error`.
    pub fn start(url: &str, extra: &Value) -> Result<Self> {
        let dir = node_client_dir();
        if !dir.join("node_modules/socket.io-client").is_dir() {
            bail!(
                "{} has no node_modules: run e2e/setup (it runs npm ci there)",
                dir.display()
            );
        }
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("listen.js"))
            .arg(url)
            .arg(extra.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start node (is Node.js installed? e2e/setup installs it)")?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next line the client printed (`{"type": "connect" | "connect_error" | "error-log"
    /// | "missed" | "disconnect", …}`), or an error after `timeout`.
    pub async fn next_line(&mut self, timeout: Duration) -> Result<Value> {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .map_err(|_| anyhow!("the Socket.IO client printed nothing for {timeout:?}"))??
            .context("the Socket.IO client exited")?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Waits for `connect`; fails with the server's message on `connect_error`.
    pub async fn connected(&mut self, timeout: Duration) -> Result<String> {
        let line = self.next_line(timeout).await?;
        match line["type"].as_str() {
            Some("connect") => Ok(line["id"].as_str().unwrap_or_default().to_owned()),
            _ => Err(anyhow!("not connected: {line}")),
        }
    }

    /// `error-log` payloads until `n` arrived; fails after `timeout` without one.
    pub async fn error_logs(&mut self, n: usize, timeout: Duration) -> Result<Vec<Value>> {
        let mut payloads = Vec::with_capacity(n);
        while payloads.len() < n {
            let line = self
                .next_line(timeout)
                .await
                .with_context(|| format!("after {} of {n} error logs", payloads.len()))?;
            match line["type"].as_str() {
                Some("error-log") => payloads.push(line["payload"].clone()),
                Some("disconnect") | Some("connect_error") => {
                    bail!("after {} of {n} error logs: {line}", payloads.len())
                }
                _ => {}
            }
        }
        Ok(payloads)
    }

    /// Lines printed within `window` (nothing more is expected).
    pub async fn lines_within(&mut self, window: Duration) -> Result<Vec<Value>> {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(line) = tokio::time::timeout_at(deadline, self.lines.next_line()).await {
            match line? {
                Some(line) => lines.push(serde_json::from_str(&line)?),
                None => break,
            }
        }
        Ok(lines)
    }

    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            // Dropping the child kills it.
        }
    }
}
