//! Ingest throughput against a bare bulk loader, side by side on the same OpenSearch, and
//! ingest's throughput under the previous `labels` mapping beside the current one.
//!
//! 1. Generates N realistic events (default 1 000 000; `PANOPTICON_BENCH_EVENTS`; CLIENT spans
//!    carry dotted OpenTelemetry label keys) and preloads them into Kafka.
//! 2. Warms OpenSearch up with a short bulk load.
//! 3. (a0) Runs `panopticon ingest` (release build) into data streams created with the
//!    previous labels mapping (keys mapped dynamically as keywords), from topics holding the
//!    same events with the dots of label keys replaced by `_` (that mapping refuses every dotted
//!    key), then (a) on the original events into streams with the current one (`flat_object`),
//!    each until every document is indexed; measures wall time, the process's CPU time and peak RSS. (a) runs
//!    second, so it bears any merging OpenSearch still does for (a0).
//! 4. (b) Sends the very same documents (same ids) with the same batch size and concurrency
//!    straight to OpenSearch: no Kafka, no validation, no offsets.
//! 5. Prints events/s of each, the ratios (a / b, goal ≥ 0.9; a / a0, goal ≥ 0.95: the new
//!    mapping costs nothing that matters), CPU µs per event (goal ≤ 10), RSS, and the cores
//!    each server used in each phase.
//!
//! `PANOPTICON_BENCH_PIN=1` gives OpenSearch a core of its own (the rest shares the other), so
//! that ingest's CPU does not come out of OpenSearch's: the set-up of a real cluster.
//!
//! Needs the stack: `e2e/stack up && eval "$(e2e/stack env)" && cargo bench -p panopticon --bench ingest`.

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use elasticsearch::http::Method;
use panopticon_e2e::ingest::{IngestFixture, count_docs, metric, wait_until};
use panopticon_e2e::process::{Component, cpu_and_peak_rss};
use panopticon_e2e::{kafka, workload};
use panopticon_es::bulk::{BulkBody, parse_response};
use panopticon_es::templates::{self, StreamKind};
use panopticon_es::{EsClient, EsSecrets, Flavour, bootstrap};
use panopticon_model::config::{ElasticsearchConfig, EnvSource};
use panopticon_model::ids::{self, LogOrigin};
use panopticon_model::{DecodeContext, Limits, decode_log, decode_span};

