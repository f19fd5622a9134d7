//! `demo-check DEMO_DIR`: proves that the demo `e2e/demo up` started still answers correctly and
//! has lost nothing, whatever ran against the same servers meanwhile (the test suite stops and
//! restarts Kafka and OpenSearch under it). `e2e/demo check` runs it with the stack's addresses
//! exported; it reads the components' variables from the env files the demo wrote.
//!
//! 1. The live error stream delivers a new ERROR log of the sample traffic to the dashboard's
//!    Socket.IO client.
//! 2. The sample traffic stops (SIGTERM) and reports every event it sent acknowledged by Kafka.
//! 3. Ingest commits the whole of its topics within two minutes.
//! 4. Every record of those topics is a document in its data stream or a dead letter: none is
//!    lost, none indexed twice.
//! 5. The query API's service overview counts exactly the SERVER spans the data stream holds.
//!
//! Each step prints what it measured; the first that fails ends the run with its reason.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use panopticon_e2e::ingest::{count_docs, count_matching, http_get, wait_until};
use panopticon_e2e::kafka::progress;
use panopticon_e2e::live::NodeClient;
use serde_json::{Value, json};

/// The variables of one component, as the demo passed them.
struct ComponentEnv(HashMap<String, String>);

impl ComponentEnv {
    fn read(dir: &Path, component: &str) -> Result<Self> {
        let path = dir.join(format!("{component}.env"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (is the demo up?)", path.display()))?;
        Ok(Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }

    fn get(&self, name: &str, default: &str) -> String {
        self.0
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: demo-check DEMO_DIR")?,
    );
    let ingest = ComponentEnv::read(&dir, "ingest")?;
    let query = ComponentEnv::read(&dir, "query")?;
    let alert = ComponentEnv::read(&dir, "alert")?;

    live_error_arrives(&alert).await?;
    stop_sample(&dir).await?;
    let (log_records, span_records) = ingest_catches_up(&ingest).await?;
    nothing_lost(&ingest, log_records, span_records).await?;
    overview_counts_every_server_span(&ingest, &query).await?;
    println!("demo-check: the demo answers correctly and lost nothing");
    Ok(())
}

async fn live_error_arrives(alert: &ComponentEnv) -> Result<()> {
    let url = format!("ws://127.0.0.1:{}", alert.get("ERROR_STREAM_PORT", "3010"));
    let mut client = NodeClient::start(&url, &json!({}))?;
    client
        .connected(Duration::from_secs(20))
        .await
        .with_context(|| format!("the Socket.IO client cannot connect to {url}"))?;
    let logs = client
        .error_logs(1, Duration::from_secs(90))
        .await
        .context("no live ERROR log within 90 s while the sample traffic runs")?;
    client.stop().await;
    println!(
        "demo-check: live error stream delivered an ERROR log of {}",
        logs[0]["service_name"]
    );
    Ok(())
}

/// Stops the sample traffic and reads its verdict: it exits with an error unless Kafka
/// acknowledged every event it sent.
async fn stop_sample(dir: &Path) -> Result<()> {
    let pid = std::fs::read_to_string(dir.join("sample.pid"))
        .context("no sample.pid: the demo's sample traffic is not running")?;
    let pid = pid.trim();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .await?;
    ensure!(
        status.success(),
        "the sample traffic (pid {pid}) had already stopped"
    );
    wait_until(
        "the sample traffic to exit",
        Duration::from_secs(60),
        || async {
            let alive = tokio::process::Command::new("kill")
                .args(["-0", pid])
                .stderr(std::process::Stdio::null())
                .status()
                .await?;
            Ok(!alive.success())
        },
    )
    .await?;
    let log = std::fs::read_to_string(dir.join("sample.log"))?;
    let Some(done) = log.lines().rev().find(|l| l.contains("sample done")) else {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        bail!("the sample traffic did not end cleanly; its last lines: {tail:?}");
    };
    println!("demo-check: sample traffic stopped: {}", done.trim());
    Ok(())
}

/// Waits until ingest has committed all of its two topics; returns their record counts.
async fn ingest_catches_up(ingest: &ComponentEnv) -> Result<(i64, i64)> {
    let group = ingest.get("KAFKA_CONSUMER_GROUP", "panopticon-ingest");
    let logs = ingest.get("KAFKA_APM_LOG_TOPIC", "apm.logs");
    let spans = ingest.get("KAFKA_APM_SPAN_TOPIC", "apm.spans");
    wait_until(
        &format!("ingest's group {group} to commit all of {logs} and {spans}"),
        Duration::from_secs(120),
        || async {
            let (l, s) = (progress(&logs, &group)?, progress(&spans, &group)?);
            Ok(l.lag == 0 && s.lag == 0)
        },
    )
    .await?;
    // Nothing is produced any more: the counts are final.
    let last = (
        progress(&logs, &group)?.records,
        progress(&spans, &group)?.records,
    );
    println!(
        "demo-check: ingest committed every record: {} in {logs}, {} in {spans}",
        last.0, last.1
    );
    Ok(last)
}

async fn nothing_lost(ingest: &ComponentEnv, log_records: i64, span_records: i64) -> Result<()> {
    let group = ingest.get("KAFKA_CONSUMER_GROUP", "panopticon-ingest");
    let dlq = ingest.get("KAFKA_APM_DLQ_TOPIC", "apm.dlq");
    let dead = progress(&dlq, &group)?.records;
    let logs = count_docs(&ingest.get("ELASTICSEARCH_APM_LOG_STREAM", "logs-apm")).await?;
    let spans = count_docs(&ingest.get("ELASTICSEARCH_APM_SPAN_STREAM", "traces-apm")).await?;
    let indexed = logs as i64 + spans as i64;
    println!(
        "demo-check: {logs} log and {spans} span documents, {dead} dead letters, for {} records",
        log_records + span_records
    );
    ensure!(
        indexed + dead == log_records + span_records,
        "{} records were read from Kafka but {indexed} documents and {dead} dead letters account \
         for them",
        log_records + span_records
    );
    Ok(())
}

async fn overview_counts_every_server_span(
    ingest: &ComponentEnv,
    query: &ComponentEnv,
) -> Result<()> {
    let to = chrono::Utc::now();
    let from = to - chrono::TimeDelta::days(30);
    let range = json!({"range": {"@timestamp": {
        "gte": from.timestamp_millis(), "lte": to.timestamp_millis(), "format": "epoch_millis",
    }}});
    let stream = ingest.get("ELASTICSEARCH_APM_SPAN_STREAM", "traces-apm");
    let expected = count_matching(
        &stream,
        &json!({"query": {"bool": {"filter": [{"term": {"kind": "SERVER"}}, range]}}}).to_string(),
    )
    .await?;
    let url = format!(
        "http://127.0.0.1:{}/query/services?limit=1000&from={}&to={}",
        query.get("PORT", "3001"),
        from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    // Windows rolled up while the tests slowed ingest down are rolled again once their late
    // spans are in (every rollup cycle, within the late horizon), and answers are cached for
    // seconds: the count converges, so it is polled for a few rollup cycles.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (counted, services) = overview_requests(&url).await?;
        if services > 0 && counted == expected {
            println!(
                "demo-check: the service overview counts {counted} requests over {services} \
                 services, as many as the SERVER spans in the data stream"
            );
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the service overview counts {counted} requests over {services} services, the data \
             stream holds {expected} SERVER spans (still after 180 s)"
        );
        println!(
            "demo-check: the service overview counts {counted} requests, the data stream holds \
             {expected} SERVER spans; waiting for rollup to re-roll late windows"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    Ok(())
}

/// The request count summed over the service overview's rows, and the number of rows.
async fn overview_requests(url: &str) -> Result<(u64, usize)> {
    let (status, body) = http_get(url).await?;
    ensure!(status == 200, "GET {url}: {status} {body}");
    let answer: Value = serde_json::from_str(&body)?;
    let rows = answer["services"].as_array().context("no services array")?;
    let counted = rows
        .iter()
        .filter_map(|r| r["request_count"].as_u64())
        .sum();
    Ok((counted, rows.len()))
}
