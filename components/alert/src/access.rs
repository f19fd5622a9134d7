//! Who may connect: the origin allowlist, bearer tokens and the client limit, the same for
//! both transports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use panopticon_common::auth::Tokens;
use prometheus_client::metrics::gauge::Gauge;

use crate::filter::BadParameter;
use crate::metrics::{Metrics, Transport};

/// Web origins allowed to connect (`ERROR_STREAM_WS_ORIGINS`).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            allowed: origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request with this `Origin` (and `Host`) header may connect. No `Origin`: not a
    /// browser page, allowed (a token guards those when auth is on). A page of the same origin
    /// as this server is allowed; any other page only when its origin is listed or `*` is.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()))
    }
}

/// Why a connection is refused. `Display` is what the client reads.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("origin {0:?} is not allowed to connect (ERROR_STREAM_WS_ORIGINS)")]
    Origin(String),
    #[error("unauthorized: a valid bearer token is required")]
    Unauthorized,
    #[error(transparent)]
    Parameter(#[from] BadParameter),
    #[error("too many clients are connected; retry later")]
    Capacity,
}

impl Refused {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Origin(_) => "origin",
            Refused::Unauthorized => "auth",
            Refused::Parameter(_) => "parameter",
            Refused::Capacity => "capacity",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refused::Origin(_) => StatusCode::FORBIDDEN,
            Refused::Unauthorized => StatusCode::UNAUTHORIZED,
            Refused::Parameter(_) => StatusCode::BAD_REQUEST,
            Refused::Capacity => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Tokens and the client limit.
pub struct Gate {
    tokens: Option<Tokens>,
    max_clients: usize,
    connected: Arc<AtomicUsize>,
    metrics: Metrics,
    /// Refused origins are logged at most once per interval.
    origin_log: panopticon_common::throttle::Throttle,
}

impl Gate {
    pub fn new(tokens: Option<Tokens>, max_clients: usize, metrics: Metrics) -> Self {
        Self {
            tokens,
            max_clients,
            connected: Arc::new(AtomicUsize::new(0)),
            metrics,
            origin_log: panopticon_common::throttle::Throttle::new(std::time::Duration::from_secs(
                10,
            )),
        }
    }

    /// Checks the presented tokens (any one accepted passes; none needed when auth is off)
    /// and takes a client slot. The slot is given back when the returned guard drops.
    pub fn admit(
        &self,
        transport: Transport,
        presented: &[Option<&str>],
    ) -> Result<ClientSlot, Refused> {
        let result = self.check(transport, presented);
        if let Err(refused) = &result {
            self.metrics.reject(refused.reason());
        }
        result
    }

    fn check(
        &self,
        transport: Transport,
        presented: &[Option<&str>],
    ) -> Result<ClientSlot, Refused> {
        if let Some(tokens) = &self.tokens
            && !presented.iter().flatten().any(|t| tokens.accepts(t))
        {
            return Err(Refused::Unauthorized);
        }
        let taken = self
            .connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_clients).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Refused::Capacity);
        }
        let gauge = self.metrics.clients(transport);
        gauge.inc();
        Ok(ClientSlot {
            connected: self.connected.clone(),
            gauge,
        })
    }

    /// Counts a refusal decided elsewhere (origin, parameters).
    /// A refused origin is also logged (at most once per 10 s), since the browser shows only
    /// "websocket error" and the 403's message never reaches the user.
    pub fn refused(&self, refused: &Refused) {
        self.metrics.reject(refused.reason());
        if let Refused::Origin(origin) = refused
            && self.origin_log.allow()
        {
            tracing::warn!(
                origin,
                "refused a connection from an origin that is not allowed; add it to \
                 ERROR_STREAM_WS_ORIGINS (comma-separated) to let its dashboards connect \
                 (further refusals within 10 s are counted, not logged)"
            );
        }
    }

    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Acquire)
    }
}

/// One connected client; dropping it frees the slot.
#[derive(Debug)]
pub struct ClientSlot {
    connected: Arc<AtomicUsize>,
    gauge: Gauge,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.connected.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn origins() {
        let none = OriginPolicy::new(&[]);
        assert!(
            none.allows(None, Some("alerts:3010")),
            "non-browser clients"
        );
        assert!(
            none.allows(Some("http://alerts:3010"), Some("alerts:3010")),
            "same origin"
        );
        assert!(!none.allows(Some("http://evil.example"), Some("alerts:3010")));
        assert!(!none.allows(Some("null"), Some("alerts:3010")));
        let listed = OriginPolicy::new(&["https://dash.example".to_owned()]);
        assert!(listed.allows(Some("https://DASH.example/"), Some("alerts:3010")));
        assert!(!listed.allows(Some("http://dash.example"), Some("alerts:3010")));
        let any = OriginPolicy::new(&["*".to_owned()]);
        assert!(any.allows(Some("http://evil.example"), None));
    }

    #[test]
    fn tokens_and_capacity() {
        let metrics = Metrics::register(&mut Registry::default());
        let gate = Gate::new(Some(Tokens::from_list(&["t0k3n"])), 2, metrics.clone());
        assert!(matches!(
            gate.admit(Transport::WebSocket, &[None, Some("wrong")]),
            Err(Refused::Unauthorized)
        ));
        let a = gate
            .admit(Transport::WebSocket, &[None, Some("t0k3n")])
            .unwrap();
        let _b = gate.admit(Transport::SocketIo, &[Some("t0k3n")]).unwrap();
        assert!(matches!(
            gate.admit(Transport::SocketIo, &[Some("t0k3n")]),
            Err(Refused::Capacity)
        ));
        assert_eq!(metrics.clients(Transport::WebSocket).get(), 1);
        drop(a);
        assert_eq!(
            (
                gate.connected(),
                metrics.clients(Transport::WebSocket).get()
            ),
            (1, 0)
        );
        assert!(gate.admit(Transport::WebSocket, &[Some("t0k3n")]).is_ok());
        let open = Gate::new(None, 10, metrics);
        assert!(open.admit(Transport::SocketIo, &[]).is_ok(), "auth off");
    }
}
