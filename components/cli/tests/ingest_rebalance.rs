//! Two `panopticon ingest` replicas in one consumer group while events keep arriving: a second
//! replica joins mid-stream (partitions move to it, cooperative-sticky), then the first leaves
//! with SIGTERM mid-stream (its partitions are revoked and move back). Exactly one document per
//! event at the end, and nothing left unconsumed.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use panopticon_e2e::ingest::{
    IngestFixture, count_docs, feed, metric, wait_exact_docs, wait_until,
};
use panopticon_e2e::process::Component;
use panopticon_e2e::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_joining_and_leaving_mid_stream_lose_and_duplicate_nothing() -> Result<()> {
    let mut fixture = IngestFixture::create("rebalance", 6).await?;
    fixture.set("BULK_BATCH_SIZE", "300");
    let events = workload::generate(60_000, 31, chrono::Utc::now());
    let (logs, spans) = workload::split(&events);
    let env = fixture.env();
    let binary = Path::new(env!("CARGO_BIN_EXE_panopticon"));

    let feeder = feed(
        &fixture,
        logs.clone(),
        spans.clone(),
        100,
        Duration::from_millis(250),
    );

    let mut first = Component::start(binary, &["ingest"], &env, "ingest-replica-1").await?;
    wait_until(
        "the first replica to store some spans",
        Duration::from_secs(60),
        || async { Ok(count_docs(&fixture.spans_stream).await? >= 3000) },
    )
    .await?;
    let second = Component::start(binary, &["ingest"], &env, "ingest-replica-2").await?;
    wait_until(
        "the second replica to take partitions and consume",
        Duration::from_secs(60),
        || async {
            Ok(metric(
                &second.metrics().await?,
                "panopticon_ingest_records_consumed_total",
            ) > 0.0)
        },
    )
    .await?;
    // Events are still arriving (the feeder runs ~25 s): the first replica leaves mid-stream.
    assert!(
        !feeder.is_finished(),
        "the first replica must leave while events still arrive"
    );
    let status = first.terminate(Duration::from_secs(30)).await?;
    assert!(status.success(), "{}", first.log_tail());

    feeder.await??;
    wait_exact_docs(
        &fixture.logs_stream,
        logs.len() as u64,
        Duration::from_secs(120),
    )
    .await?;
    wait_exact_docs(
        &fixture.spans_stream,
        spans.len() as u64,
        Duration::from_secs(120),
    )
    .await?;
    wait_until(
        "the remaining replica to have no lag",
        Duration::from_secs(30),
        || async {
            Ok(metric(
                &second.metrics().await?,
                "panopticon_ingest_inflight_events",
            ) == 0.0)
        },
    )
    .await?;
    Ok(())
}
