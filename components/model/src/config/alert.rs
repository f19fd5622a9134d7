use serde::{Deserialize, Serialize};

use super::env::{ConfigError, EnvSource, ToEnv};
use super::kafka::KafkaConfig;
use super::vars::*;

/// Everything `panopticon alert` reads. Secrets are not here: bearer tokens come from `ERROR_STREAM_AUTH_TOKENS`
/// or the file `ERROR_STREAM_AUTH_TOKENS_FILE` names, read by the component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertConfig {
    pub kafka: KafkaConfig,
    /// The topic ingest forwards ERROR logs to (`KAFKA_APM_LOG_ERROR_TOPIC`, default
    /// `apm.logs.error`). Every replica reads all of its partitions; there is no consumer group.
    pub error_topic: String,
    /// `KAFKA_CLIENT_ID`.
    pub client_id: String,
    /// Listen port of Socket.IO, the plain WebSocket and the probes (`ERROR_STREAM_PORT`,
    /// default 3010).
    pub port: u16,
    /// The Socket.IO request path (`ERROR_STREAM_WS_PATH`).
    pub socketio_path: String,
    /// The plain WebSocket path (`ERROR_STREAM_PLAIN_WS_PATH`).
    pub websocket_path: String,
    /// Web origins allowed to connect (`ERROR_STREAM_WS_ORIGINS`, comma-separated). Empty (the
    /// default) allows same-origin pages and clients that send no `Origin` (non-browser); `*`
    /// allows any origin, and only then. The seed allowed any origin when unset.
    pub allowed_origins: Vec<String>,
    /// File with one accepted bearer token per line (`ERROR_STREAM_AUTH_TOKENS_FILE`). Auth is
    /// on when this or `ERROR_STREAM_AUTH_TOKENS` is set, off otherwise (the dashboard sends no token).
    pub auth_tokens_file: Option<String>,
    /// Errors kept in memory for clients that ask for a replay (`ERROR_STREAM_REPLAY_SIZE`,
    /// default 100; 0 keeps none). Filled from the topic's tail at start.
    pub replay_size: usize,
    /// Replay a client gets when it does not ask (`ERROR_STREAM_REPLAY_ON_CONNECT`):
    /// the dashboard counts every event it receives, so by default a reload does not count old
    /// errors again. A client asks with `?replay=<n>`.
    pub replay_on_connect: usize,
    /// Messages queued for one client before it starts missing events
    /// (`ERROR_STREAM_CLIENT_QUEUE`). A client that missed events is told how many.
    pub client_queue: usize,
    /// How often the topic's partition count is re-read, so partitions added later are read
    /// (`ERROR_STREAM_TOPIC_REFRESH_SECONDS`).
    pub topic_refresh_seconds: u64,
    /// Most clients connected at once (`ERROR_STREAM_MAX_CLIENTS`); more are
    /// refused until some leave.
    pub max_clients: usize,
}

impl AlertConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let socketio_path = env.text(&ERROR_STREAM_WS_PATH);
        let websocket_path = env.text(&ERROR_STREAM_PLAIN_WS_PATH);
        for (var, path) in [
            (&ERROR_STREAM_WS_PATH, &socketio_path),
            (&ERROR_STREAM_PLAIN_WS_PATH, &websocket_path),
        ] {
            if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ']) {
                return Err(ConfigError::new(
                    var.name,
                    format!("must be an absolute path such as /ws/errors, got {path:?}"),
                ));
            }
            if ["/health", "/ready", "/metrics"].contains(&path.as_str()) {
                return Err(ConfigError::new(
                    var.name,
                    format!("{path} is a probe route"),
                ));
            }
        }
        if socketio_path.trim_end_matches('/') == websocket_path.trim_end_matches('/') {
            return Err(ConfigError::new(
                format!(
                    "{}/{}",
                    ERROR_STREAM_WS_PATH.name, ERROR_STREAM_PLAIN_WS_PATH.name
                ),
                format!("Socket.IO and the plain WebSocket cannot share {socketio_path:?}"),
            ));
        }
        let replay_size = env.parse(&ERROR_STREAM_REPLAY_SIZE)?;
        if replay_size > 10_000 {
            return Err(ConfigError::new(
                ERROR_STREAM_REPLAY_SIZE.name,
                format!("at most 10000 errors are kept in memory, got {replay_size}"),
            ));
        }
        let replay_on_connect = env.parse(&ERROR_STREAM_REPLAY_ON_CONNECT)?;
        if replay_on_connect > replay_size {
            return Err(ConfigError::new(
                ERROR_STREAM_REPLAY_ON_CONNECT.name,
                format!(
                    "cannot exceed {} ({replay_size})",
                    ERROR_STREAM_REPLAY_SIZE.name
                ),
            ));
        }
        Ok(Self {
            kafka: KafkaConfig::from_env(env)?,
            error_topic: env.text(&KAFKA_APM_LOG_ERROR_TOPIC),
            client_id: env.text(&ALERT_CLIENT_ID),
            port: env.parse(&ERROR_STREAM_PORT)?,
            socketio_path,
            websocket_path,
            allowed_origins: env.origins(&ERROR_STREAM_WS_ORIGINS)?,
            auth_tokens_file: env.value(&ERROR_STREAM_AUTH_TOKENS_FILE),
            replay_size,
            replay_on_connect,
            client_queue: env.at_least(&ERROR_STREAM_CLIENT_QUEUE, 8)?,
            max_clients: env.at_least(&ERROR_STREAM_MAX_CLIENTS, 1)?,
            topic_refresh_seconds: env.at_least(&ERROR_STREAM_TOPIC_REFRESH_SECONDS, 1)?,
        })
    }
}

