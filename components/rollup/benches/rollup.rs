//! Time and engine CPU to roll up one minute of spans, side by side with the NestJS
//! backend's rollup query over the same minute and with what indexing that minute cost the engine.
//!
//! 1. Loads `PANOPTICON_BENCH_SPANS` spans (default 600 000, i.e. 10 000 spans/s for one
//!    minute: a sixth of a 60 000 spans/s production target, what this machine loads in well
//!    under a minute) into one window: a quarter SERVER spans, the rest CLIENT and INTERNAL;
//!    20 services × 3 environments × 8 endpoints; log-normal durations; 5 % errors. Measures
//!    the engine's CPU while indexing.
//! 2. Rolls the window up `PANOPTICON_BENCH_ROUNDS` times (default 3) with the real aggregator
//!    and writer: wall time, engine CPU, this process's CPU.
//! 3. Runs the NestJS backend's query on the same window as many times (terms service → environment →
//!    TDigest percentiles + error filter; no endpoints, no sketch).
//! 4. Prints the figures, the ratios, and the linear extrapolation to 60 000 spans/s.
//!
//! Needs the stack: `e2e/stack up && eval "$(e2e/stack env)" && cargo bench -p panopticon-rollup`.

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use anyhow::{Context as _, Result};
use common::{Fixture, MIN, caps, span_event};
use elasticsearch::http::Method;
use panopticon_model::rollup::Window;
use panopticon_rollup::writer;
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of a process (user + system).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of the stack's OpenSearch so far.
fn opensearch_cpu() -> Result<f64> {
    let dir = std::env::var("PANOPTICON_STACK").context("PANOPTICON_STACK is not set")?;
    let pid = std::fs::read_to_string(format!("{dir}/pids/opensearch.pid"))?;
    cpu_seconds(pid.trim()).context("cannot read OpenSearch's CPU time")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let spans = env_or("PANOPTICON_BENCH_SPANS", 600_000);
    let rounds = env_or("PANOPTICON_BENCH_ROUNDS", 3).max(1);
    let fx = Fixture::create("rollup-bench").await?;
    let now = chrono::Utc::now().timestamp_millis();
    let window = Window::containing(now - 10 * MIN, 60);

    let mut rng = fastrand::Rng::with_seed(7);
    let kinds = ["SERVER", "CLIENT", "INTERNAL", "CLIENT"];
    let load_started = Instant::now();
    let os_before_load = opensearch_cpu()?;
    let mut server_spans = 0;
    for chunk_start in (0..spans).step_by(50_000) {
        let events: Vec<_> = (chunk_start..(chunk_start + 50_000).min(spans))
            .map(|i| {
                let kind = kinds[i % kinds.len()];
                server_spans += usize::from(kind == "SERVER");
                // Log-normal around 40 ms.
                let normal = (0..6).map(|_| rng.f64()).sum::<f64>() - 3.0;
                let duration = 40.0 * (normal * 1.2).exp();
                span_event(
                    &format!("service-{:02}", rng.usize(0..20)),
                    ["production", "staging", "development"][rng.usize(0..3)],
                    &format!("GET /api/v1/resource-{}", rng.usize(0..8)),
                    kind,
                    rng.u8(0..100) < 5,
                    duration,
                    window.start_ms + rng.i64(0..MIN),
                    i as u64 + 1,
                )
            })
            .collect();
        fx.index_spans(&events).await?;
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let os_load_cpu = opensearch_cpu()? - os_before_load;
    fx.refresh(fx.spans()).await?;

    let aggregator = fx.aggregator(caps(200, 10, 100));
    let writer = fx.writer();
    let (mut roll_wall, mut roll_os, mut roll_self) = (Vec::new(), Vec::new(), Vec::new());
    let mut documents = 0;
    for _ in 0..rounds {
        let (os0, me0) = (opensearch_cpu()?, cpu_seconds("self").unwrap_or(0.0));
        let started = Instant::now();
        let rollup = aggregator.roll(&window).await?;
        let docs = writer::documents(&fx.indices(), &window, &rollup, &chrono::Utc::now());
        writer.write(&window, &docs).await?;
        roll_wall.push(started.elapsed().as_secs_f64());
        roll_os.push(opensearch_cpu()? - os0);
        roll_self.push(cpu_seconds("self").unwrap_or(0.0) - me0);
        documents = docs.len();
        assert_eq!(
            rollup.counted(),
            server_spans as u64,
            "every SERVER span counted"
        );
    }

    let seed_query = json!({
        "size": 0,
        "query": {"bool": {
            "must": [{"term": {"kind": "SERVER"}}],
            "filter": [{"range": {"@timestamp": {
                "gte": window.start_ms, "lt": window.end_ms(), "format": "epoch_millis"
            }}}]
        }},
        "aggs": {"services": {
            "terms": {"field": "service_name", "size": 200, "missing": "unknown-service"},
            "aggs": {"environments": {
                "terms": {"field": "environment", "size": 10, "missing": "unknown"},
                "aggs": {
                    "latency": {"percentiles": {"field": "duration_ms", "percents": [50, 90, 95]}},
                    "errors": {"filter": {"term": {"status": "ERROR"}}}
                }
            }}
        }}
    });
    let (mut seed_wall, mut seed_os) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let os0 = opensearch_cpu()?;
        let started = Instant::now();
        fx.es
            .request_ok(
                Method::Post,
                &format!("/{}/_search?request_cache=false", fx.spans()),
                Some(&seed_query),
            )
            .await?;
        seed_wall.push(started.elapsed().as_secs_f64());
        seed_os.push(opensearch_cpu()? - os0);
    }

    let (wall, os, me) = (median(roll_wall), median(roll_os), median(roll_self));
    let (s_wall, s_os) = (median(seed_wall), median(seed_os));
    let scale = 60_000.0 / (spans as f64 / 60.0);
    println!(
        "rollup of one minute: {spans} spans ({server_spans} SERVER), {documents} documents, {rounds} rounds (medians)"
    );
    println!(
        "  load:   {load_seconds:.1} s ({:.0} spans/s), OpenSearch CPU {os_load_cpu:.1} s",
        spans as f64 / load_seconds
    );
    println!("  rollup: {wall:.3} s wall, OpenSearch CPU {os:.3} s, rollup process CPU {me:.3} s");
    println!(
        "  seed query (service x environment, TDigest, no endpoints): {s_wall:.3} s wall, OpenSearch CPU {s_os:.3} s"
    );
    println!(
        "  ratios: rollup / seed query wall {:.2}, OpenSearch CPU {:.2}; rollup / indexing the minute, OpenSearch CPU {:.3}",
        wall / s_wall,
        os / s_os.max(0.001),
        os / os_load_cpu
    );
    println!(
        "  share of OpenSearch CPU: {:.2} % of one core per minute at {:.0} spans/s; \
         linear extrapolation to 60 000 spans/s (x{scale:.1}): {:.1} s wall, {:.1} % of one core",
        100.0 * os / 60.0,
        spans as f64 / 60.0,
        wall * scale,
        100.0 * os * scale / 60.0
    );
    Ok(())
}
