//! The dashboard's load on the query API over a realistic data set, cold and cached.
//!
//! 1. Loads (once; reused while it is fresh) `PANOPTICON_BENCH_SPANS` spans (default
//!    5 000 000) over the last 24 h: 10 services × 2 environments × 8 endpoints, traces of a
//!    SERVER root with a CLIENT and an INTERNAL child, log-normal durations, 2 % errors, one log
//!    per trace (ERROR for failed traces). Then rolls up every closed minute with the rollup
//!    component's own aggregator and writer, leaving the last 3 minutes to raw reads.
//! 2. Times the 24 h metrics call (`interval=1h`, the dashboard's 1-day preset) cold, and the
//!    15-minute one, each service in turn.
//! 3. Replays the service page's polling from `PANOPTICON_BENCH_CLIENTS` clients (default 50)
//!    for `PANOPTICON_BENCH_SECONDS` (default 60) per phase: metrics, endpoints and traces every
//!    3 s, logs every 30 s, with the dashboard's exact parameters (15-minute preset). Phase
//!    "cold" has the Redis cache off, phase "cached" on.
//! 4. Prints p50/p99 per route and phase, requests/s, and the goals.
//!
//! Requests go through the API's router in process (no socket): the figures are the API's and
//! the engine's, without HTTP framing. The stack's servers share the machine's cores.
//!
//! Needs the stack: `e2e/stack up && eval "$(e2e/stack env)" && cargo bench -p panopticon-query`.

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use common::{Api, MIN, World, iso_param};
use elasticsearch::http::Method;
use futures::StreamExt as _;
use panopticon_es::bulk::BulkBody;
use panopticon_model::{DecodeContext, Limits, decode_log, decode_span, ids};
use serde_json::json;

const NAME: &str = "qbench-v1";
const SERVICES: [&str; 10] = [
    "checkout", "search", "billing", "catalog", "auth", "cart", "shipping", "payments", "reviews",
    "gateway",
];
const HOUR: i64 = 60 * MIN;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Spans in the bench's span stream and the newest span's time.
async fn loaded_state(world: &World) -> Result<(u64, i64)> {
    world.refresh(&world.spans()).await?;
    let answer = world
        .es
        .request_ok(
            Method::Post,
            &format!(
                "/{}/_search?ignore_unavailable=true&allow_no_indices=true",
                world.spans()
            ),
            Some(&json!({"size": 0, "track_total_hits": true,
                "aggs": {"newest": {"max": {"field": "@timestamp"}}}})),
        )
        .await?;
    Ok((
        answer["hits"]["total"]["value"].as_u64().unwrap_or(0),
        answer["aggregations"]["newest"]["value"]
            .as_f64()
            .unwrap_or(0.0) as i64,
    ))
}

async fn drop_world(world: &World) -> Result<()> {
    for stream in [world.spans(), world.logs()] {
        world
            .es
            .request(Method::Delete, &format!("/_data_stream/{stream}"), None)
            .await?;
    }
    let base = world.rollup_indices().base;
    world
        .es
        .request(
            Method::Delete,
            &format!("/{base}-*?ignore_unavailable=true&allow_no_indices=true"),
            None,
        )
        .await?;
    Ok(())
}

