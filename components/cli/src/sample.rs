//! `panopticon sample`: realistic traffic to Kafka for demos and benchmarks. Spans go to
//! `KAFKA_APM_SPAN_TOPIC` and logs to `KAFKA_APM_LOG_TOPIC` (the topics ingest consumes, same
//! Kafka settings: brokers, TLS, SASL), shaped by [`panopticon_model::workload`] (services,
//! 3–10 span chains, failed traces with their ERROR logs), with timestamps "now".
//!
//! The pacing decision ([`due`]) and the flag parsing are pure; the loop around them sends,
//! reports progress every few seconds, and on the end of `--count`/`--duration` or on
//! SIGTERM/Ctrl-C flushes the producer and fails unless every sent event was acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::TimeDelta;
use panopticon_kafka::{KafkaSecrets, client_config};
use panopticon_model::config::{ConfigError, EnvSource, KafkaConfig, vars};
use panopticon_model::workload::{Event, Generator, MAX_SERVICES, Shape};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Message as _};
use tokio_util::sync::CancellationToken;

/// How often the loop decides how many events are due.
const TICK: Duration = Duration::from_millis(10);

/// Flags of `panopticon sample`.
#[derive(Debug, Clone, clap::Args)]
pub struct SampleArgs {
    /// Events (spans + logs) per second.
    #[arg(long, default_value = "200", value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// Stop after exactly this many events (the last trace may be cut short).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "duration", allow_negative_numbers = true)]
    pub count: Option<u64>,
    /// Stop after this long (`90`, `90s`, `5m`, `2h`). Without `--count` or `--duration`: run
    /// until SIGTERM/Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many services the traces spread over.
    #[arg(long, default_value = "7", value_parser = clap::value_parser!(u64).range(1..=MAX_SERVICES as u64))]
    pub services: u64,
    /// Share of traces that fail (0..=1): ERROR root and last span, an ERROR log, 500–1000 ms.
    #[arg(long, default_value = "0.05", value_parser = parse_ratio, allow_negative_numbers = true)]
    pub error_ratio: f64,
    /// Seed of the generator, for reproducible traffic; random when absent. Trace ids derive
    /// from it, so two runs with the same seed produce the same ids (and ingest deduplicates).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How often to log a progress line.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub report_every: Duration,
    /// How long to wait, at the end, for Kafka to acknowledge what was sent.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub flush_timeout: Duration,
}

/// `--rate`: a finite number of events per second above zero.
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("must be above 0 events per second, got {s}"));
    }
    Ok(rate)
}

/// `--error-ratio`: a share between 0 and 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    let ratio: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!("must be between 0 and 1, got {s}"));
    }
    Ok(ratio)
}

/// A duration: whole seconds, or a number with `ms`, `s`, `m` or `h`; above zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90, 90s, 5m, 2h)"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err("must be above zero".to_owned());
    }
    Ok(d)
}

/// How many events to send now: the rate's target for `elapsed` (the first event goes out at
/// once) less what was `sent`, at most one second's worth (a producer that fell behind catches
/// up at twice the rate, not in one burst), and never past `limit`.
pub fn due(rate: f64, elapsed: Duration, sent: u64, limit: Option<u64>) -> u64 {
    let target = (rate * elapsed.as_secs_f64()).floor() as u64 + 1;
    let burst = (rate.ceil() as u64).max(1);
    let n = target.saturating_sub(sent).min(burst);
    match limit {
        Some(limit) => n.min(limit.saturating_sub(sent)),
        None => n,
    }
}

/// Where the traffic goes: the topics and Kafka settings ingest reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Brokers, TLS and SASL user (`KAFKA_BROKERS`, `KAFKA_SSL`, …); the password comes from
    /// `KAFKA_SASL_PASSWORD` through [`KafkaSecrets`].
    pub kafka: KafkaConfig,
    /// `KAFKA_APM_LOG_TOPIC`, default `apm.logs`.
    pub log_topic: String,
    /// `KAFKA_APM_SPAN_TOPIC`, default `apm.spans`.
    pub span_topic: String,
    /// Create missing topics first (`KAFKA_CREATE_TOPICS`, as ingest), with
    /// `KAFKA_APM_{LOG,SPAN}_TOPIC_PARTITIONS` partitions and `KAFKA_TOPIC_REPLICATION_FACTOR`.
    pub create_topics: bool,
    pub log_partitions: i32,
    pub span_partitions: i32,
    pub replication_factor: Option<i32>,
}

