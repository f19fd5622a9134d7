//! What a client chooses when it connects, from the handshake's query string (Socket.IO:
//! `io(url, { query: {...} })`; plain WebSocket: the URL's query):
//! - `service` (also `service_name`): only these services; comma-separated and/or repeated;
//! - `environment`: only this environment, normalised the way ingest stores it (`PROD` is
//!   `production`);
//! - `level` (also `min_level`): only events at least this severe (`DEBUG` < `INFO` < `WARN` <
//!   `ERROR`);
//! - `replay`: how many of the most recent matching errors to receive first (at most the
//!   server's replay buffer);
//! - `token`: a bearer token, for clients that cannot set a header or a Socket.IO auth payload.
//!
//! Other parameters (Engine.IO's `EIO`, `transport`, `t`, `sid`, …) are ignored. A bad value is
//! refused with a message naming the parameter.

use panopticon_model::{Level, normalize_environment};

use crate::event::ErrorEvent;

/// Which errors a client receives. The default receives everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Empty: every service.
    pub services: Vec<String>,
    pub environment: Option<String>,
    pub min_level: Option<Level>,
}

impl Filter {
    pub fn matches(&self, event: &ErrorEvent) -> bool {
        (self.services.is_empty() || self.services.contains(&event.service))
            && self
                .environment
                .as_ref()
                .is_none_or(|env| *env == event.environment)
            && self.min_level.is_none_or(|min| event.level >= min)
    }
}

/// A client's choices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientOptions {
    pub filter: Filter,
    /// `None`: the server's default (`ERROR_STREAM_REPLAY_ON_CONNECT`).
    pub replay: Option<usize>,
    pub token: Option<String>,
}

/// A parameter a client got wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct BadParameter {
    pub parameter: &'static str,
    pub message: String,
}

fn bad(parameter: &'static str, message: impl Into<String>) -> BadParameter {
    BadParameter {
        parameter,
        message: message.into(),
    }
}

/// Longest accepted service name or environment, the ingest keyword limit.
const MAX_VALUE_BYTES: usize = 256;
/// Most services one client may name.
const MAX_SERVICES: usize = 100;

impl ClientOptions {
    /// Reads a raw (percent-encoded) query string. `replay_limit` is the server's replay buffer.
    pub fn parse(query: Option<&str>, replay_limit: usize) -> Result<Self, BadParameter> {
        let mut options = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = value.trim();
            match key.as_ref() {
                "service" | "service_name" => {
                    for service in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if service.len() > MAX_VALUE_BYTES {
                            return Err(bad(
                                "service",
                                format!("longer than {MAX_VALUE_BYTES} bytes"),
                            ));
                        }
                        if !options.filter.services.iter().any(|s| s == service) {
                            options.filter.services.push(service.to_owned());
                        }
                    }
                    if options.filter.services.len() > MAX_SERVICES {
                        return Err(bad("service", format!("at most {MAX_SERVICES} services")));
                    }
                }
                "environment" => {
                    if value.len() > MAX_VALUE_BYTES {
                        return Err(bad(
                            "environment",
                            format!("longer than {MAX_VALUE_BYTES} bytes"),
                        ));
                    }
                    if !value.is_empty() {
                        options.filter.environment = Some(normalize_environment(value));
                    }
                }
                "level" | "min_level" if !value.is_empty() => {
                    let (level, _) = Level::parse(value).ok_or_else(|| {
                        bad(
                            "level",
                            format!("{value:?} is not a level; use one of {}", Level::ACCEPTED),
                        )
                    })?;
                    options.filter.min_level = Some(level);
                }
                "replay" => {
                    let n: usize = value.parse().map_err(|_| {
                        bad("replay", format!("{value:?} is not a non-negative integer"))
                    })?;
                    options.replay = Some(n.min(replay_limit));
                }
                "token" if !value.is_empty() => options.token = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(service: &str, environment: &str, level: Level) -> ErrorEvent {
        ErrorEvent {
            service: service.to_owned(),
            environment: environment.to_owned(),
            level,
            payload: RawValue::from_string("{}".to_owned()).unwrap(),
            produced_at_ms: None,
        }
    }

    #[test]
    fn the_dashboards_handshake_receives_everything() {
        let o = ClientOptions::parse(Some("EIO=4&transport=websocket"), 100).unwrap();
        assert_eq!(o, ClientOptions::default());
        assert!(o.filter.matches(&event("any", "whatever", Level::Debug)));
    }

    #[test]
    fn filters_combine() {
        let o = ClientOptions::parse(
            Some("service=checkout,cart&service=cart&environment=PROD&level=warning&replay=500&token=abc%3D"),
            100,
        )
        .unwrap();
        assert_eq!(o.filter.services, ["checkout", "cart"]);
        assert_eq!(o.filter.environment.as_deref(), Some("production"));
        assert_eq!(o.filter.min_level, Some(Level::Warn));
        assert_eq!(o.replay, Some(100), "clamped to the buffer");
        assert_eq!(o.token.as_deref(), Some("abc="));
        let f = &o.filter;
        assert!(f.matches(&event("cart", "production", Level::Error)));
        assert!(f.matches(&event("checkout", "production", Level::Warn)));
        assert!(!f.matches(&event("checkout", "production", Level::Info)));
        assert!(!f.matches(&event("search", "production", Level::Error)));
        assert!(!f.matches(&event("cart", "staging", Level::Error)));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (query, parameter) in [
            ("level=LOUD", "level"),
            ("replay=-1", "replay"),
            ("replay=lots", "replay"),
        ] {
            let e = ClientOptions::parse(Some(query), 10).unwrap_err();
            assert_eq!(e.parameter, parameter, "{query}");
        }
        let long = format!("service={}", "s".repeat(300));
        assert_eq!(
            ClientOptions::parse(Some(&long), 10).unwrap_err().parameter,
            "service"
        );
    }
}
