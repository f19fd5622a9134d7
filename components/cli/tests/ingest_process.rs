//! `panopticon ingest` as a real process: killed with SIGKILL mid-stream and restarted, and
//! stopped with SIGTERM while its buffer is full. Real Kafka and OpenSearch from `e2e/stack`.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use panopticon_e2e::ingest::{
    IngestFixture, count_docs, feed, metric, wait_exact_docs, wait_until,
};
use panopticon_e2e::process::Component;
use panopticon_e2e::{kafka, workload};

const WAIT: Duration = Duration::from_secs(120);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon"))
}

async fn wait_exact(stream: &str, n: u64) -> Result<()> {
    wait_exact_docs(stream, n, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_gives_exactly_one_document_per_event() -> Result<()> {
    let mut fixture = IngestFixture::create("kill", 3).await?;
    fixture
        .set("BULK_BATCH_SIZE", "200")
        .set("BULK_MAX_PARALLEL_FLUSHES", "2");
    let events = workload::generate(30_000, 11, chrono::Utc::now());
    let (logs, spans) = workload::split(&events);
    let env = fixture.env();

    let mut ingest = Component::start(binary(), &["ingest"], &env, "ingest-kill").await?;
    // Produce in slices while ingest runs, so the kill lands mid-stream.
    let feeder = feed(
        &fixture,
        logs.clone(),
        spans.clone(),
        20,
        Duration::from_millis(50),
    );
    wait_until("some documents before the kill", WAIT, || async {
        Ok(count_docs(&fixture.spans_stream).await? >= 2000)
    })
    .await?;
    ingest.kill_hard()?;
    let at_kill =
        count_docs(&fixture.spans_stream).await? + count_docs(&fixture.logs_stream).await?;
    assert!(
        at_kill < events.len() as u64,
        "the kill must land mid-stream ({at_kill} stored)"
    );

    feeder.await??;
    let mut ingest = Component::start(binary(), &["ingest"], &env, "ingest-kill-restart").await?;
    wait_exact(&fixture.logs_stream, logs.len() as u64).await?;
    wait_exact(&fixture.spans_stream, spans.len() as u64).await?;
    // Whatever the restart read again was absorbed as duplicates, not stored twice.
    let m = ingest.metrics().await?;
    let indexed = metric(&m, "panopticon_ingest_documents_indexed_total") as u64;
    assert!(
        indexed <= events.len() as u64 - at_kill.min(events.len() as u64) + 1,
        "indexed {indexed}"
    );
    let status = ingest.terminate(Duration::from_secs(30)).await?;
    assert!(
        status.success(),
        "exit status {status}; {}",
        ingest.log_tail()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_buffer_flushes_and_commits_everything_before_exit() -> Result<()> {
    let mut fixture = IngestFixture::create("term", 2).await?;
    // Nothing is flushed by size or time: only shutdown can flush this buffer.
    fixture
        .set("BULK_BATCH_SIZE", "1000000")
        .set("BULK_BATCH_BYTES_MB", "256")
        .set("BULK_FLUSH_INTERVAL_MS", "600000")
        .set("INGEST_MAX_INFLIGHT_MB", "512");
    let events = workload::generate(5000, 13, chrono::Utc::now());
    let (logs, spans): (Vec<_>, Vec<_>) = events.iter().partition(|e| e.is_log);
    let producer = kafka::producer()?;
    kafka::produce(
        &producer,
        &fixture.logs_topic,
        &logs.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
    )
    .await?;
    kafka::produce(
        &producer,
        &fixture.spans_topic,
        &spans.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
    )
    .await?;
    let env = fixture.env();
    let mut ingest = Component::start(binary(), &["ingest"], &env, "ingest-term").await?;
    wait_until("every record read into the buffer", WAIT, || async {
        Ok(metric(
            &ingest.metrics().await?,
            "panopticon_ingest_records_consumed_total",
        ) as usize
            == events.len())
    })
    .await?;
    assert_eq!(
        count_docs(&fixture.logs_stream).await? + count_docs(&fixture.spans_stream).await?,
        0,
        "nothing may be flushed before the SIGTERM in this set-up"
    );

    let status = ingest.terminate(Duration::from_secs(30)).await?;
    assert!(
        status.success(),
        "exit status {status}; {}",
        ingest.log_tail()
    );
    assert_eq!(count_docs(&fixture.logs_stream).await?, logs.len() as u64);
    assert_eq!(count_docs(&fixture.spans_stream).await?, spans.len() as u64);

    // Committed: the same group reads nothing again.
    let again = Component::start(binary(), &["ingest"], &env, "ingest-term-again").await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = again.metrics().await?;
    assert_eq!(
        metric(&m, "panopticon_ingest_records_consumed_total"),
        0.0,
        "offsets were not committed"
    );
    Ok(())
}

/// Dead letters of both stages reach the log, not only /metrics: the throughput line counts
/// them, and a WARN per stage and reason names the reason code, the count and a sample record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_every_stage_are_counted_and_named_in_the_log() -> Result<()> {
    use panopticon_e2e::ingest::http;
    let mut fixture = IngestFixture::create("dead-log", 1).await?;
    fixture.set("STREAM_THROUGHPUT_MIN_INTERVAL_MS", "100");
    // A stricter template than Panopticon's takes the logs stream: `labels.n` is an integer,
    // so a string there is refused at index time.
    let base = panopticon_e2e::elasticsearch_url();
    let template = serde_json::json!({"index_patterns": [fixture.logs_stream], "data_stream": {},
        "priority": 900, "template": {"mappings": {"properties": {"@timestamp": {"type": "date"},
        "labels": {"properties": {"n": {"type": "integer"}}}}}}});
    let url = format!("{base}/_index_template/strict-{}", fixture.logs_stream);
    let (status, body) = http("PUT", &url, Some(&template.to_string())).await?;
    anyhow::ensure!(status == 200, "PUT {url}: {status} {body}");
    let url = format!("{base}/_data_stream/{}", fixture.logs_stream);
    let (status, body) = http("PUT", &url, None).await?;
    anyhow::ensure!(status == 200, "PUT {url}: {status} {body}");
    let event = |n: &str| {
        serde_json::json!({"service_name": "s", "environment": "e", "level": "INFO",
            "message": "m", "labels": {"n": n}})
        .to_string()
        .into_bytes()
    };
    let records = vec![
        event("1"),
        event("not a number"), // offset 1: refused by the engine
        b"{not json".to_vec(), // offset 2: invalid input
        event("3"),
    ];
    kafka::produce(&kafka::producer()?, &fixture.logs_topic, &records).await?;
    let env = fixture.env();
    let ingest = Component::start(binary(), &["ingest"], &env, "ingest-dead-log").await?;
    wait_exact(&fixture.logs_stream, 2).await?;
    let log = || without_ansi(&std::fs::read_to_string(&ingest.log).unwrap_or_default());
    let has_warn = |text: &str, stage: &str, reason: &str, offset: u32| {
        text.lines().any(|line| {
            line.contains("WARN")
                && line.contains("dead-lettered since the last report")
                && line.contains(&format!("stage=\"{stage}\""))
                && line.contains(&format!("reason={reason}"))
                && line.contains("events=1")
                && line.contains(&format!("sample_offset={offset}"))
        })
    };
    wait_until("both dead-letter warnings in the log", WAIT, || async {
        let text = log();
        Ok(has_warn(&text, "index", "mapper_parsing_exception", 1)
            && has_warn(&text, "decode", "invalid_json", 2))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", ingest.log_tail()))?;
    // The throughput lines count both.
    let counted: u64 = log()
        .lines()
        .filter(|line| line.contains("stream throughput"))
        .filter_map(|line| {
            let at = line.find("dead_lettered=")? + "dead_lettered=".len();
            line[at..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(counted, 2, "{}", ingest.log_tail());
    Ok(())
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), as the plain log format may colour
/// field names.
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
