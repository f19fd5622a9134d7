//! Rollup against the stack's real OpenSearch: exact counts, percentiles within 1 %, sketches
//! that merge, late spans, re-rolls without duplicates, restarts, overflow, and two rollers.

mod common;

use std::collections::BTreeMap;

use anyhow::Result;
use common::{Fixture, MIN, caps, span_event, timing};
use panopticon_model::rollup::{OVERFLOW_KEY, RollupDocument, SeriesKind, Window};
use panopticon_model::sketch::{RELATIVE_ACCURACY, Sketch};
use panopticon_rollup::metrics::{LevelLabel, RollLabel};
use panopticon_rollup::writer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The start of the minute `minutes_ago` minutes before now.
fn minute_ago(minutes_ago: i64) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    Window::containing(now - minutes_ago * MIN, 60).start_ms
}

/// The value of rank ⌊q·(n−1)⌋, what the sketch promises to be within 1 % of.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// (service, environment, endpoint, window start).
type SeriesAt = (String, String, String, i64);

struct Generated {
    events: Vec<Value>,
    /// (service, environment, endpoint, window start) → (durations, errors), SERVER spans only.
    truth: BTreeMap<SeriesAt, (Vec<f64>, u64)>,
}

/// SERVER spans with known durations (log-uniform 0.05 ms .. 20 s, some zero), errors, and
/// CLIENT spans that must not count, over `minutes` windows starting at `first`.
fn generate(first: i64, minutes: i64, per_series: usize, seed: u64) -> Generated {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut events = Vec::new();
    let mut truth: BTreeMap<_, (Vec<f64>, u64)> = BTreeMap::new();
    let mut id = seed << 32;
    for minute in 0..minutes {
        let start = first + minute * MIN;
        for service in ["checkout", "search"] {
            for environment in ["production", "staging"] {
                for endpoint in ["GET /a", "POST /b", "GET /c/:id"] {
                    for i in 0..per_series {
                        id += 1;
                        let duration = if i % 50 == 0 {
                            0.0
                        } else {
                            0.05 * (400_000f64).powf(rng.f64())
                        };
                        let error = rng.u8(..) < 20;
                        let at = start + rng.i64(0..MIN);
                        events.push(span_event(
                            service,
                            environment,
                            endpoint,
                            "SERVER",
                            error,
                            duration,
                            at,
                            id,
                        ));
                        let t = truth
                            .entry((
                                service.to_owned(),
                                environment.to_owned(),
                                endpoint.to_owned(),
                                start,
                            ))
                            .or_default();
                        t.0.push(duration);
                        t.1 += u64::from(error);
                        id += 1;
                        events.push(span_event(
                            service,
                            environment,
                            endpoint,
                            "CLIENT",
                            true,
                            duration * 3.0,
                            at,
                            id,
                        ));
                    }
                }
            }
        }
    }
    Generated { events, truth }
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= RELATIVE_ACCURACY * want * 1.000_001,
        "{what}: got {got}, exact {want}"
    );
}

fn assert_same(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs(),
        "{what}: got {got}, exact {want}"
    );
}

fn check_against(doc: &RollupDocument, durations: &[f64], errors: u64) {
    let mut sorted = durations.to_vec();
    sorted.sort_by(f64::total_cmp);
    let what = format!(
        "{}/{}/{:?}@{}",
        doc.service_name, doc.environment, doc.endpoint, doc.timestamp
    );
    assert_eq!(doc.request_count, sorted.len() as u64, "{what}");
    assert_eq!(doc.error_count, errors, "{what}");
    // serde_json reads floats to within one unit in the last place.
    assert_same(&what, doc.error_rate, errors as f64 / sorted.len() as f64);
    for (q, got) in [
        (0.5, doc.latency_p50_ms),
        (0.9, doc.latency_p90_ms),
        (0.95, doc.latency_p95_ms),
        (0.99, doc.latency_p99_ms),
    ] {
        assert_close(&format!("{what} p{q}"), got, exact_quantile(&sorted, q));
    }
    // Exact, up to the last bit of the engine's decimal rendering of a double.
    assert_same(&format!("{what} min"), doc.latency_min_ms, sorted[0]);
    assert_same(
        &format!("{what} max"),
        doc.latency_max_ms,
        sorted[sorted.len() - 1],
    );
    let sum: f64 = sorted.iter().sum();
    assert!((doc.latency_sum_ms - sum).abs() < 1e-6 * sum, "{what}");
}