/// Batch size and concurrency of both loaders (`PANOPTICON_BENCH_BATCH`,
/// `PANOPTICON_BENCH_PARALLEL`; defaults are ingest's defaults).
fn batch_and_parallel() -> (usize, usize) {
    let read = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let d = panopticon_model::config::BulkConfig::default();
    (
        read("PANOPTICON_BENCH_BATCH", d.batch_size),
        read("PANOPTICON_BENCH_PARALLEL", d.max_parallel_flushes),
    )
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

struct Doc {
    index: Arc<str>,
    id: String,
    json: Vec<u8>,
}

async fn run() -> Result<()> {
    let (batch, parallel) = batch_and_parallel();
    let n: usize = std::env::var("PANOPTICON_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let now = chrono::Utc::now();
    let events = workload::generate(n, 42, now);
    let n = events.len();
    let bytes: usize = events.iter().map(|e| e.value.len()).sum();
    let logs = events.iter().filter(|e| e.is_log).count();
    println!(
        "workload: {n} events ({logs} logs, {} spans), {:.1} MiB, mean {} B/event",
        n - logs,
        bytes as f64 / 1048576.0,
        bytes / n
    );

    let mut fixture = IngestFixture::create("bench", 3).await?;
    fixture
        .set("BULK_BATCH_SIZE", &batch.to_string())
        .set("BULK_MAX_PARALLEL_FLUSHES", &parallel.to_string())
        .set("BULK_BATCH_BYTES_MB", "16")
        .set("BULK_FLUSH_INTERVAL_MS", "1000")
        .set("STREAM_THROUGHPUT_MIN_INTERVAL_MS", "10000");
    // Ingest-only knobs may be varied from the environment (the bare loader has no such knobs).
    for (name, value) in std::env::vars() {
        if name.starts_with("KAFKA_FETCH_") || name.starts_with("INGEST_") {
            println!("ingest setting: {name}={value}");
            fixture.set(&name, &value);
        }
    }
    let started = Instant::now();
    let producer = kafka::producer()?;
    let (log_values, span_values) = workload::split(&events);
    for chunk in log_values.chunks(50_000) {
        kafka::produce(&producer, &fixture.logs_topic, chunk).await?;
    }
    for chunk in span_values.chunks(50_000) {
        kafka::produce(&producer, &fixture.spans_topic, chunk).await?;
    }
    println!(
        "preloaded into Kafka in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The documents the bare loader sends: what ingest stores, with the same ids.
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        now,
    };
    let bare_logs: Arc<str> =
        Arc::from(format!("logs-bare-{}", panopticon_e2e::unique_name("b")).as_str());
    let bare_spans: Arc<str> =
        Arc::from(format!("traces-bare-{}", panopticon_e2e::unique_name("b")).as_str());
    let mut docs = Vec::with_capacity(n);
    for (i, e) in events.iter().enumerate() {
        let v = workload::parse(e);
        if e.is_log {
            let d = decode_log(&v, &ctx)?;
            let origin = LogOrigin {
                topic: "bench",
                partition: 0,
                offset: i as i64,
                index: 0,
                payload: &e.value,
            };
            docs.push(Doc {
                index: bare_logs.clone(),
                id: ids::log_id(&origin),
                json: serde_json::to_vec(&d)?,
            });
        } else {
            let d = decode_span(&v, &ctx)?;
            docs.push(Doc {
                index: bare_spans.clone(),
                id: ids::span_id(&d.trace_id, &d.span_id),
                json: serde_json::to_vec(&d)?,
            });
        }
    }
    let es_config = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[(
        "ELASTICSEARCH_NODE",
        &panopticon_e2e::elasticsearch_url(),
    )]))?;
    let es = EsClient::new(&es_config, &EsSecrets::default())?;
    for (stream, kind) in [
        (&bare_logs, StreamKind::Logs),
        (&bare_spans, StreamKind::Spans),
    ] {
        bootstrap::ensure_stream(&es, &format!("{stream}-template"), stream, kind, 1).await?;
    }

    // Warm-up: JIT and caches of OpenSearch, on other streams.
    let warm: Vec<Doc> = docs
        .iter()
        .take(100_000.min(n / 5))
        .map(|d| Doc {
            index: Arc::from(format!("{}-warm", d.index).as_str()),
            id: d.id.clone(),
            json: d.json.clone(),
        })
        .collect();
    for stream in [format!("{bare_logs}-warm"), format!("{bare_spans}-warm")] {
        let kind = if stream.starts_with("logs") {
            StreamKind::Logs
        } else {
            StreamKind::Spans
        };
        bootstrap::ensure_stream(&es, &format!("{stream}-template"), &stream, kind, 1).await?;
    }
    bulk_load(&es, warm, batch, parallel).await?;

    // CPU of the stack's servers during each phase: where the machine's two cores went.
    let server_cpu = |name: &str| -> Option<f64> {
        let dir = std::env::var("PANOPTICON_STACK").ok()?;
        let pid: u32 = std::fs::read_to_string(format!("{dir}/pids/{name}.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        cpu_and_peak_rss(pid).ok().map(|(cpu, _)| cpu)
    };
    // With PANOPTICON_BENCH_PIN=1, OpenSearch gets core 0 to itself and everything else
    // (Kafka, this loader, the ingest process it starts) shares core 1: OpenSearch then has
    // the same CPU in both phases, as on a cluster where it runs on its own nodes.
    let pinned = std::env::var("PANOPTICON_BENCH_PIN").is_ok_and(|v| v == "1");
    let cores = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(0);
    if pinned {
        pin("opensearch", "0")?;
        pin("kafka", "1")?;
        taskset(std::process::id(), "1")?;
        println!("pinned: OpenSearch on core 0; Kafka, loaders and ingest on core 1");
    }

    // (a0) ingest into streams with the previous labels mapping, which it must not migrate
    // (ELASTICSEARCH_MANAGE_TEMPLATES=false); (a) ingest as deployed, current mapping.
    // The previous mapping refuses every dotted label key (its dynamic template maps the
    // intermediate object `labels.db` as a keyword), so (a0) reads the same events with the
    // dots of label keys replaced by `_`: same sizes and shapes, all storable by both.
    let mut previous = IngestFixture::create("bench-previous", 3).await?;
    previous.overrides = fixture.overrides.clone();
    previous.set("ELASTICSEARCH_MANAGE_TEMPLATES", "false");
    for (values, topic) in [
        (&log_values, &previous.logs_topic),
        (&span_values, &previous.spans_topic),
    ] {
        let undotted: Vec<Vec<u8>> = values.iter().map(|v| undotted_label_keys(v)).collect();
        for chunk in undotted.chunks(50_000) {
            kafka::produce(&producer, topic, chunk).await?;
        }
    }
    for (stream, kind) in [
        (&previous.logs_stream, StreamKind::Logs),
        (&previous.spans_stream, StreamKind::Spans),
    ] {
        let template = templates::with_previous_labels_mapping(templates::template(
            stream,
            kind.properties(Flavour::OpenSearch),
        ));
        bootstrap::ensure_stream_with_template(
            &es,
            &format!("{stream}-template"),
            stream,
            &template,
        )
        .await?;
    }
    let a0 = ingest_phase(&previous, n, &server_cpu).await?;
    let a = ingest_phase(&fixture, n, &server_cpu).await?;
    let (ingest_secs, cpu_secs, hwm) = (a.secs, a.cpu_secs, a.peak_rss);
    let ((kafka_0, os_0), (kafka_1, os_1)) = (a.servers_before, a.servers_after);

    // (b) the bare bulk loader, same documents, same batch size and concurrency.
    let os_1b = server_cpu("opensearch");
    let t = Instant::now();
    bulk_load(&es, docs, batch, parallel).await?;
    let bare_secs = t.elapsed().as_secs_f64();
    let os_2 = server_cpu("opensearch");
    wait_until("bare documents", Duration::from_secs(60), || async {
        Ok(count_docs(&bare_logs).await? + count_docs(&bare_spans).await? == n as u64)
    })
    .await?;

    if pinned {
        pin("opensearch", "0-1")?;
        pin("kafka", "0-1")?;
    }
    let ingest_rate = n as f64 / ingest_secs;
    let bare_rate = n as f64 / bare_secs;
    if pinned {
        println!(
            "machine: 2 cores; OpenSearch alone on one, Kafka + loaders + ingest on the other"
        );
    } else {
        println!("machine: {cores} cores; OpenSearch, Kafka and ingest share them");
    }
    println!("batch {batch} docs, {parallel} parallel requests");
    println!(
        "(a) ingest Kafka -> OpenSearch: {n} events in {ingest_secs:.1}s = {ingest_rate:.0} events/s"
    );
    println!(
        "(b) bare bulk loader          : {n} events in {bare_secs:.1}s = {bare_rate:.0} events/s"
    );
    let a0_rate = n as f64 / a0.secs;
    println!(
        "(a0) ingest, previous labels mapping: {n} events in {:.1}s = {a0_rate:.0} events/s, \
         {:.2} us CPU/event, peak RSS {:.1} MiB",
        a0.secs,
        a0.cpu_secs * 1e6 / n as f64,
        a0.peak_rss as f64 / 1048576.0
    );
    println!(
        "ratio ingest / bare: {:.2} (goal >= 0.9)",
        ingest_rate / bare_rate
    );
    println!(
        "ratio current / previous labels mapping: {:.2} (goal >= 0.95)",
        ingest_rate / a0_rate
    );
    println!(
        "ingest CPU: {:.1}s user+system = {:.2} us/event (goal <= 10)",
        cpu_secs,
        cpu_secs * 1e6 / n as f64
    );
    println!("ingest peak RSS: {:.1} MiB", hwm as f64 / 1048576.0);
    if let (Some(k0), Some(k1), Some(o0), Some(o1), Some(o1b), Some(o2)) =
        (kafka_0, kafka_1, os_0, os_1, os_1b, os_2)
    {
        println!(
            "cores used during (a): ingest {:.2}, Kafka broker {:.2}, OpenSearch {:.2}; during (b): OpenSearch {:.2}",
            cpu_secs / ingest_secs,
            (k1 - k0) / ingest_secs,
            (o1 - o0) / ingest_secs,
            (o2 - o1b) / bare_secs
        );
        println!(
            "OpenSearch CPU per document: (a) {:.1} us, (b) {:.1} us",
            (o1 - o0) * 1e6 / n as f64,
            (o2 - o1b) * 1e6 / n as f64
        );
    }
    Ok(())
}

/// What one ingest run measured.
struct IngestPhase {
    /// From the first record consumed to the last document indexed.
    secs: f64,
    cpu_secs: f64,
    peak_rss: u64,
    /// CPU seconds of (Kafka, OpenSearch) so far, at the start and at the end.
    servers_before: (Option<f64>, Option<f64>),
    servers_after: (Option<f64>, Option<f64>),
}

/// Runs `panopticon ingest` (release build) on `fixture` until all `n` events are indexed,
/// then stops it and checks that the streams hold exactly `n` documents.
async fn ingest_phase(
    fixture: &IngestFixture,
    n: usize,
    server_cpu: &dyn Fn(&str) -> Option<f64>,
) -> Result<IngestPhase> {
    let servers_before = (server_cpu("kafka"), server_cpu("opensearch"));
    let binary = Path::new(env!("CARGO_BIN_EXE_panopticon"));
    let mut ingest = Component::start(binary, &["ingest"], &fixture.env(), "bench-ingest").await?;
    let mut t0 = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let m = ingest.metrics().await?;
        if t0.is_none() && metric(&m, "panopticon_ingest_records_consumed_total") > 0.0 {
            t0 = Some(Instant::now());
        }
        if metric(&m, "panopticon_ingest_documents_indexed_total") as usize >= n {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest did not finish; {}",
            ingest.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0
        .context("ingest consumed nothing")?
        .elapsed()
        .as_secs_f64();
    let (cpu_secs, peak_rss) = cpu_and_peak_rss(ingest.pid())?;
    let servers_after = (server_cpu("kafka"), server_cpu("opensearch"));
    ingest.terminate(Duration::from_secs(30)).await?;
    let stored =
        count_docs(&fixture.logs_stream).await? + count_docs(&fixture.spans_stream).await?;
    anyhow::ensure!(
        stored == n as u64,
        "ingest stored {stored} of {n} in {}",
        fixture.logs_stream
    );
    Ok(IngestPhase {
        secs,
        cpu_secs,
        peak_rss,
        servers_before,
        servers_after,
    })
}

async fn bulk_load(es: &EsClient, docs: Vec<Doc>, batch: usize, parallel: usize) -> Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    let mut docs = docs.into_iter().peekable();
    while docs.peek().is_some() {
        let chunk: Vec<Doc> = docs.by_ref().take(batch).collect();
        let permit = slots.clone().acquire_owned().await?;
        let es = es.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = BulkBody::with_capacity(
                chunk
                    .iter()
                    .map(|d| BulkBody::cost(&d.index, &d.id, &d.json))
                    .sum(),
            );
            for d in &chunk {
                body.push_create(&d.index, &d.id, &d.json);
            }
            let (status, bytes) = es
                .send_raw(
                    Method::Post,
                    panopticon_es::bulk::BULK_PATH,
                    "application/x-ndjson",
                    Some(Bytes::from(body.into_bytes())),
                )
                .await?;
            anyhow::ensure!(status.is_success(), "bulk status {status}");
            let outcomes = parse_response(&bytes, chunk.len()).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(outcomes.iter().all(|o| o.is_stored()), "bulk items failed");
            drop(permit);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Sets the CPU affinity of every thread of a process.
fn taskset(pid: u32, cpus: &str) -> Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "taskset {cpus} {pid} failed");
    Ok(())
}

/// Pins a server of the stack (by its pid file) to `cpus`.
fn pin(server: &str, cpus: &str) -> Result<()> {
    let dir = std::env::var("PANOPTICON_STACK").context("PANOPTICON_STACK is not set")?;
    let pid: u32 = std::fs::read_to_string(format!("{dir}/pids/{server}.pid"))?
        .trim()
        .parse()?;
    taskset(pid, cpus)
}

/// The event with every `.` in its label keys replaced by `_` (the value bytes otherwise kept).
fn undotted_label_keys(value: &[u8]) -> Vec<u8> {
    let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(value) else {
        return value.to_vec();
    };
    if let Some(labels) = event.get_mut("labels").and_then(|l| l.as_object_mut()) {
        let renamed: serde_json::Map<String, serde_json::Value> = std::mem::take(labels)
            .into_iter()
            .map(|(k, v)| (k.replace('.', "_"), v))
            .collect();
        *labels = renamed;
    }
    serde_json::to_vec(&event).unwrap_or_else(|_| value.to_vec())
}
