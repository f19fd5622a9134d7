//! An ingest set-up for tests: its own topics, data streams and consumer group, so tests run
//! side by side without seeing each other's data.

use std::time::Duration;

use anyhow::{Result, bail};

/// Names one test's ingest uses, and the environment that configures `panopticon ingest`.
#[derive(Debug, Clone)]
pub struct IngestFixture {
    pub logs_topic: String,
    pub spans_topic: String,
    pub error_topic: String,
    pub dlq_topic: String,
    pub logs_stream: String,
    pub spans_stream: String,
    pub group: String,
    /// Extra or overriding variables.
    pub overrides: Vec<(String, String)>,
}

impl IngestFixture {
    /// Creates the four topics with `partitions` partitions each.
    pub async fn create(prefix: &str, partitions: i32) -> Result<Self> {
        let f = Self::named(prefix);
        crate::kafka::create_topics(
            &[&f.logs_topic, &f.spans_topic, &f.error_topic, &f.dlq_topic],
            partitions,
        )
        .await?;
        Ok(f)
    }

    /// Fresh names, nothing created: ingest finds its topics and data streams missing.
    pub fn named(prefix: &str) -> Self {
        let id = crate::unique_name(prefix);
        Self {
            logs_topic: format!("{id}.logs"),
            spans_topic: format!("{id}.spans"),
            error_topic: format!("{id}.logs.error"),
            dlq_topic: format!("{id}.dlq"),
            logs_stream: format!("logs-{id}"),
            spans_stream: format!("traces-{id}"),
            group: format!("{id}-ingest"),
            overrides: Vec::new(),
        }
    }

    /// The variables `panopticon ingest` reads, for this fixture.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("KAFKA_BROKERS", crate::kafka_brokers()),
            ("ELASTICSEARCH_NODE", crate::elasticsearch_url()),
            ("KAFKA_APM_LOG_TOPIC", self.logs_topic.clone()),
            ("KAFKA_APM_SPAN_TOPIC", self.spans_topic.clone()),
            ("KAFKA_APM_LOG_ERROR_TOPIC", self.error_topic.clone()),
            ("KAFKA_APM_DLQ_TOPIC", self.dlq_topic.clone()),
            ("ELASTICSEARCH_APM_LOG_STREAM", self.logs_stream.clone()),
            ("ELASTICSEARCH_APM_SPAN_STREAM", self.spans_stream.clone()),
            ("KAFKA_CONSUMER_GROUP", self.group.clone()),
            ("BULK_BATCH_SIZE", "500".to_owned()),
            ("BULK_FLUSH_INTERVAL_MS", "200".to_owned()),
            ("KAFKA_COMMIT_INTERVAL_MS", "200".to_owned()),
            ("STREAM_THROUGHPUT_MIN_INTERVAL_MS", "2000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in &self.overrides {
            vars.retain(|(name, _)| name != k);
            vars.push((k.clone(), v.clone()));
        }
        vars
    }

    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.overrides.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Minimal HTTP/1.1 request over a TCP socket (tests need a handful of calls, not a client
/// library): returns the status code and the body.
pub async fn http(method: &str, url: &str, json_body: Option<&str>) -> Result<(u16, String)> {
    http_with_headers(method, url, &[], json_body).await
}

/// [`http`] with extra request headers (`Authorization`, `Origin`, ...).
pub async fn http_with_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    json_body: Option<&str>,
) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let body = json_body.unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `GET url`.
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    http("GET", url, None).await
}

/// A metric's value from a Prometheus text exposition (sum over label sets), 0 when absent.
pub fn metric(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Document count of an index or data stream after a refresh (0 when it does not exist).
pub async fn count_docs(stream: &str) -> Result<u64> {
    count_matching(stream, r#"{"query": {"match_all": {}}}"#).await
}

/// Count of the documents `query` (a `_count` request body) matches, after a refresh (0 when
/// the index or data stream does not exist).
pub async fn count_matching(stream: &str, query: &str) -> Result<u64> {
    let base = crate::elasticsearch_url();
    let refresh = http("POST", &format!("{base}/{stream}/_refresh"), None).await?;
    if refresh.0 == 404 {
        return Ok(0);
    }
    let (status, body) = http("POST", &format!("{base}/{stream}/_count"), Some(query)).await?;
    if status == 404 {
        return Ok(0);
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    match v["count"].as_u64() {
        Some(n) => Ok(n),
        None => bail!("unexpected _count answer ({status}): {body}"),
    }
}

/// Documents of a data stream (up to 10 000), as JSON sources.
pub async fn search_all(stream: &str) -> Result<Vec<serde_json::Value>> {
    let base = crate::elasticsearch_url();
    let (_, body) = http_get(&format!("{base}/{stream}/_search?size=10000")).await?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    Ok(v["hits"]["hits"].as_array().cloned().unwrap_or_default())
}

/// Polls `probe` every 200 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `stream` holds exactly `n` documents; more than `n` fails at once (duplicates).
pub async fn wait_exact_docs(stream: &str, n: u64, timeout: Duration) -> Result<()> {
    wait_until(
        &format!("{n} documents in {stream}"),
        timeout,
        || async move {
            let c = count_docs(stream).await?;
            anyhow::ensure!(
                c <= n,
                "{stream} holds {c} documents, more than the {n} events sent"
            );
            Ok(c == n)
        },
    )
    .await
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Produces `logs` and `spans` to the fixture's topics in `rounds` interleaved slices with a
/// `pause` after each, in a task: traffic that keeps arriving while a test acts.
pub fn feed(
    fixture: &IngestFixture,
    logs: Vec<Vec<u8>>,
    spans: Vec<Vec<u8>>,
    rounds: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<Result<()>> {
    let (logs_topic, spans_topic) = (fixture.logs_topic.clone(), fixture.spans_topic.clone());
    tokio::spawn(async move {
        let producer = crate::kafka::producer()?;
        let (lc, sc) = (
            logs.len().div_ceil(rounds).max(1),
            spans.len().div_ceil(rounds).max(1),
        );
        let (mut l, mut s) = (logs.chunks(lc), spans.chunks(sc));
        loop {
            let (a, b) = (l.next(), s.next());
            if a.is_none() && b.is_none() {
                return Ok(());
            }
            crate::kafka::produce(&producer, &logs_topic, a.unwrap_or_default()).await?;
            crate::kafka::produce(&producer, &spans_topic, b.unwrap_or_default()).await?;
            tokio::time::sleep(pause).await;
        }
    })
}
