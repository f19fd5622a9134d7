use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{ACCEPT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, StatusCode};
use panopticon_model::config::{ElasticsearchConfig, EnvSource, vars};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

/// Which engine answers. They share the APIs Panopticon uses for data, and differ in lifecycle
/// management (ILM vs ISM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch,
    OpenSearch,
}

/// What answers at the configured node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub flavour: Flavour,
    /// `version.number` of `GET /`, e.g. `2.19.3` or `8.17.1`.
    pub version: String,
}

impl ClusterInfo {
    /// Reads the answer of `GET /`: OpenSearch says so in `version.distribution`,
    /// Elasticsearch leaves it out.
    fn from_root(root: &Value) -> Result<Self, EsError> {
        let flavour = if root["version"]["distribution"] == "opensearch" {
            Flavour::OpenSearch
        } else {
            Flavour::Elasticsearch
        };
        let version = root["version"]["number"]
            .as_str()
            .ok_or_else(|| EsError::Decode {
                what: "GET /".to_owned(),
                detail: format!("no version.number in {}", truncate(&root.to_string(), 300)),
            })?
            .to_owned();
        Ok(Self { flavour, version })
    }
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

    /// Whether the answer was 404: what was asked for does not exist (yet).
    pub fn is_not_found(&self) -> bool {
        matches!(self, EsError::Status { status: 404, .. })
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

/// Credentials read from the environment (or, in the operator, from Kubernetes Secrets), never
/// from configuration files.
#[derive(Debug, Default)]
pub struct EsSecrets {
    /// `OPENSEARCH_PASSWORD` or `ELASTICSEARCH_PASSWORD`.
    pub password: Option<SecretString>,
    /// `ELASTICSEARCH_API_KEY`: the base64 `id:key` as Elasticsearch issues it.
    pub api_key: Option<SecretString>,
    /// PEM of the CA that signed the server certificate, given in memory (the operator reads it
    /// from a Secret). Takes precedence over `ElasticsearchConfig::ca_file`; not read from the
    /// environment.
    pub ca_pem: Option<Vec<u8>>,
}

impl EsSecrets {
    /// Reads the secrets from the process environment.
    pub fn from_process_env() -> Self {
        Self::from_env(&EnvSource::process())
    }

    pub fn from_env(env: &EnvSource<'_>) -> Self {
        Self {
            password: env
                .secret(&vars::OPENSEARCH_PASSWORD)
                .or_else(|| env.secret(&vars::ELASTICSEARCH_PASSWORD)),
            api_key: env.secret(&vars::ELASTICSEARCH_API_KEY),
            ca_pem: None,
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
        } else if let Some(pem) = &secrets.ca_pem {
            builder = builder.cert_validation(CertificateValidation::Full(ca_certificate(
                pem,
                "the CA certificate given in memory",
            )?));
        } else if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| EsError::Config(format!("ELASTICSEARCH_CA_FILE {ca}: {e}")))?;
            builder = builder.cert_validation(CertificateValidation::Full(ca_certificate(
                &pem,
                &format!("ELASTICSEARCH_CA_FILE {ca}"),
            )?));
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

    /// Makes what was written to `target` (indices, data streams, patterns) searchable now;
    /// a target that does not exist is not an error.
    pub async fn refresh(&self, target: &str) -> Result<(), EsError> {
        let path = format!("/{target}/_refresh?ignore_unavailable=true&allow_no_indices=true");
        self.request_ok(Method::Post, &path, None).await?;
        Ok(())
    }

    /// Detects the engine from `GET /`.
    pub async fn flavour(&self) -> Result<Flavour, EsError> {
        self.info().await.map(|info| info.flavour)
    }

    /// Detects the engine and its version from `GET /`.
    pub async fn info(&self) -> Result<ClusterInfo, EsError> {
        let root = self.request_ok(Method::Get, "/", None).await?;
        ClusterInfo::from_root(&root)
    }

    /// Whether the cluster answers at all (for `/ready`).
    pub async fn ping(&self) -> Result<(), EsError> {
        self.request_ok(Method::Get, "/", None).await.map(|_| ())
    }
}

fn ca_certificate(pem: &[u8], what: &str) -> Result<Certificate, EsError> {
    // The client parses PEM lazily (at build time, with a vague message), so check it here to
    // name the source.
    let text =
        std::str::from_utf8(pem).map_err(|_| EsError::Config(format!("{what} is not PEM text")))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(EsError::Config(format!(
            "{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Certificate::from_pem(pem).map_err(|e| EsError::Config(format!("{what}: {e}")))
}

fn transport_error(e: elasticsearch::Error) -> EsError {
    // The client's message is often only "error sending request for url (...)": the cause
    // (connection refused, unknown certificate issuer) is in the source chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    if e.is_timeout() {
        EsError::Timeout(message)
    } else {
        EsError::Transport(message)
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
            ca_pem: None,
        };
        let client = EsClient::new(&config(&url, Some("ingest")), &secrets).unwrap();
        assert_eq!(
            client.info().await.unwrap(),
            ClusterInfo {
                flavour: Flavour::OpenSearch,
                version: "2.19.3".to_owned()
            }
        );
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
            ca_pem: None,
        };
        let client = EsClient::new(&config(&url, None), &secrets).unwrap();
        assert_eq!(client.flavour().await.unwrap(), Flavour::OpenSearch);
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
    fn a_ca_in_memory_that_is_not_pem_is_a_configuration_error() {
        for bad in [&b"not a certificate"[..], &[0xff, 0xfe][..]] {
            let secrets = EsSecrets {
                ca_pem: Some(bad.to_vec()),
                ..EsSecrets::default()
            };
            let e = EsClient::new(&config("https://127.0.0.1:1", None), &secrets).unwrap_err();
            assert!(
                matches!(&e, EsError::Config(m) if m.starts_with("the CA certificate given in memory")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_root_answer_gives_flavour_and_version() {
        let es = serde_json::json!({"version": {"number": "8.17.1", "build_flavor": "default"}});
        assert_eq!(
            ClusterInfo::from_root(&es).unwrap(),
            ClusterInfo {
                flavour: Flavour::Elasticsearch,
                version: "8.17.1".to_owned()
            }
        );
        let os = serde_json::json!({"version": {"number": "2.19.3", "distribution": "opensearch"}});
        assert_eq!(
            ClusterInfo::from_root(&os).unwrap().flavour,
            Flavour::OpenSearch
        );
        let e = ClusterInfo::from_root(&serde_json::json!({"tagline": "?"})).unwrap_err();
        assert!(matches!(e, EsError::Decode { .. }), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secrets = EsSecrets {
            password: Some("s3cret".to_owned().into()),
            api_key: Some("k3y".to_owned().into()),
            ca_pem: None,
        };
        let client = EsClient::new(&config("http://127.0.0.1:1", Some("u")), &secrets).unwrap();
        let shown = format!("{client:?} {:?} {:?}", secrets.password, secrets.api_key);
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_read_from_the_environment_are_redacted() {
        let env = EnvSource::from_pairs(&[
            ("ELASTICSEARCH_PASSWORD", "s3cret"),
            ("ELASTICSEARCH_API_KEY", "k3y"),
        ]);
        let secrets = EsSecrets::from_env(&env);
        assert_eq!(
            secrets.password.as_ref().map(|p| p.expose_secret()),
            Some("s3cret")
        );
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
    }
}
