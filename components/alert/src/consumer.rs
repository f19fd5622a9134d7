//! The error-topic reader. Every replica reads every partition: the consumer is *assigned*
//! all partitions, with no consumer group and no committed offsets, so N replicas each push
//! every error to their own clients (a shared consumer group would give each replica 1/N of
//! them, and a client would miss the rest).
//!
//! Offsets: live delivery starts at each partition's end as found at start ("latest"). The
//! `ERROR_STREAM_REPLAY_SIZE` records before it are read too, but only kept for replay, never
//! pushed live, so a client that asks for a replay right after a restart still gets recent
//! errors. Partitions added to the topic later are found within
//! `ERROR_STREAM_TOPIC_REFRESH_SECONDS` and read from
//! their beginning (all their records are new). Nothing is committed: a restarted replica
//! starts at the end again, by design, since clients of a live feed want what happens now.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use panopticon_common::backoff::Backoff;
use panopticon_common::throttle::Throttle;
use panopticon_kafka::{KafkaSecrets, client_config};
use panopticon_model::Limits;
use panopticon_model::config::AlertConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::event;
use crate::hub::Hub;
use crate::metrics::Metrics;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the error topic into the hub until `shutdown`. `ready` turns true once every
/// partition is assigned.
pub async fn run(
    config: &AlertConfig,
    secrets: &KafkaSecrets,
    hub: Arc<Hub>,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: Arc<StreamConsumer> = Arc::new(
        client_config(&config.kafka, secrets, &config.client_id)
            .map_err(anyhow::Error::msg)?
            // librdkafka's assignment calls need a group handle; this one is never joined and
            // nothing is committed under it, so it exists only in this process.
            .set(
                "group.id",
                format!("{}-unjoined-{:016x}", config.client_id, fastrand::u64(..)),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Latency over batching: the broker answers as soon as one record exists.
            .set("fetch.min.bytes", "1")
            .set("fetch.wait.max.ms", "100")
            .set("fetch.max.bytes", config.kafka.fetch_max_bytes.to_string())
            .set(
                "max.partition.fetch.bytes",
                config.kafka.fetch_max_bytes_per_partition.to_string(),
            )
            .set("queued.max.messages.kbytes", "16384")
            .create()
            .context("cannot create the Kafka consumer")?,
    );
    let topic = config.error_topic.as_str();
    let mut reader = Reader {
        topic,
        hub,
        metrics,
        limits: Limits::default(),
        live_from: HashMap::new(),
        invalid_log: Throttle::new(Duration::from_secs(10)),
    };

    // Assign every partition, waiting (not ready) while Kafka or the topic is missing.
    let backoff = Backoff::default();
    let mut attempt = 0;
    loop {
        match reader.assign_new(&consumer, config.replay_size).await {
            Ok(0) => {
                tracing::warn!(topic, "the error topic does not exist yet; waiting for it")
            }
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(topic, error = %format!("{error:#}"), "cannot read the error topic's partitions; retrying")
            }
        }
        attempt += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff.delay(attempt.min(6))) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    ready.store(true, Ordering::Relaxed);

    let mut refresh = tokio::time::interval(Duration::from_secs(config.topic_refresh_seconds));
    refresh.tick().await;
    let errors = Throttle::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = refresh.tick() => {
                if let Err(error) = reader.assign_new(&consumer, 0).await {
                    tracing::warn!(topic, error = %format!("{error:#}"), "cannot refresh the error topic's partitions");
                }
            }
            received = consumer.recv() => match received {
                Ok(message) => reader.record(
                    message.partition(),
                    message.offset(),
                    message.timestamp().to_millis(),
                    message.payload().unwrap_or_default(),
                ),
                Err(error) => {
                    if errors.allow() {
                        tracing::warn!(topic, %error, "Kafka consumer error (retried by the client)");
                    }
                }
            },
        }
    }
    tracing::info!(topic, "error-topic reader stopped");
    Ok(())
}

