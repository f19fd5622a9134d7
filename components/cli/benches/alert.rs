//! Alert under load: many Socket.IO clients and a steady stream of errors through real Kafka.
//!
//! 1. Starts `panopticon alert` (release build) on a fresh 6-partition error topic.
//! 2. Connects C Socket.IO clients (default 1 000, `PANOPTICON_BENCH_CLIENTS`) over the
//!    websocket transport, as the dashboard does.
//! 3. Produces R errors/s (default 2 000, `PANOPTICON_BENCH_RATE`) for S seconds (default 20,
//!    `PANOPTICON_BENCH_SECONDS`), each carrying its sequence number.
//! 4. Prints, side by side, what was offered (C × R events/s) and what was delivered, the
//!    share delivered, how many were reported missed, the latency from the producer's send to
//!    the client's receive (p50/p99, sampled on every 10th event), alert's CPU (share of one
//!    core while producing) and peak RSS.
//!
//! Runs twice: every client receiving everything (the dashboard's case, the worst one), then
//! each client filtering one service out of 20 (`?service=`).
//!
//! The clients run in this process on the same two cores as alert, Kafka and the producer, so
//! their cost is part of what limits the delivered rate; their CPU is printed too.
//!
//! Needs the stack: `e2e/stack up && eval "$(e2e/stack env)" && cargo bench -p panopticon --bench alert`.

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use panopticon_e2e::ingest::{free_port, http_get, metric, wait_until};
use panopticon_e2e::kafka::{create_topics, producer};
use panopticon_e2e::live::SocketIoClient;
use panopticon_e2e::process::{Component, cpu_and_peak_rss};
use rdkafka::producer::FutureRecord;

const SERVICES: usize = 20;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

struct Scenario {
    name: &'static str,
    /// Each client filters one service.
    filtered: bool,
}

async fn run() -> Result<()> {
    let clients = setting("PANOPTICON_BENCH_CLIENTS", 1000);
    let rate = setting("PANOPTICON_BENCH_RATE", 2000);
    let seconds = setting("PANOPTICON_BENCH_SECONDS", 20);
    println!(
        "alert benchmark: {clients} Socket.IO clients, {rate} errors/s for {seconds} s, on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<28} {:>12} {:>12} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10} {:>11}",
        "scenario",
        "offered/s",
        "delivered/s",
        "share",
        "missed",
        "p50 ms",
        "p99 ms",
        "alert CPU",
        "alert RSS",
        "clients CPU"
    );
    for scenario in [
        Scenario {
            name: "every client, every error",
            filtered: false,
        },
        Scenario {
            name: "one service per client",
            filtered: true,
        },
    ] {
        one(&scenario, clients, rate, seconds).await?;
    }
    Ok(())
}

/// Per-client results.
#[derive(Default)]
struct Tally {
    received: u64,
    missed: u64,
    /// Microseconds from send to receive, for every 10th sequence number.
    latencies_us: Vec<u32>,
}