#[tokio::test]
async fn known_durations_give_exact_counts_percentiles_within_one_percent_and_merging_sketches()
-> Result<()> {
    let fx = Fixture::create("rollup-exact").await?;
    let first = minute_ago(12);
    let data = generate(first, 5, 200, 1);
    fx.index_spans(&data.events).await?;

    let mut worker = fx.worker(caps(200, 10, 100), timing(15), "test");
    let report = worker.cycle(&CancellationToken::new()).await?;
    assert!(report.windows >= 5, "{report:?}");

    let endpoints = fx.documents(SeriesKind::Endpoint).await?;
    assert_eq!(
        endpoints.len(),
        data.truth.len(),
        "one document per series and window"
    );
    for (_, doc) in &endpoints {
        let start = chrono::DateTime::parse_from_rfc3339(&doc.timestamp)?.timestamp_millis();
        let key = (
            doc.service_name.clone(),
            doc.environment.clone(),
            doc.endpoint.clone().unwrap_or_default(),
            start,
        );
        let (durations, errors) = &data.truth[&key];
        check_against(doc, durations, *errors);
        assert!(!doc.overflow);
    }

    // Service series: exact against the union of their endpoints.
    let services = fx.documents(SeriesKind::Service).await?;
    assert_eq!(services.len(), 2 * 2 * 5);
    for (_, doc) in &services {
        assert_eq!(doc.endpoint, None);
        let start = chrono::DateTime::parse_from_rfc3339(&doc.timestamp)?.timestamp_millis();
        let mut durations = Vec::new();
        let mut errors = 0;
        for ((s, e, _, w), (d, n)) in &data.truth {
            if *s == doc.service_name && *e == doc.environment && *w == start {
                durations.extend(d);
                errors += n;
            }
        }
        check_against(doc, &durations, errors);
    }

    // Five 1-minute sketches of a service, and all its environments, merge into exactly the
    // sketch of its 5-minute, all-environment data.
    for service in ["checkout", "search"] {
        let mut merged = Sketch::new();
        let mut errors = 0;
        for (_, doc) in services.iter().filter(|(_, d)| d.service_name == service) {
            merged.merge(&doc.sketch());
            errors += doc.error_count;
        }
        let mut direct = Sketch::new();
        let mut all = Vec::new();
        let mut truth_errors = 0;
        for ((s, _, _, _), (d, n)) in &data.truth {
            if s == service {
                for v in d {
                    direct.add(*v);
                }
                all.extend(d);
                truth_errors += n;
            }
        }
        assert_eq!(merged.buckets, direct.buckets, "{service}");
        assert_eq!(merged.zeros, direct.zeros);
        assert_eq!(merged.count, direct.count);
        assert_eq!(errors, truth_errors);
        all.sort_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.95, 0.99] {
            assert_eq!(merged.quantile(q), direct.quantile(q));
            assert_close(
                &format!("{service} 5-minute p{q}"),
                merged.quantile(q).unwrap_or_default(),
                exact_quantile(&all, q),
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn late_spans_are_counted_by_a_re_roll_that_replaces_documents() -> Result<()> {
    let fx = Fixture::create("rollup-late").await?;
    let window = minute_ago(6);
    let data = generate(window, 1, 20, 2);
    fx.index_spans(&data.events).await?;
    let mut worker = fx.worker(caps(200, 10, 100), timing(8), "test");
    let shutdown = CancellationToken::new();
    worker.cycle(&shutdown).await?;
    let before = fx.documents(SeriesKind::Service).await?;
    let count = |docs: &[(String, RollupDocument)]| -> u64 {
        docs.iter()
            .filter(|(_, d)| d.timestamp_bucket == before[0].1.timestamp_bucket)
            .map(|(_, d)| d.request_count)
            .sum()
    };
    assert_eq!(count(&before), 2 * 2 * 3 * 20);

    // Late spans for the rolled window (90 s after it ended), including a new endpoint.
    let mut late = generate(window, 1, 5, 3).events;
    late.push(span_event(
        "checkout",
        "production",
        "GET /new",
        "SERVER",
        false,
        5.0,
        window + 1000,
        99,
    ));
    fx.index_spans(&late).await?;
    let report = worker.cycle(&shutdown).await?;
    assert_eq!(
        report.windows, 1,
        "the changed window rolls again: {report:?}"
    );
    let after = fx.documents(SeriesKind::Service).await?;
    assert_eq!(count(&after), 2 * 2 * 3 * 25 + 1);
    assert_eq!(after.len(), before.len(), "replaced, not duplicated");
    let ids: Vec<_> = after.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, before.iter().map(|(id, _)| id).collect::<Vec<_>>());
    assert_eq!(
        worker
            .metrics
            .windows_rolled
            .get_or_create(&RollLabel { roll: "again" })
            .get(),
        1
    );

    // Nothing changed: nothing rolls, and rolling again by hand gives the same documents.
    let report = worker.cycle(&shutdown).await?;
    assert_eq!(report.windows, 0, "{report:?}");
    let w = Window::containing(window, 60);
    let rollup = fx.aggregator(caps(200, 10, 100)).roll(&w).await?;
    let docs = writer::documents(&fx.indices(), &w, &rollup, &chrono::Utc::now());
    fx.writer().write(&w, &docs).await?;
    let again = fx.documents(SeriesKind::Service).await?;
    assert_eq!(again.len(), after.len());
    for ((id_a, a), (id_b, b)) in again.iter().zip(&after) {
        assert_eq!(id_a, id_b);
        assert_eq!(
            (a.request_count, a.latency_p95_ms, &a.latency_sketch),
            (b.request_count, b.latency_p95_ms, &b.latency_sketch)
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_restart_mid_cycle_leaves_no_gap_and_no_duplicate() -> Result<()> {
    let fx = Fixture::create("rollup-restart").await?;
    let first = minute_ago(9);
    let data = generate(first, 6, 10, 4);
    fx.index_spans(&data.events).await?;
    let mut t = timing(10);
    t.max_windows_per_cycle = 2;

    // A first process rolls two windows and saves its checkpoint.
    let mut one = fx.worker(caps(200, 10, 100), t, "one");
    assert_eq!(one.cycle(&CancellationToken::new()).await?.windows, 2);
    let (checkpoint, _) = fx.store().load().await?.expect("saved");
    // It dies after writing the next window but before saving the checkpoint.
    let next = Window::containing(checkpoint.watermark_ms, 60);
    let rollup = fx.aggregator(caps(200, 10, 100)).roll(&next).await?;
    let docs = writer::documents(&fx.indices(), &next, &rollup, &chrono::Utc::now());
    fx.writer().write(&next, &docs).await?;
    drop(one);

    // A new process resumes from the checkpoint.
    let mut two = fx.worker(caps(200, 10, 100), t, "two");
    while two.cycle(&CancellationToken::new()).await?.windows > 0 {}
    let services = fx.documents(SeriesKind::Service).await?;
    let mut per_window: BTreeMap<String, u64> = BTreeMap::new();
    for (_, d) in &services {
        *per_window.entry(d.timestamp_bucket.clone()).or_default() += d.request_count;
    }
    let windows_with_data: Vec<_> = per_window.keys().cloned().collect();
    assert_eq!(windows_with_data.len(), 6, "no gap: {per_window:?}");
    assert!(
        per_window.values().all(|n| *n == 2 * 2 * 3 * 10),
        "no duplicate: {per_window:?}"
    );
    assert_eq!(services.len(), 6 * 4);
    Ok(())
}

#[tokio::test]
async fn series_beyond_the_caps_fold_into_counted_overflow_series() -> Result<()> {
    let fx = Fixture::create("rollup-overflow").await?;
    let window = minute_ago(5);
    let mut events = Vec::new();
    let mut id = 0;
    let mut add = |service: &str, env: &str, endpoint: &str, n: usize| {
        for _ in 0..n {
            id += 1;
            events.push(span_event(
                service,
                env,
                endpoint,
                "SERVER",
                false,
                10.0,
                window + 500,
                id,
            ));
        }
    };
    // Caps: 2 services, 1 environment per service, 2 endpoints per pair.
    add("big", "production", "a", 50);
    add("big", "production", "b", 40);
    add("big", "production", "c", 3); // endpoint beyond the cap
    add("big", "production", "d", 2); // endpoint beyond the cap
    add("big", "staging", "a", 7); // environment beyond the cap
    add("mid", "production", "a", 30);
    add("tiny1", "production", "a", 5); // service beyond the cap
    add("tiny2", "qa", "a", 4); // service beyond the cap
    let total = events.len() as u64;
    fx.index_spans(&events).await?;

    let mut worker = fx.worker(caps(2, 1, 2), timing(6), "test");
    worker.cycle(&CancellationToken::new()).await?;
    let endpoints = fx.documents(SeriesKind::Endpoint).await?;
    let series: Vec<(&str, &str, &str, u64, bool)> = endpoints
        .iter()
        .map(|(_, d)| {
            (
                d.service_name.as_str(),
                d.environment.as_str(),
                d.endpoint.as_deref().unwrap_or_default(),
                d.request_count,
                d.overflow,
            )
        })
        .collect();
    assert_eq!(
        series,
        [
            (OVERFLOW_KEY, OVERFLOW_KEY, OVERFLOW_KEY, 9, true),
            ("big", OVERFLOW_KEY, OVERFLOW_KEY, 7, true),
            ("big", "production", OVERFLOW_KEY, 5, true),
            ("big", "production", "a", 50, false),
            ("big", "production", "b", 40, false),
            ("mid", "production", "a", 30, false),
        ]
    );
    assert_eq!(
        series.iter().map(|s| s.3).sum::<u64>(),
        total,
        "nothing dropped"
    );
    let services = fx.documents(SeriesKind::Service).await?;
    assert_eq!(
        services
            .iter()
            .map(|(_, d)| (
                d.service_name.as_str(),
                d.environment.as_str(),
                d.request_count
            ))
            .collect::<Vec<_>>(),
        [
            (OVERFLOW_KEY, OVERFLOW_KEY, 9),
            ("big", OVERFLOW_KEY, 7),
            ("big", "production", 95),
            ("mid", "production", 30),
        ]
    );
    let folded = |level| {
        worker
            .metrics
            .overflow_spans
            .get_or_create(&LevelLabel { level })
            .get()
    };
    assert_eq!(
        (folded("service"), folded("environment"), folded("endpoint")),
        (9, 7, 5)
    );
    assert_eq!(worker.metrics.unaccounted_spans.get(), 0);
    Ok(())
}

#[tokio::test]
async fn two_rollers_at_once_write_each_document_once() -> Result<()> {
    let fx = Fixture::create("rollup-two").await?;
    let first = minute_ago(8);
    let data = generate(first, 5, 10, 5);
    fx.index_spans(&data.events).await?;
    let t = timing(9);
    let mut a = fx.worker(caps(200, 10, 100), t, "a");
    let mut b = fx.worker(caps(200, 10, 100), t, "b");
    let stop = CancellationToken::new();
    // A loser of a checkpoint race adopts the winner's checkpoint and stops its cycle; the
    // next cycle goes on. Run until both find nothing to do.
    // A cycle that fails (an index the other roller is creating, a shard not started yet) is
    // retried after a pause, as the worker's loop does.
    let mut settled = false;
    let mut last = String::new();
    for _ in 0..40 {
        let (ra, rb) = tokio::join!(a.cycle(&stop), b.cycle(&stop));
        if let (Ok(ra), Ok(rb)) = (&ra, &rb)
            && ra.windows == 0
            && rb.windows == 0
            && !ra.conflict
            && !rb.conflict
        {
            settled = true;
            break;
        }
        if ra.is_err() || rb.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        last = format!("{ra:?} / {rb:?}");
    }
    assert!(
        settled,
        "the two rollers never settled; last cycles: {last}"
    );
    assert!(a.metrics.checkpoint_conflicts.get() + b.metrics.checkpoint_conflicts.get() > 0);
    let services = fx.documents(SeriesKind::Service).await?;
    let mut per_window: BTreeMap<String, u64> = BTreeMap::new();
    for (_, d) in &services {
        *per_window.entry(d.timestamp_bucket.clone()).or_default() += d.request_count;
    }
    assert_eq!(per_window.len(), 5, "{per_window:?}");
    assert!(
        per_window.values().all(|n| *n == 2 * 2 * 3 * 10),
        "{per_window:?}"
    );
    assert_eq!(services.len(), 5 * 4);
    let (checkpoint, _) = fx.store().load().await?.expect("saved");
    assert!(checkpoint.watermark_ms >= first + 5 * MIN);
    Ok(())
}