/// Generates and stores the data set ending at `end`; returns (spans, logs).
async fn load(world: &World, spans_wanted: usize, end: i64) -> Result<(usize, usize)> {
    let traces = spans_wanted / 3;
    let start = end - 24 * HOUR;
    let limits = Limits::default();
    let mut rng = fastrand::Rng::with_seed(42);
    let spans_stream = world.spans();
    let logs_stream = world.logs();
    let mut bodies = Vec::new();
    let (mut span_count, mut log_count) = (0, 0);
    let chunk = 3000;
    let mut tasks = futures::stream::FuturesUnordered::new();
    for first in (0..traces).step_by(chunk) {
        let ctx = DecodeContext {
            limits: &limits,
            now: chrono::Utc::now(),
        };
        let mut spans = BulkBody::with_capacity(chunk * 3 * 450);
        let mut logs = BulkBody::with_capacity(chunk * 350);
        for t in first..(first + chunk).min(traces) {
            let service = SERVICES[rng.usize(..SERVICES.len())];
            let env = if rng.u8(..10) < 8 {
                "production"
            } else {
                "staging"
            };
            let endpoint = rng.usize(..8);
            let at = start + rng.i64(0..24 * HOUR);
            let error = rng.u8(..100) < 2;
            let normal = (0..6).map(|_| rng.f64()).sum::<f64>() - 3.0;
            let duration = (20.0 + 15.0 * endpoint as f64) * (normal * 0.8).exp();
            let trace = format!("{t:032x}");
            let root = format!("{:016x}", t * 3);
            let events = [
                json!({"timestamp": at, "service_name": service, "environment": env,
                    "trace_id": trace, "span_id": root,
                    "name": format!("GET /api/{service}/{endpoint}"), "kind": "SERVER",
                    "duration_ms": duration, "status": if error { "ERROR" } else { "OK" },
                    "http_method": "GET", "http_status_code": if error { 500 } else { 200 }}),
                json!({"timestamp": at + 1, "service_name": service, "environment": env,
                    "trace_id": trace, "span_id": format!("{:016x}", t * 3 + 1),
                    "parent_span_id": root, "name": "SELECT items", "kind": "CLIENT",
                    "duration_ms": duration * 0.4, "status": "OK"}),
                json!({"timestamp": at + 2, "service_name": service, "environment": env,
                    "trace_id": trace, "span_id": format!("{:016x}", t * 3 + 2),
                    "parent_span_id": root, "name": "render", "kind": "INTERNAL",
                    "duration_ms": duration * 0.2, "status": "OK"}),
            ];
            for event in &events {
                let doc = decode_span(event, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
                let id = ids::span_id(&doc.trace_id, &doc.span_id);
                spans.push_create(&spans_stream, &id, &serde_json::to_vec(&doc)?);
                span_count += 1;
            }
            let log = json!({"timestamp": at + 3, "service_name": service, "environment": env,
                "level": if error { "ERROR" } else { "INFO" },
                "message": if error { format!("request {t} failed: upstream timeout") }
                           else { format!("request {t} served") },
                "trace_id": trace, "span_id": root});
            let doc = decode_log(&log, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
            logs.push_create(
                &logs_stream,
                &format!("bench-log-{t}"),
                &serde_json::to_vec(&doc)?,
            );
            log_count += 1;
        }
        bodies.push(spans);
        bodies.push(logs);
        while let Some(body) = bodies.pop() {
            if tasks.len() >= 2 {
                tasks.next().await.context("bulk task")??;
            }
            tasks.push(world.bulk(body));
        }
        if first % (traces / 10).max(1) < chunk {
            println!("  loaded {span_count} spans, {log_count} logs");
        }
    }
    while let Some(done) = tasks.next().await {
        done?;
    }
    world.refresh(&world.spans()).await?;
    world.refresh(&world.logs()).await?;
    Ok((span_count, log_count))
}

/// Rolls up every closed minute of the last 24 h except the last 3.
async fn roll_all(world: &World, end: i64) -> Result<usize> {
    let last = end - 3 * MIN;
    let first = end - 24 * HOUR - MIN;
    let windows: Vec<i64> = (0..)
        .map(|i| first - first.rem_euclid(MIN) + i * MIN)
        .take_while(|t| *t < last)
        .collect();
    let count = windows.len();
    futures::stream::iter(windows.chunks(60).map(<[i64]>::to_vec))
        .map(|chunk| world.roll(chunk))
        .buffer_unordered(2)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(count)
}

/// Latencies by route, and by `route:outcome` (`hit`, `miss`, `coalesced`, `bypass`).
type Samples = BTreeMap<String, Vec<f64>>;

async fn timed(api: &Api, uri: &str) -> Result<f64> {
    Ok(timed_with_outcome(api, uri).await?.0)
}

/// Latency in ms and the `X-Panopticon-Cache` outcome.
async fn timed_with_outcome(api: &Api, uri: &str) -> Result<(f64, String)> {
    let started = Instant::now();
    let answer = api.get(uri).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        answer.status.is_success(),
        "GET {uri}: {} {}",
        answer.status,
        answer.text
    );
    Ok((ms, answer.cache().to_owned()))
}

/// The service page of one client, polling until `until`.
async fn client(
    api: Arc<Api>,
    service: &'static str,
    until: Instant,
    offset_ms: u64,
) -> Result<Samples> {
    let mut samples = Samples::new();
    tokio::time::sleep(Duration::from_millis(offset_ms)).await;
    let mut tick = 0u64;
    while Instant::now() < until {
        let now = chrono::Utc::now().timestamp_millis();
        let range = format!("from={}&to={}", iso_param(now - 15 * MIN), iso_param(now));
        let calls: Vec<(&'static str, String)> = {
            let mut c = vec![
                (
                    "metrics",
                    format!("/query/services/{service}/metrics?{range}&interval=45s"),
                ),
                (
                    "endpoints",
                    format!(
                        "/query/services/{service}/endpoints?{range}&limit=200&sort_by=request_count"
                    ),
                ),
                (
                    "traces",
                    format!("/query/services/{service}/traces?{range}&page=1&size=200"),
                ),
            ];
            if tick.is_multiple_of(10) {
                c.push((
                    "logs",
                    format!("/query/logs?service_name={service}&{range}&size=10000"),
                ));
            }
            c
        };
        let results = futures::future::join_all(calls.iter().map(|(route, uri)| {
            let api = api.clone();
            async move { (*route, timed_with_outcome(&api, uri).await) }
        }))
        .await;
        for (route, answer) in results {
            let (ms, outcome) = answer?;
            samples.entry(route.to_owned()).or_default().push(ms);
            samples
                .entry(format!("{route}:{outcome}"))
                .or_default()
                .push(ms);
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(samples)
}

async fn replay(api: Arc<Api>, clients: usize, seconds: u64) -> Result<(Samples, f64)> {
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(client(
                api,
                SERVICES[i % SERVICES.len()],
                until,
                (i as u64 * 3000) / clients as u64,
            ))
        })
        .collect();
    let mut all = Samples::new();
    for task in tasks {
        for (route, mut v) in task.await?? {
            all.entry(route).or_default().append(&mut v);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests: usize = all
        .iter()
        .filter(|(route, _)| !route.contains(':'))
        .map(|(_, v)| v.len())
        .sum();
    Ok((all, requests as f64 / elapsed))
}

fn report(phase: &str, samples: &mut Samples, rps: f64) {
    for (route, v) in samples.iter_mut() {
        v.sort_by(f64::total_cmp);
        println!(
            "{phase:<8} {route:<20} {:>6} {:>9.1} {:>9.1}",
            v.len(),
            percentile(v, 50.0),
            percentile(v, 99.0)
        );
    }
    println!(
        "{phase:<8} {:<20} {rps:>6.1} requests/s (offered by the clients, all served)",
        "all"
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let spans_wanted = env_or("PANOPTICON_BENCH_SPANS", 5_000_000);
    let clients = env_or("PANOPTICON_BENCH_CLIENTS", 50);
    let seconds = env_or("PANOPTICON_BENCH_SECONDS", 60) as u64;
    let world = World::named(NAME).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let (stored, newest) = loaded_state(&world).await?;
    if stored as usize >= spans_wanted / 3 * 3 && newest > now - 30 * MIN {
        println!(
            "reusing {stored} spans (newest {} min old)",
            (now - newest) / MIN
        );
    } else {
        drop_world(&world).await?;
        let world_again = World::named(NAME).await?;
        let end = now - now.rem_euclid(MIN);
        let started = Instant::now();
        let (spans, logs) = load(&world_again, spans_wanted, end).await?;
        println!(
            "loaded {spans} spans and {logs} logs over 24 h in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let windows = roll_all(&world_again, end).await?;
        println!(
            "rolled up {windows} windows in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    let cold = Arc::new(world.api(&[
        ("METRICS_CACHE_TTL_SECONDS", "0"),
        ("QUERY_CACHE_TTL_SECONDS", "0"),
    ])?);
    let cached = Arc::new(world.api(&[])?);

    // The 24-hour call, cold, each service in turn (after one warm-up of the engine).
    let mut day = Vec::new();
    let mut quarter = Vec::new();
    for round in 0..4 {
        for service in SERVICES {
            let now = chrono::Utc::now().timestamp_millis();
            let uri = format!(
                "/query/services/{service}/metrics?from={}&to={}&interval=1h",
                iso_param(now - 24 * HOUR),
                iso_param(now)
            );
            let ms = timed(&cold, &uri).await?;
            let uri15 = format!(
                "/query/services/{service}/metrics?from={}&to={}&interval=45s",
                iso_param(now - 15 * MIN),
                iso_param(now)
            );
            let ms15 = timed(&cold, &uri15).await?;
            if round > 0 {
                day.push(ms);
                quarter.push(ms15);
            }
        }
    }
    day.sort_by(f64::total_cmp);
    quarter.sort_by(f64::total_cmp);

    println!("\nphase    route                     n    p50 ms    p99 ms");
    println!(
        "{:<8} {:<20} {:>6} {:>9.1} {:>9.1}   (24 h, interval 1h, one at a time)",
        "cold",
        "metrics24h",
        day.len(),
        percentile(&day, 50.0),
        percentile(&day, 99.0)
    );
    println!(
        "{:<8} {:<20} {:>6} {:>9.1} {:>9.1}   (15 min, interval 45s, one at a time)",
        "cold",
        "metrics15m",
        quarter.len(),
        percentile(&quarter, 50.0),
        percentile(&quarter, 99.0)
    );
    let (mut cold_samples, cold_rps) = replay(cold, clients, seconds).await?;
    report("cold", &mut cold_samples, cold_rps);
    let (mut cached_samples, cached_rps) = replay(cached, clients, seconds).await?;
    report("cached", &mut cached_samples, cached_rps);

    let hits = cached_samples
        .get("metrics:hit")
        .map_or(0.0, |v| percentile(v, 99.0));
    let cached_metrics_p99 = percentile(&cached_samples["metrics"], 99.0);
    println!(
        "\ngoal: cached metrics p99 ≤ 20 ms: {hits:.1} ms when answered from the cache ({}); \
         {cached_metrics_p99:.1} ms over every call of the cached phase, misses included",
        if hits <= 20.0 { "met" } else { "missed" }
    );
    let day_p99 = percentile(&day, 99.0);
    println!(
        "goal: cold 24 h metrics p99 ≤ 300 ms: {day_p99:.1} ms ({})",
        if day_p99 <= 300.0 { "met" } else { "missed" }
    );
    println!(
        "cached / cold: metrics p99 {:.3}, requests/s {:.1}×",
        cached_metrics_p99 / percentile(&cold_samples["metrics"], 99.0).max(0.001),
        cached_rps / cold_rps.max(0.001)
    );
    Ok(())
}
