//! `panopticon rollup` as real processes: two replicas elect one leader on a Lease in the
//! stack's kube-apiserver, the leader rolls up spans stored in OpenSearch and reports it on
//! `/metrics`, and when it stops (SIGTERM) the standby takes over at once.

#[path = "../../rollup/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use common::{Fixture, MIN, span_event};
use panopticon_e2e::ingest::{http_get, metric, wait_until};
use panopticon_e2e::process::Component;
use panopticon_model::config::ToEnv as _;
use panopticon_model::rollup::{SeriesKind, Window};

const WAIT: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon"))
}

async fn leader(c: &Component) -> Result<bool> {
    Ok(metric(&c.metrics().await?, "panopticon_rollup_leader") == 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_rolls_up_and_the_standby_takes_over() -> Result<()> {
    let fx = Fixture::create("rollup-proc").await?;
    let now = chrono::Utc::now().timestamp_millis();
    let window = Window::containing(now - 4 * MIN, 60);
    let events: Vec<_> = (0..40)
        .map(|i| {
            span_event(
                "checkout",
                "production",
                "GET /cart",
                "SERVER",
                i % 10 == 0,
                f64::from(i as u32 + 1),
                window.start_ms + i * 100,
                i as u64 + 1,
            )
        })
        .collect();
    fx.index_spans(&events).await?;

    let lease = panopticon_e2e::unique_name("rollup-lease");
    let mut env: Vec<(String, String)> = fx
        .config
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (k, v) in [
        ("ROLLUP_CHECKPOINT_INDEX", fx.checkpoint_index.as_str()),
        ("ROLLUP_POLL_INTERVAL_MS", "300"),
        ("ROLLUP_LATENESS_SECONDS", "0"),
        ("ROLLUP_INITIAL_LOOKBACK_MINUTES", "6"),
        ("ROLLUP_LEADER_ELECTION", "lease"),
        ("ROLLUP_LEASE_NAME", lease.as_str()),
        ("ROLLUP_LEASE_NAMESPACE", "default"),
        ("ROLLUP_LEASE_DURATION_SECONDS", "6"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let a = Component::start(binary(), &["rollup"], &env, "rollup-a").await?;
    let b = Component::start(binary(), &["rollup"], &env, "rollup-b").await?;
    for c in [&a, &b] {
        let (status, body) = http_get(&format!("http://{}/ready", c.admin)).await?;
        assert_eq!(status, 200, "{body}");
    }

    wait_until("one leader", WAIT, || async {
        Ok(leader(&a).await? || leader(&b).await?)
    })
    .await?;
    let (mut first, second) = if leader(&a).await? { (a, b) } else { (b, a) };
    assert!(!leader(&second).await?, "both lead");

    wait_until("the window rolled up", WAIT, || async {
        let docs = fx.documents(SeriesKind::Service).await?;
        Ok(docs.iter().any(|(_, d)| d.request_count == 40))
    })
    .await
    .map_err(|e| e.context(first.log_tail()))?;
    // The lag gauge is set when the cycle ends, after the window's documents are written.
    wait_until("the cycle reported its lag", WAIT, || async {
        Ok(metric(&first.metrics().await?, "panopticon_rollup_lag_seconds") > 0.0)
    })
    .await?;
    let m = first.metrics().await?;
    assert!(metric(&m, "panopticon_rollup_windows_rolled_total") >= 1.0);
    assert!(metric(&m, "panopticon_rollup_documents_written_total") >= 2.0);
    let standby = second.metrics().await?;
    assert_eq!(
        metric(&standby, "panopticon_rollup_windows_rolled_total"),
        0.0,
        "the standby rolled up"
    );

    // The leader stops and releases the lease: the standby leads well before it would expire.
    let status = first.terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "{status}: {}", first.log_tail());
    let stopped = std::time::Instant::now();
    wait_until("the standby leads", WAIT, || async {
        leader(&second).await
    })
    .await
    .map_err(|e| e.context(second.log_tail()))?;
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "took over after {:?}",
        stopped.elapsed()
    );
    let docs = fx.documents(SeriesKind::Service).await?;
    assert_eq!(docs.len(), 1, "one service series: {docs:?}");
    assert_eq!(docs[0].1.error_count, 4);
    let mut second = second;
    second.terminate(Duration::from_secs(20)).await?;
    Ok(())
}