impl Target {
    /// Reads the same variables as ingest.
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let target = Self {
            kafka: KafkaConfig::from_env(env)?,
            log_topic: env.text(&vars::KAFKA_APM_LOG_TOPIC),
            span_topic: env.text(&vars::KAFKA_APM_SPAN_TOPIC),
            create_topics: env.bool(&vars::KAFKA_CREATE_TOPICS)?,
            log_partitions: env.at_least(&vars::KAFKA_APM_LOG_TOPIC_PARTITIONS, 1)?,
            span_partitions: env.at_least(&vars::KAFKA_APM_SPAN_TOPIC_PARTITIONS, 1)?,
            replication_factor: env.at_least_opt(&vars::KAFKA_TOPIC_REPLICATION_FACTOR, 1)?,
        };
        if target.log_topic == target.span_topic {
            return Err(ConfigError::new(
                format!(
                    "{}/{}",
                    vars::KAFKA_APM_LOG_TOPIC.name,
                    vars::KAFKA_APM_SPAN_TOPIC.name
                ),
                format!(
                    "logs and spans must use different topics, both are {:?}",
                    target.log_topic
                ),
            ));
        }
        Ok(target)
    }
}

/// Counts what Kafka acknowledged or refused.
#[derive(Default)]
struct Acks {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                // Only the first few: a broker outage fails every queued message at once.
                if self.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    tracing::warn!(%error, topic = message.topic(), "Kafka refused an event");
                }
            }
        }
    }
}

/// Produces until `--count`/`--duration` is reached or `shutdown` is cancelled, then flushes.
/// Fails when Kafka did not acknowledge every sent event.
pub async fn run(
    args: SampleArgs,
    target: Target,
    secrets: &KafkaSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let SampleArgs {
        rate,
        count,
        duration,
        services,
        error_ratio,
        seed,
        report_every,
        flush_timeout,
    } = args;
    let seed = seed.unwrap_or_else(random_seed);
    let base =
        client_config(&target.kafka, secrets, "panopticon-sample").map_err(anyhow::Error::msg)?;
    if target.create_topics {
        let created = panopticon_kafka::ensure_topics(
            &base,
            &[
                (target.log_topic.as_str(), target.log_partitions),
                (target.span_topic.as_str(), target.span_partitions),
            ],
            target.replication_factor,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        if !created.is_empty() {
            tracing::info!(?created, "created missing topics");
        }
    }
    let producer: Arc<ThreadedProducer<Acks>> = Arc::new(
        base.clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create_with_context(Acks::default())
            .context("cannot create the Kafka producer")?,
    );
    let mut generator = Generator::new(
        seed,
        Shape {
            services: services as usize,
            error_ratio,
            spread: TimeDelta::zero(),
        },
    );
    tracing::info!(
        rate,
        ?count,
        ?duration,
        services,
        error_ratio,
        seed,
        brokers = %target.kafka.brokers,
        span_topic = %target.span_topic,
        log_topic = %target.log_topic,
        "producing sample traffic"
    );

    let started = tokio::time::Instant::now();
    let mut pending: VecDeque<Event> = VecDeque::new();
    let mut sent = 0u64;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reports = tokio::time::interval_at(started + report_every, report_every);
    let mut last_report = (started, 0u64);
    let stop = loop {
        tokio::select! {
            () = shutdown.cancelled() => break "signal",
            _ = reports.tick() => {
                let now = tokio::time::Instant::now();
                let delivered = producer.context().delivered.load(Ordering::Relaxed);
                let secs = now.duration_since(last_report.0).as_secs_f64().max(1e-3);
                tracing::info!(
                    sent,
                    delivered,
                    failed = producer.context().failed.load(Ordering::Relaxed),
                    rate = format!("{:.1}/s", (delivered - last_report.1) as f64 / secs),
                    traces = generator.traces(),
                    "sample progress"
                );
                last_report = (now, delivered);
            }
            _ = ticks.tick() => {
                let elapsed = started.elapsed();
                if duration.is_some_and(|d| elapsed >= d) {
                    break "duration";
                }
                if count.is_some_and(|c| sent >= c) {
                    break "count";
                }
                let n = due(rate, elapsed, sent, count);
                for _ in 0..n {
                    if pending.is_empty() {
                        pending.extend(generator.next_trace(chrono::Utc::now()));
                    }
                    let Some(event) = pending.pop_front() else { break };
                    let topic = if event.is_log { &target.log_topic } else { &target.span_topic };
                    let mut record = BaseRecord::to(topic).key(&event.trace_id).payload(&event.value);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ), back)) => {
                                // The local queue is full: let it drain.
                                record = back;
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err((error, _)) => bail!("cannot send to {topic}: {error}"),
                        }
                    }
                    sent += 1;
                }
            }
        }
    };

    tracing::info!(
        stop,
        sent,
        "stopping; waiting for Kafka to acknowledge everything sent"
    );
    let flusher = producer.clone();
    let flushed = tokio::task::spawn_blocking(move || flusher.flush(flush_timeout)).await?;
    let delivered = producer.context().delivered.load(Ordering::Relaxed);
    let failed = producer.context().failed.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    if let Err(error) = flushed {
        bail!(
            "{} of {sent} events not acknowledged within {flush_timeout:?} ({failed} refused): {error}",
            sent - delivered
        );
    }
    if failed > 0 || delivered != sent {
        bail!("Kafka acknowledged {delivered} of {sent} events; {failed} were refused");
    }
    tracing::info!(
        sent,
        delivered,
        traces = generator.traces(),
        rate = format!("{:.1}/s", delivered as f64 / secs),
        "sample done"
    );
    Ok(())
}

