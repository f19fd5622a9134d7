use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{ACCEPT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, StatusCode};
use panopticon_model::config::ElasticsearchConfig;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

/// Which engine answers. They share the APIs Panopticon uses for data, and differ in lifecycle
/// management (ILM vs ISM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch,
    OpenSearch,
}

/// Failure talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The configuration cannot produce a client (bad URL, unreadable CA file).
    #[error("invalid Elasticsearch configuration: {0}")]
    Config(String),
    /// No HTTP answer: connection refused, timeout, TLS failure.
    #[error("Elasticsearch unreachable: {0}")]
    Transport(String),
    /// No answer within the client's request timeout.
    #[error("Elasticsearch did not answer in time: {0}")]
    Timeout(String),
    /// An HTTP answer with an error status.
    #[error("Elasticsearch answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// A success status with a body we cannot read.
    #[error("unexpected Elasticsearch response to {what}: {detail}")]
    Decode { what: String, detail: String },
}

impl EsError {
    /// Whether trying again later can succeed (no answer, 408, 429, 5xx, and 401/403 which
    /// an operator can fix without losing data).
    pub fn is_retryable(&self) -> bool {
        match self {
            EsError::Transport(_) | EsError::Timeout(_) => true,
            EsError::Status { status, .. } => {
                matches!(status, 401 | 403 | 408 | 429) || *status >= 500
            }
            EsError::Config(_) | EsError::Decode { .. } => false,
        }
    }
}

/// A cheap-to-clone handle on the cluster.
#[derive(Clone)]
pub struct EsClient {
    inner: Elasticsearch,
    timeout: Duration,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Credentials read from the environment, never from configuration files.
#[derive(Default)]
pub struct EsSecrets {
    /// `OPENSEARCH_PASSWORD` or `ELASTICSEARCH_PASSWORD`.
    pub password: Option<SecretString>,
    /// `ELASTICSEARCH_API_KEY`: the base64 `id:key` as Elasticsearch issues it.
    pub api_key: Option<SecretString>,
}

impl EsSecrets {
    /// Reads the secrets from the process environment.
    pub fn from_process_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            password: var("OPENSEARCH_PASSWORD")
                .or_else(|| var("ELASTICSEARCH_PASSWORD"))
                .map(SecretString::from),
            api_key: var("ELASTICSEARCH_API_KEY").map(SecretString::from),
        }
    }
}

impl EsClient {
    /// Builds the client. Warns loudly when certificate verification is off.
    pub fn new(config: &ElasticsearchConfig, secrets: &EsSecrets) -> Result<Self, EsError> {
        let url = url::Url::parse(&config.node)
            .map_err(|e| EsError::Config(format!("ELASTICSEARCH_NODE {:?}: {e}", config.node)))?;
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(timeout)
            .enable_meta_header(false);
        match (&config.username, &secrets.password, &secrets.api_key) {
            (_, _, Some(key)) => {
                builder = builder.auth(Credentials::EncodedApiKey(key.expose_secret().to_owned()));
            }
            (Some(user), Some(password), None) => {
                builder = builder.auth(Credentials::Basic(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
            }
            (Some(_), None, None) => {
                return Err(EsError::Config(
                    "OPENSEARCH_USERNAME is set but OPENSEARCH_PASSWORD is not".to_owned(),
                ));
            }
            (None, _, None) => {}
        }
        if !config.verify_certificates {
            tracing::warn!(
                node = %config.node,
                "TLS certificate verification of Elasticsearch is OFF (OPENSEARCH_REJECT_UNAUTHORIZED=false): \
                 the connection can be intercepted"
            );
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| EsError::Config(format!("ELASTICSEARCH_CA_FILE {ca}: {e}")))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| EsError::Config(format!("ELASTICSEARCH_CA_FILE {ca}: {e}")))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| EsError::Config(e.to_string()))?;
        Ok(Self {
            inner: Elasticsearch::new(transport),
            timeout,
        })
    }