async fn one(scenario: &Scenario, clients: usize, rate: usize, seconds: usize) -> Result<()> {
    let topic = panopticon_e2e::unique_name("alert-bench");
    create_topics(&[&topic], 6).await?;
    let port = free_port()?;
    let env: Vec<(String, String)> = [
        ("KAFKA_BROKERS", panopticon_e2e::kafka_brokers()),
        ("KAFKA_APM_LOG_ERROR_TOPIC", topic.clone()),
        ("ERROR_STREAM_PORT", port.to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let binary = Path::new(env!("CARGO_BIN_EXE_panopticon"));
    let mut alert = Component::start(binary, &["alert"], &env, "alert-bench").await?;
    let ready = format!("http://127.0.0.1:{port}/ready");
    wait_until("alert ready", Duration::from_secs(30), || {
        let ready = ready.clone();
        async move { Ok(matches!(http_get(&ready).await, Ok((200, _)))) }
    })
    .await?;

    let total = rate * seconds;
    // Send time of each sequence number, µs since `epoch`.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let base = format!("ws://127.0.0.1:{port}");
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let service = format!("svc-{}", c % SERVICES);
        let query: Vec<(&str, &str)> = if scenario.filtered {
            vec![("service", service.as_str())]
        } else {
            vec![]
        };
        let client = SocketIoClient::connect(&base, "/ws/error-logs", &query, None)
            .await
            .with_context(|| format!("client {c}"))?;
        tasks.push(tokio::spawn(receive(
            client,
            sent_at.clone(),
            epoch,
            done.clone(),
        )));
    }
    let (cpu_before, _) = cpu_and_peak_rss(alert.pid())?;
    let (own_before, _) = cpu_and_peak_rss(std::process::id())?;

    // The producer: `rate` per second in 10 ms ticks.
    let producer = producer()?;
    let started = Instant::now();
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut seq = 0usize;
    while seq < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - seq) {
            let payload = format!(
                r#"{{"service_name":"svc-{}","environment":"prod","level":"ERROR","message":"bench {seq} NullPointerException at com.example.checkout.PaymentService.charge(PaymentService.java:118)","trace_id":"{seq:032x}","span_id":"{seq:016x}"}}"#,
                seq % SERVICES
            );
            sent_at[seq].store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
            let key = format!("svc-{}", seq % SERVICES);
            producer
                .send_result(FutureRecord::to(&topic).key(&key).payload(&payload))
                .map_err(|(e, _)| e)
                .context("produce")?;
            seq += 1;
        }
    }
    let producing = started.elapsed();
    let (cpu_after, _) = cpu_and_peak_rss(alert.pid())?;
    let (own_after, _) = cpu_and_peak_rss(std::process::id())?;
    let elapsed = producing.as_secs_f64();
    // Let the tail arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, alert_hwm) = cpu_and_peak_rss(alert.pid())?;
    done.store(true, Ordering::Relaxed);

    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.received += tally.received;
        all.missed += tally.missed;
        all.latencies_us.extend(tally.latencies_us);
    }
    let m = alert.metrics().await?;
    alert.terminate(Duration::from_secs(20)).await?;

    let expected_per_client = if scenario.filtered {
        total as f64 / SERVICES as f64
    } else {
        total as f64
    };
    let offered = expected_per_client * clients as f64;
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((all.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(all.latencies_us[i]) / 1000.0
    };
    println!(
        "{:<28} {:>12.0} {:>12.0} {:>7.1}% {:>10} {:>9.1} {:>9.1} {:>9.0}% {:>6.0} MiB {:>10.0}%",
        scenario.name,
        offered / producing.as_secs_f64(),
        all.received as f64 / producing.as_secs_f64(),
        100.0 * all.received as f64 / offered,
        all.missed,
        pct(0.50),
        pct(0.99),
        100.0 * (cpu_after - cpu_before) / elapsed,
        alert_hwm as f64 / (1 << 20) as f64,
        100.0 * (own_after - own_before) / elapsed,
    );
    println!(
        "{:<28} alert counted: received {}, delivered {}, dropped {}; producing took {:.1} s",
        "",
        metric(&m, "panopticon_alert_events_received_total"),
        metric(
            &m,
            "panopticon_alert_events_delivered_total{transport=\"socketio\"}"
        ),
        metric(
            &m,
            "panopticon_alert_events_dropped_total{transport=\"socketio\"}"
        ),
        producing.as_secs_f64()
    );
    Ok(())
}

/// Reads events until `done`, counting them and sampling latencies.
async fn receive(
    mut client: SocketIoClient,
    sent_at: Arc<Vec<AtomicU64>>,
    epoch: Instant,
    done: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    while !done.load(Ordering::Relaxed) {
        let packet =
            match tokio::time::timeout(Duration::from_millis(500), client.next_packet()).await {
                Ok(Ok(Some(packet))) => packet,
                Ok(_) => break,
                Err(_) => continue,
            };
        if let Some(rest) = packet.strip_prefix("2[\"error-log-missed\"") {
            let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
            tally.missed += digits.parse::<u64>().unwrap_or(0);
            continue;
        }
        let Some(at) = packet.find("\"message\":\"bench ") else {
            continue;
        };
        tally.received += 1;
        let digits = &packet[at + 17..];
        let end = digits.find(' ').unwrap_or(digits.len());
        if let Ok(seq) = digits[..end].parse::<usize>()
            && seq % 10 == 0
            && let Some(sent) = sent_at.get(seq)
        {
            let now = epoch.elapsed().as_micros() as u64;
            let latency = now.saturating_sub(sent.load(Ordering::Relaxed));
            tally
                .latencies_us
                .push(latency.min(u64::from(u32::MAX)) as u32);
        }
    }
    tally
}
