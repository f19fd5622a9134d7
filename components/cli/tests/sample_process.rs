//! `panopticon sample` as a real process against the real Kafka of `e2e/stack`: a fixed count
//! gives exactly that many valid, well-shaped events; SIGTERM flushes what was sent and exits 0;
//! a bad flag is a usage error naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{TimeDelta, Utc};
use panopticon_e2e::kafka::{self, Record};
use panopticon_e2e::workload::{Generator, Shape};
use panopticon_model::{DecodeContext, Limits, decode_log, decode_span};
use serde_json::Value;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon"))
}

/// Two fresh topics, and `panopticon sample` pointed at them.
struct Topics {
    logs: String,
    spans: String,
}

impl Topics {
    async fn create(prefix: &str) -> Result<Self> {
        let t = Self {
            logs: panopticon_e2e::unique_name(&format!("{prefix}-logs")),
            spans: panopticon_e2e::unique_name(&format!("{prefix}-spans")),
        };
        kafka::create_topics(&[&t.logs, &t.spans], 3).await?;
        Ok(t)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.arg("sample")
            .args(args)
            .env("KAFKA_BROKERS", panopticon_e2e::kafka_brokers())
            .env("KAFKA_APM_LOG_TOPIC", &self.logs)
            .env("KAFKA_APM_SPAN_TOPIC", &self.spans)
            .env("KAFKA_CREATE_TOPICS", "false")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn read(&self, logs: usize, spans: usize) -> Result<(Vec<Record>, Vec<Record>)> {
        let settle = Duration::from_secs(2);
        Ok((
            kafka::read_all(&self.logs, logs, WAIT, settle).await?,
            kafka::read_all(&self.spans, spans, WAIT, settle).await?,
        ))
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Decodes every record as the ingest would, and returns their JSON.
fn decode_all(records: &[Record], logs: bool) -> Result<Vec<Value>> {
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        now: Utc::now(),
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let v: Value = serde_json::from_slice(&r.value).context("record is not JSON")?;
        if logs {
            decode_log(&v, &ctx).map_err(|e| anyhow::anyhow!("invalid log {v}: {e}"))?;
        } else {
            decode_span(&v, &ctx).map_err(|e| anyhow::anyhow!("invalid span {v}: {e}"))?;
        }
        // Keyed by trace, so that a trace stays in one partition.
        assert_eq!(
            r.key.as_deref(),
            v["trace_id"].as_str().map(str::as_bytes),
            "{v}"
        );
        // Timestamps are "now".
        let ts = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap_or(""))?;
        let age = Utc::now().signed_duration_since(ts);
        assert!(
            age > TimeDelta::seconds(-5) && age < TimeDelta::minutes(5),
            "timestamp {ts} is not now"
        );
        out.push(v);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_count_gives_exactly_that_many_valid_chained_events() -> Result<()> {
    let topics = Topics::create("sample-count").await?;
    let (seed, services, error_ratio) = (7u64, 4usize, 0.3);
    let out = topics
        .command(&[
            "--count",
            "500",
            "--rate",
            "2000",
            "--services",
            &services.to_string(),
            "--error-ratio",
            &error_ratio.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output();
    let out = tokio::time::timeout(WAIT, out).await??;
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sample done"), "{stderr}");

    // The same seed and shape say how the 500 split into logs and spans.
    let mut generator = Generator::new(
        seed,
        Shape {
            services,
            error_ratio,
            spread: TimeDelta::zero(),
        },
    );
    let mut expected = Vec::new();
    while expected.len() < 500 {
        expected.extend(generator.next_trace(Utc::now()));
    }
    expected.truncate(500);
    let want_logs = expected.iter().filter(|e| e.is_log).count();
    let want_spans = 500 - want_logs;

    let (log_records, span_records) = topics.read(want_logs, want_spans).await?;
    assert_eq!(log_records.len(), want_logs, "logs");
    assert_eq!(span_records.len(), want_spans, "spans");
    let logs = decode_all(&log_records, true)?;
    let spans = decode_all(&span_records, false)?;

    // Spans form chains: every parent is a span of the same trace, one root per trace.
    let mut traces: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for s in &spans {
        traces
            .entry(s["trace_id"].as_str().unwrap_or_default())
            .or_default()
            .push(s);
    }
    let mut failed = 0;
    for (trace, spans) in &traces {
        let ids: BTreeSet<&str> = spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
        assert_eq!(ids.len(), spans.len(), "span ids unique in {trace}");
        let roots: Vec<_> = spans
            .iter()
            .filter(|s| s["parent_span_id"].is_null())
            .collect();
        assert_eq!(roots.len(), 1, "one root in {trace}");
        for s in spans {
            if let Some(parent) = s["parent_span_id"].as_str() {
                assert!(ids.contains(parent), "parent {parent} of {s} is in {trace}");
            }
        }
        assert!(spans.len() <= 10, "{trace}: {} spans", spans.len());
        if roots[0]["status"] == "ERROR" {
            failed += 1;
        }
    }
    // Whole traces have 3–10 spans; only the last one may have been cut by the count.
    let short = traces.values().filter(|s| s.len() < 3).count();
    assert!(short <= 1, "{short} traces shorter than 3 spans");

    // ERROR logs exist, and each belongs to a trace with ERROR spans.
    let error_traces: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s["status"] == "ERROR")
        .filter_map(|s| s["trace_id"].as_str())
        .collect();
    let error_logs: Vec<_> = logs.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(!error_logs.is_empty(), "no ERROR logs");
    for l in &error_logs {
        let trace = l["trace_id"].as_str().unwrap_or_default();
        assert!(
            error_traces.contains(trace),
            "ERROR log {l} has no ERROR span"
        );
    }
    for l in &logs {
        assert!(
            traces.contains_key(l["trace_id"].as_str().unwrap_or_default()),
            "log {l} links to no produced trace"
        );
    }

    // The error ratio is roughly as asked (about 48 traces here).
    let ratio = f64::from(failed) / traces.len() as f64;
    assert!(
        (error_ratio - 0.15..=error_ratio + 0.15).contains(&ratio),
        "{failed} of {} traces failed",
        traces.len()
    );
    let service_names: BTreeSet<&str> = spans
        .iter()
        .filter_map(|s| s["service_name"].as_str())
        .collect();
    assert_eq!(service_names.len(), services, "{service_names:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_what_was_sent_and_exits_zero() -> Result<()> {
    let topics = Topics::create("sample-term").await?;
    let child = topics
        .command(&[
            "--rate",
            "300",
            "--report-every",
            "1s",
            "--log-format",
            "json",
        ])
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().context("no pid")?;
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    assert!(status.success());
    let out = tokio::time::timeout(WAIT, child.wait_with_output()).await??;
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sample progress"), "{stderr}");
    // The summary (a JSON log line): everything sent was acknowledged.
    let done: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "sample done")
        .with_context(|| format!("no summary: {stderr}"))?;
    let sent = done["fields"]["sent"].as_u64().context("sent")? as usize;
    assert_eq!(
        done["fields"]["delivered"].as_u64(),
        Some(sent as u64),
        "{done}"
    );
    // About 3 s at 300/s.
    assert!((300..=1500).contains(&sent), "{done}");

    let logs = kafka::read_all(&topics.logs, 1, WAIT, Duration::from_secs(3)).await?;
    let spans = kafka::read_all(
        &topics.spans,
        sent - logs.len(),
        WAIT,
        Duration::from_secs(3),
    )
    .await?;
    assert_eq!(logs.len() + spans.len(), sent);
    decode_all(&logs, true)?;
    decode_all(&spans, false)?;
    Ok(())
}

#[tokio::test]
async fn bad_flags_are_usage_errors_naming_the_flag() -> Result<()> {
    for (args, flag) in [
        (&["--rate", "0"][..], "--rate"),
        (&["--error-ratio", "2"][..], "--error-ratio"),
        (&["--services", "0"][..], "--services"),
    ] {
        let out = Command::new(binary())
            .arg("sample")
            .args(args)
            .output()
            .await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    Ok(())
}