struct Reader<'a> {
    topic: &'a str,
    hub: Arc<Hub>,
    metrics: Metrics,
    limits: Limits,
    /// Per partition, the first offset pushed live; records before it are replay history.
    live_from: HashMap<i32, i64>,
    invalid_log: Throttle,
}

impl Reader<'_> {
    /// Assigns the partitions not assigned yet. For the first assignment each starts
    /// `history` records before its end; later ones (partitions added to the topic) from
    /// their beginning. Returns how many partitions are assigned in all.
    async fn assign_new(
        &mut self,
        consumer: &Arc<StreamConsumer>,
        history: usize,
    ) -> anyhow::Result<usize> {
        let first = self.live_from.is_empty();
        let topic = self.topic.to_owned();
        let known: Vec<i32> = self.live_from.keys().copied().collect();
        let lookup = consumer.clone();
        // librdkafka's metadata calls block: keep them off the runtime's workers.
        let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i32, i64, i64)>> {
            let metadata = lookup
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .context("metadata request failed")?;
            let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Ok(Vec::new());
            };
            match t.error() {
                None => {}
                // Not created yet: ingest or the operator will; keep waiting.
                Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                    return Ok(Vec::new());
                }
                Some(error) => anyhow::bail!("{topic}: {error:?}"),
            }
            let mut found = Vec::new();
            for p in t.partitions() {
                if known.contains(&p.id()) {
                    continue;
                }
                let (low, high) = if first {
                    lookup
                        .fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)
                        .with_context(|| format!("watermarks of partition {}", p.id()))?
                } else {
                    (0, 0)
                };
                found.push((p.id(), low, high));
            }
            Ok(found)
        })
        .await
        .context("metadata task failed")??;
        if found.is_empty() {
            return Ok(self.live_from.len());
        }
        let mut assignment = TopicPartitionList::new();
        for &(partition, low, high) in &found {
            let offset = if first {
                Offset::Offset(high.saturating_sub(history as i64).max(low))
            } else {
                Offset::Beginning
            };
            assignment
                .add_partition_offset(self.topic, partition, offset)
                .context("cannot build the assignment")?;
        }
        consumer
            .incremental_assign(&assignment)
            .context("cannot assign the error topic's partitions")?;
        for &(partition, _, high) in &found {
            self.live_from
                .insert(partition, if first { high } else { 0 });
        }
        self.metrics.partitions.set(self.live_from.len() as i64);
        tracing::info!(
            topic = self.topic,
            added = found.len(),
            partitions = self.live_from.len(),
            "reading the error topic"
        );
        Ok(self.live_from.len())
    }

    /// One record: its valid events go to the hub, live or as history.
    fn record(&mut self, partition: i32, offset: i64, produced_at_ms: Option<i64>, value: &[u8]) {
        let live = offset >= self.live_from.get(&partition).copied().unwrap_or(0);
        for decoded in event::decode(value, produced_at_ms, &self.limits) {
            match decoded {
                Ok(event) => {
                    let event = Arc::new(event);
                    if live {
                        if let Some(at) = produced_at_ms {
                            let delay = chrono::Utc::now().timestamp_millis() - at;
                            self.metrics
                                .event_delay_seconds
                                .observe(delay.max(0) as f64 / 1000.0);
                        }
                        self.metrics.events_received.inc();
                        self.hub.publish(event);
                    } else {
                        self.hub.remember(event);
                    }
                }
                Err(error) => {
                    self.metrics
                        .events_invalid
                        .get_or_create(&crate::metrics::InvalidLabel {
                            reason: error.reason.code(),
                        })
                        .inc();
                    if self.invalid_log.allow() {
                        tracing::warn!(
                            topic = self.topic,
                            partition,
                            offset,
                            %error,
                            "skipping an invalid error-topic event (counted in panopticon_alert_events_invalid_total)"
                        );
                    }
                }
            }
        }
    }
}