/// A seed that differs between runs, so that trace ids do.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sample: SampleArgs,
    }

    fn parse(args: &[&str]) -> Result<SampleArgs, String> {
        Cli::try_parse_from(std::iter::once("sample").chain(args.iter().copied()))
            .map(|c| c.sample)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn pacing_sends_the_first_event_at_once_then_follows_the_rate() {
        assert_eq!(due(200.0, Duration::ZERO, 0, None), 1);
        assert_eq!(due(200.0, Duration::from_millis(10), 1, None), 2);
        assert_eq!(due(200.0, Duration::from_secs(1), 201, None), 0);
        // Fractional rates: one event every two seconds.
        assert_eq!(due(0.5, Duration::from_millis(1999), 1, None), 0);
        assert_eq!(due(0.5, Duration::from_secs(2), 1, None), 1);
    }

    #[test]
    fn pacing_over_a_simulated_run_matches_the_rate() {
        let mut sent = 0;
        let mut elapsed = Duration::ZERO;
        while elapsed < Duration::from_secs(10) {
            sent += due(1234.0, elapsed, sent, None);
            elapsed += TICK;
        }
        // The last tick was at 9.99 s: floor(1234 × 9.99) + the first event sent at once.
        assert_eq!(sent, 12_328);
    }

    #[test]
    fn pacing_catches_up_at_most_a_second_per_tick_and_stops_at_the_limit() {
        // Stalled for 10 s: catch up one second's worth at a time.
        assert_eq!(due(100.0, Duration::from_secs(10), 0, None), 100);
        assert_eq!(due(0.1, Duration::from_secs(100), 0, None), 1);
        assert_eq!(due(100.0, Duration::from_secs(10), 495, Some(500)), 5);
        assert_eq!(due(100.0, Duration::from_secs(10), 500, Some(500)), 0);
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.rate, 200.0);
        assert_eq!(a.count, None);
        assert_eq!(a.duration, None);
        assert_eq!(a.services, 7);
        assert_eq!(a.error_ratio, 0.05);
        assert_eq!(a.seed, None);
        assert_eq!(a.report_every, Duration::from_secs(5));
    }

    #[test]
    fn flags_are_read() {
        let a = parse(&[
            "--rate",
            "1500.5",
            "--count",
            "500",
            "--services",
            "12",
            "--error-ratio",
            "0.25",
            "--seed",
            "42",
            "--report-every",
            "500ms",
        ])
        .unwrap();
        assert_eq!(a.rate, 1500.5);
        assert_eq!(a.count, Some(500));
        assert_eq!(a.services, 12);
        assert_eq!(a.error_ratio, 0.25);
        assert_eq!(a.seed, Some(42));
        assert_eq!(a.report_every, Duration::from_millis(500));
        let d = parse(&["--duration", "5m"]).unwrap();
        assert_eq!(d.duration, Some(Duration::from_secs(300)));
        assert_eq!(
            parse(&["--duration", "90"]).unwrap().duration,
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        for (args, flag) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "-3"][..], "--rate"),
            (&["--rate", "fast"][..], "--rate"),
            (&["--rate", "inf"][..], "--rate"),
            (&["--count", "0"][..], "--count"),
            (&["--count", "-1"][..], "--count"),
            (&["--services", "0"][..], "--services"),
            (&["--services", "100000"][..], "--services"),
            (&["--error-ratio", "1.5"][..], "--error-ratio"),
            (&["--error-ratio", "-0.1"][..], "--error-ratio"),
            (&["--duration", "0s"][..], "--duration"),
            (&["--duration", "5 days"][..], "--duration"),
            (&["--seed", "x"][..], "--seed"),
            (&["--count", "5", "--duration", "5s"][..], "--duration"),
            (&["--bogus"][..], "--bogus"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?} should fail"));
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn target_reads_ingests_variables() {
        let t = Target::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(
            (
                t.log_topic.as_str(),
                t.span_topic.as_str(),
                t.kafka.brokers.as_str()
            ),
            ("apm.logs", "apm.spans", "localhost:9092")
        );
        let t = Target::from_env(&EnvSource::from_pairs(&[
            ("KAFKA_APM_LOG_TOPIC", "l"),
            ("KAFKA_APM_SPAN_TOPIC", "s"),
            ("KAFKA_BROKERS", "a:1, b:2"),
            ("KAFKA_CREATE_TOPICS", "false"),
        ]))
        .unwrap();
        assert_eq!((t.log_topic.as_str(), t.span_topic.as_str()), ("l", "s"));
        assert_eq!(t.kafka.brokers, "a:1,b:2");
        assert!(!t.create_topics);
        let e = Target::from_env(&EnvSource::from_pairs(&[
            ("KAFKA_APM_LOG_TOPIC", "x"),
            ("KAFKA_APM_SPAN_TOPIC", "x"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("KAFKA_APM_SPAN_TOPIC"), "{e}");
    }
}