impl ToEnv for AlertConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = self.kafka.to_env();
        vars.extend([
            (KAFKA_APM_LOG_ERROR_TOPIC.name, self.error_topic.clone()),
            (ALERT_CLIENT_ID.name, self.client_id.clone()),
            (ERROR_STREAM_PORT.name, self.port.to_string()),
            (ERROR_STREAM_WS_PATH.name, self.socketio_path.clone()),
            (ERROR_STREAM_PLAIN_WS_PATH.name, self.websocket_path.clone()),
            (ERROR_STREAM_WS_ORIGINS.name, self.allowed_origins.join(",")),
            (ERROR_STREAM_REPLAY_SIZE.name, self.replay_size.to_string()),
            (
                ERROR_STREAM_REPLAY_ON_CONNECT.name,
                self.replay_on_connect.to_string(),
            ),
            (
                ERROR_STREAM_CLIENT_QUEUE.name,
                self.client_queue.to_string(),
            ),
            (ERROR_STREAM_MAX_CLIENTS.name, self.max_clients.to_string()),
            (
                ERROR_STREAM_TOPIC_REFRESH_SECONDS.name,
                self.topic_refresh_seconds.to_string(),
            ),
        ]);
        if let Some(file) = &self.auth_tokens_file {
            vars.push((ERROR_STREAM_AUTH_TOKENS_FILE.name, file.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = AlertConfig::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(c.port, 3010);
        assert_eq!(c.socketio_path, "/ws/error-logs");
        assert_eq!(c.error_topic, "apm.logs.error");
        assert!(c.allowed_origins.is_empty());
        assert_eq!((c.replay_size, c.replay_on_connect), (100, 0));
    }

    #[test]
    fn rendering_reads_back_the_same_config() {
        let c = AlertConfig::from_env(&EnvSource::from_pairs(&[
            ("ERROR_STREAM_PORT", "4010"),
            (
                "ERROR_STREAM_WS_ORIGINS",
                "https://a.example/, http://b:3000",
            ),
            ("ERROR_STREAM_AUTH_TOKENS_FILE", "/etc/alert/tokens"),
            ("ERROR_STREAM_REPLAY_SIZE", "50"),
            ("ERROR_STREAM_REPLAY_ON_CONNECT", "5"),
            ("ERROR_STREAM_CLIENT_QUEUE", "64"),
        ]))
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["https://a.example".to_owned(), "http://b:3000".to_owned()]
        );
        let rendered = c.to_env();
        assert_eq!(
            AlertConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap(),
            c
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, var) in [
            (
                &[("ERROR_STREAM_WS_PATH", "ws/x")][..],
                "ERROR_STREAM_WS_PATH",
            ),
            (
                &[("ERROR_STREAM_PLAIN_WS_PATH", "/ws/error-logs/")][..],
                "ERROR_STREAM_WS_PATH/ERROR_STREAM_PLAIN_WS_PATH",
            ),
            (
                &[("ERROR_STREAM_PLAIN_WS_PATH", "/metrics")][..],
                "ERROR_STREAM_PLAIN_WS_PATH",
            ),
            (
                &[("ERROR_STREAM_WS_ORIGINS", "example.com")][..],
                "ERROR_STREAM_WS_ORIGINS",
            ),
            (
                &[("ERROR_STREAM_REPLAY_ON_CONNECT", "101")][..],
                "ERROR_STREAM_REPLAY_ON_CONNECT",
            ),
            (
                &[("ERROR_STREAM_CLIENT_QUEUE", "1")][..],
                "ERROR_STREAM_CLIENT_QUEUE",
            ),
        ] {
            let e = AlertConfig::from_env(&EnvSource::from_pairs(pairs)).unwrap_err();
            assert_eq!(e.var, var, "{pairs:?}: {e}");
        }
    }
}
