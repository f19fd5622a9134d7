//! OpenSearch stopped for 30 s while `panopticon ingest` runs and 250k events (~100 MiB) arrive: no crash,
//! consumption pauses at the in-flight cap (memory stays bounded), and after OpenSearch is back
//! every event is stored exactly once. Stops and restarts the stack's OpenSearch, so it lives
//! in its own test binary (cargo runs test binaries one at a time).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use panopticon_e2e::ingest::{IngestFixture, count_docs, metric, wait_until};
use panopticon_e2e::process::{Component, stack};
use panopticon_e2e::{kafka, workload};

const CAP_MB: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_down_for_30s_loses_nothing_duplicates_nothing_and_memory_stays_bounded()
-> Result<()> {
    let mut fixture = IngestFixture::create("outage", 3).await?;
    fixture
        .set("INGEST_MAX_INFLIGHT_MB", &CAP_MB.to_string())
        .set("BULK_BATCH_BYTES_MB", "1")
        .set("ELASTICSEARCH_REQUEST_TIMEOUT_MS", "3000")
        // librdkafka's fetch buffers are memory outside the in-flight cap; keep them small
        // here so the RSS bound below measures ingest's own buffering.
        .set("KAFKA_FETCH_MAX_BYTES", "1048576")
        .set("KAFKA_FETCH_MAX_BYTES_PER_PARTITION", "1048576");
    let env = fixture.env();
    let before = workload::generate(2000, 21, chrono::Utc::now());
    let during = workload::generate(250_000, 22, chrono::Utc::now());
    let (logs_a, spans_a) = workload::split(&before);
    let (logs_b, spans_b) = workload::split(&during);
    let producer = kafka::producer()?;
    let mut ingest = Component::start(
        Path::new(env!("CARGO_BIN_EXE_panopticon")),
        &["ingest"],
        &env,
        "ingest-outage",
    )
    .await?;
    kafka::produce(&producer, &fixture.logs_topic, &logs_a).await?;
    kafka::produce(&producer, &fixture.spans_topic, &spans_a).await?;
    wait_until(
        "the first events to be stored",
        Duration::from_secs(60),
        || async {
            Ok(
                count_docs(&fixture.logs_stream).await? + count_docs(&fixture.spans_stream).await?
                    == before.len() as u64,
            )
        },
    )
    .await?;
    let rss_before = ingest.rss_bytes()?;

    stack(&["down", "opensearch"])?;
    let outage = Instant::now();
    kafka::produce(&producer, &fixture.logs_topic, &logs_b).await?;
    kafka::produce(&producer, &fixture.spans_topic, &spans_b).await?;
    let (mut peak_rss, mut peak_inflight, mut paused_seen) = (0u64, 0.0f64, false);
    while outage.elapsed() < Duration::from_secs(30) {
        let m = ingest.metrics().await?;
        peak_inflight = peak_inflight.max(metric(&m, "panopticon_ingest_inflight_bytes"));
        paused_seen |= metric(&m, "panopticon_ingest_consumption_paused") == 1.0;
        peak_rss = peak_rss.max(ingest.rss_bytes()?);
        assert!(
            ingest.child.try_wait()?.is_none(),
            "ingest exited during the outage; {}",
            ingest.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack(&["up", "opensearch"])?;

    let cap = (CAP_MB << 20) as f64;
    eprintln!(
        "outage: peak in-flight {:.1} MiB (cap {CAP_MB} MiB), RSS {:.1} MiB before, peak {:.1} MiB during, {:.1} MiB of events produced",
        peak_inflight / 1048576.0,
        rss_before as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0,
        during.iter().map(|e| e.value.len()).sum::<usize>() as f64 / 1048576.0,
    );
    assert!(
        paused_seen,
        "consumption must pause while OpenSearch is down"
    );
    // Records delivered between the pause and librdkafka's purge may overshoot the cap a little.
    assert!(
        peak_inflight <= cap * 1.5,
        "in-flight peaked at {peak_inflight} bytes, cap {cap}"
    );
    // RSS grows by the cap (serialised documents), their bookkeeping, the prefetch queue (a
    // quarter of the cap), request bodies being retried and allocator slack: a few times the
    // cap, and far below the ~100 MiB produced meanwhile, which an unbounded buffer would hold.
    let produced: u64 = during.iter().map(|e| e.value.len() as u64).sum();
    let growth = peak_rss.saturating_sub(rss_before);
    assert!(
        growth <= 5 * (CAP_MB << 20),
        "RSS grew by {growth} bytes, more than 5 x the cap"
    );
    assert!(
        growth < produced / 2,
        "RSS grew by {growth} bytes for {produced} bytes produced"
    );

    let total_logs = (logs_a.len() + logs_b.len()) as u64;
    let total_spans = (spans_a.len() + spans_b.len()) as u64;
    wait_until(
        "every event stored after the outage",
        Duration::from_secs(180),
        || async {
            let (l, s) = (
                count_docs(&fixture.logs_stream).await?,
                count_docs(&fixture.spans_stream).await?,
            );
            anyhow::ensure!(
                l <= total_logs && s <= total_spans,
                "duplicates: {l} logs, {s} spans"
            );
            Ok(l == total_logs && s == total_spans)
        },
    )
    .await?;
    let status = ingest.terminate(Duration::from_secs(30)).await?;
    assert!(status.success(), "{}", ingest.log_tail());
    Ok(())
}