    /// Sends a request with a JSON body (or none) and returns the status and parsed body.
    /// Error statuses are returned, not raised, so callers can treat 404 or 400 as answers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), EsError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = self
            .send_raw(method, path, "application/json", body)
            .await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| EsError::Decode {
                what: format!("{method:?} {path}"),
                detail: format!(
                    "{e}; body starts {:?}",
                    truncate(&String::from_utf8_lossy(&bytes), 200)
                ),
            })?
        };
        Ok((status, value))
    }

    /// Like [`EsClient::request`], but an error status is an [`EsError::Status`].
    pub async fn request_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, EsError> {
        let (status, value) = self.request(method, path, body).await?;
        if !status.is_success() {
            return Err(EsError::Status {
                what: format!("{method:?} {path}"),
                status: status.as_u16(),
                body: truncate(&value.to_string(), 2000),
            });
        }
        Ok(value)
    }

    /// Sends a body as it is (an NDJSON bulk body, say) and returns the status and the raw
    /// response body.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), EsError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Uncompressed answers: on the cluster's network, gzip costs both sides more CPU than
        // it saves (it showed in ingest's profile).
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let response = self
            .inner
            .send(method, path, headers, None::<&()>, body, Some(self.timeout))
            .await
            .map_err(transport_error)?;
        let status = response.status_code();
        let bytes = response.bytes().await.map_err(transport_error)?;
        Ok((status, bytes))
    }

    /// Detects the engine from `GET /`.
    pub async fn flavour(&self) -> Result<Flavour, EsError> {
        let root = self.request_ok(Method::Get, "/", None).await?;
        Ok(if root["version"]["distribution"] == "opensearch" {
            Flavour::OpenSearch
        } else {
            Flavour::Elasticsearch
        })
    }

    /// Whether the cluster answers at all (for `/ready`).
    pub async fn ping(&self) -> Result<(), EsError> {
        self.request_ok(Method::Get, "/", None).await.map(|_| ())
    }
}

fn transport_error(e: elasticsearch::Error) -> EsError {
    if e.is_timeout() {
        EsError::Timeout(e.to_string())
    } else {
        EsError::Transport(e.to_string())
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use panopticon_model::config::EnvSource;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Answers one request like an OpenSearch root endpoint and returns the request head.
    async fn one_request_server() -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap();
            let body = r#"{"version":{"number":"2.19.3","distribution":"opensearch"}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, task)
    }

    fn config(url: &str, user: Option<&str>) -> ElasticsearchConfig {
        let mut pairs = vec![("ELASTICSEARCH_NODE", url)];
        if let Some(u) = user {
            pairs.push(("OPENSEARCH_USERNAME", u));
        }
        ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap()
    }

    fn authorization(head: &str) -> Option<String> {
        head.lines()
            .find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            })
            .map(str::to_owned)
    }

    #[tokio::test]
    async fn basic_auth_is_sent_and_the_flavour_detected() {
        let (url, server) = one_request_server().await;
        let secrets = EsSecrets {
            password: Some("s3cret".to_owned().into()),
            api_key: None,
        };
        let client = EsClient::new(&config(&url, Some("ingest")), &secrets).unwrap();
        assert_eq!(client.flavour().await.unwrap(), Flavour::OpenSearch);
        let head = server.await.unwrap();
        // base64("ingest:s3cret")
        assert_eq!(
            authorization(&head).as_deref(),
            Some("Basic aW5nZXN0OnMzY3JldA==")
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("accept-encoding: identity")
        );
    }

    #[tokio::test]
    async fn an_api_key_takes_precedence() {
        let (url, server) = one_request_server().await;
        let secrets = EsSecrets {
            password: None,
            api_key: Some("aWQ6a2V5".to_owned().into()),
        };
        let client = EsClient::new(&config(&url, None), &secrets).unwrap();
        client.ping().await.unwrap();
        assert_eq!(
            authorization(&server.await.unwrap()).as_deref(),
            Some("ApiKey aWQ6a2V5")
        );
    }

    #[test]
    fn a_user_without_password_is_a_configuration_error() {
        let e = EsClient::new(
            &config("http://127.0.0.1:1", Some("ingest")),
            &EsSecrets::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("OPENSEARCH_PASSWORD"), "{e}");
    }

    #[test]
    fn an_unreadable_ca_file_names_the_variable() {
        let mut c = config("https://127.0.0.1:1", None);
        c.ca_file = Some("/nonexistent/ca.pem".to_owned());
        let e = EsClient::new(&c, &EsSecrets::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("ELASTICSEARCH_CA_FILE /nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secrets = EsSecrets {
            password: Some("s3cret".to_owned().into()),
            api_key: Some("k3y".to_owned().into()),
        };
        let client = EsClient::new(&config("http://127.0.0.1:1", Some("u")), &secrets).unwrap();
        let shown = format!("{client:?} {:?} {:?}", secrets.password, secrets.api_key);
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
    }
}
