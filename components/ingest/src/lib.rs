//! Panopticon ingest: logs and spans from Kafka into Elasticsearch/OpenSearch data streams.
//!
//! # Contract: at least once, duplicates absorbed
//! - A Kafka offset is committed only after every part of its record is settled: each document
//!   created or found to exist already (409), each invalid or refused event written to the
//!   dead-letter topic, each ERROR log acknowledged by the error topic ([`consumer`] and
//!   `panopticon_kafka::OffsetTracker` hold the state machine).
//! - Document ids are deterministic (`panopticon_model::ids`), and documents are written with
//!   `create`, so whatever is read twice (after a crash, a rebalance, a restart) is stored once.
//! - Nothing is dropped: invalid input goes to the dead-letter topic with the original bytes,
//!   its source and the reason naming the field; Elasticsearch failures are retried without
//!   limit while the broker still holds the data.
//! - Memory is bounded: past `INGEST_MAX_INFLIGHT_EVENTS` / `INGEST_MAX_INFLIGHT_MB` of unsettled
//!   work, consumption pauses (the consumer keeps polling, so it stays in its group).
//! - SIGTERM: stop reading, flush, wait for settlements, commit, exit, within
//!   `INGEST_SHUTDOWN_TIMEOUT_MS`; what is unsettled then is read again after the restart.
//!
//! Data flow: [`consumer`] decodes records ([`record`]) and batches documents; a dispatcher runs
//! at most `BULK_MAX_PARALLEL_FLUSHES` [`flush`]es at once; settlements flow back to the consumer
//! over a channel; [`produce`] writes the error and dead-letter topics.
//!
//! Start-up: ingest creates missing topics (unless `KAFKA_CREATE_TOPICS=false`) and its index
//! templates and data streams (unless `ELASTICSEARCH_MANAGE_TEMPLATES=false`). When the operator
//! provisions them instead, ingest only waits for the data streams, and `/ready` answers 503
//! naming them until they exist.

pub mod consumer;
pub mod flush;
pub mod metrics;
pub mod produce;
pub mod record;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use panopticon_common::admin::{self, ReadinessProbe};
use panopticon_common::backoff::{Backoff, retry_until_ready};
use panopticon_es::{EsClient, EsSecrets};
use panopticon_kafka::{KafkaSecrets, client_config};
use panopticon_model::config::IngestConfig;
use prometheus_client::registry::Registry;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::consumer::{Consumer, IngestContext};
use crate::flush::Flusher;
use crate::metrics::Metrics;
use crate::produce::Producer;

/// Runtime options that are not pipeline configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/health`, `/ready` and `/metrics` listen.
    pub admin_addr: SocketAddr,
}

/// Runs ingest until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: IngestConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);

    let es = EsClient::new(&config.elasticsearch, &EsSecrets::from_process_env())?;
    let kafka_secrets = KafkaSecrets::from_process_env();
    let producer: FutureProducer = client_config(
        &config.kafka,
        &kafka_secrets,
        &format!("{}-producer", config.client_id),
    )
    .map_err(anyhow::Error::msg)?
    .set("enable.idempotence", "true")
    .set("acks", "all")
    .set("linger.ms", "5")
    .set("compression.type", "lz4")
    .create()
    .context("cannot create the Kafka producer")?;

    // When the operator provisions the data streams, ingest is not ready until they exist (it
    // would have nowhere to write); otherwise it creates them itself further down.
    let streams_ready = Arc::new(AtomicBool::new(config.elasticsearch.manage_templates));
    let missing_streams = format!(
        "waiting for the data streams {} and {} (ELASTICSEARCH_MANAGE_TEMPLATES=false: the \
         operator creates them)",
        config.elasticsearch.streams.logs, config.elasticsearch.streams.spans
    );
    let probe_es = es.clone();
    let probe_producer = producer.clone();
    let probe_streams_ready = streams_ready.clone();
    let ready: ReadinessProbe = Arc::new(move || {
        let es = probe_es.clone();
        let producer = probe_producer.clone();
        let streams_ready = probe_streams_ready.load(Ordering::Relaxed);
        let missing_streams = missing_streams.clone();
        Box::pin(async move {
            es.ping().await.map_err(|e| e.to_string())?;
            if !streams_ready {
                return Err(missing_streams);
            }
            tokio::task::spawn_blocking(move || {
                use rdkafka::producer::Producer as _;
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(3))
                    .map(|_| ())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("Kafka unreachable: {e}"))
        })
    });
    let admin_stop = CancellationToken::new();
    admin::serve(
        options.admin_addr,
        Arc::new(registry),
        ready,
        admin_stop.clone(),
    )
    .await
    .with_context(|| format!("cannot bind the admin server on {}", options.admin_addr))?;

    // Topics: the inputs and outputs must exist before the consumer and producer use them
    // (the operator creates them with their partitions and retention; standalone, ingest does).
    let admin_config = client_config(
        &config.kafka,
        &kafka_secrets,
        &format!("{}-admin", config.client_id),
    )
    .map_err(anyhow::Error::msg)?;
    let new = &config.new_topics;
    let topics = [
        (config.log_topic.as_str(), new.log_partitions),
        (config.span_topic.as_str(), new.span_partitions),
        (config.error_topic.as_str(), new.error_partitions),
        (config.dlq_topic.as_str(), new.dlq_partitions),
    ];
    if config.create_topics {
        let mut attempt = 0;
        loop {
            match panopticon_kafka::ensure_topics(&admin_config, &topics, new.replication_factor)
                .await
            {
                Ok(created) => {
                    if !created.is_empty() {
                        tracing::info!(
                            ?created,
                            replication_factor = ?new.replication_factor,
                            "created missing topics"
                        );
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "cannot check the topics yet, retrying");
                    attempt += 1;
                    tokio::select! {
                        () = tokio::time::sleep(Backoff::default().delay(attempt.min(6))) => {},
                        () = shutdown.cancelled() => { admin_stop.cancel(); return Ok(()); }
                    }
                }
            }
        }
    } else {
        tracing::info!(
            topics = ?topics.map(|(name, _)| name),
            "KAFKA_CREATE_TOPICS is false: the topics are expected to exist"
        );
    }

    // Templates and data streams: retried until Elasticsearch answers (not ready meanwhile).
    // Provisioned by the operator, they are only waited for.
    let streams = &config.elasticsearch.streams;
    let prepared = if config.elasticsearch.manage_templates {
        retry_until_ready(
            "prepare the data streams",
            &shutdown,
            panopticon_es::EsError::is_retryable,
            || {
                panopticon_es::bootstrap::ensure_ingest_streams(
                    &es,
                    streams,
                    config.elasticsearch.index_replicas,
                )
            },
        )
        .await
        .context("cannot prepare the data streams")?
    } else {
        let required = [streams.logs.as_str(), streams.spans.as_str()];
        retry_until_ready(
            "find the data streams the operator provisions",
            &shutdown,
            |e: &panopticon_es::EsError| e.is_retryable() || e.is_not_found(),
            || panopticon_es::bootstrap::require_data_streams(&es, &required),
        )
        .await
        .context("cannot check the data streams")?
    };
    if prepared.is_none() {
        admin_stop.cancel();
        return Ok(());
    }
    streams_ready.store(true, Ordering::Relaxed);
    let backoff = Backoff::default();

    let consumer: StreamConsumer<IngestContext> =
        client_config(&config.kafka, &kafka_secrets, &config.client_id)
            .map_err(anyhow::Error::msg)?
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                config.commit_interval_ms.to_string(),
            )
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("fetch.max.bytes", config.kafka.fetch_max_bytes.to_string())
            .set(
                "max.partition.fetch.bytes",
                config.kafka.fetch_max_bytes_per_partition.to_string(),
            )
            .set("fetch.min.bytes", config.kafka.fetch_min_bytes.to_string())
            .set(
                "fetch.wait.max.ms",
                config.kafka.fetch_max_wait_ms.to_string(),
            )
            // librdkafka's prefetch queue is memory outside the in-flight cap: keep it a quarter of it.
            .set(
                "queued.max.messages.kbytes",
                (config.max_inflight_bytes / 4096)
                    .clamp(1024, 65536)
                    .to_string(),
            )
            .set("statistics.interval.ms", "5000")
            .create_with_context(IngestContext::new(metrics.clone()))
            .context("cannot create the Kafka consumer")?;

    let abandon = CancellationToken::new();
    let (settle_tx, settle_rx) = tokio::sync::mpsc::unbounded_channel();
    let (flush_tx, mut flush_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<flush::Entry>>();
    let producer = Producer::new(
        producer,
        config.error_topic.clone(),
        config.dlq_topic.clone(),
        metrics.clone(),
    );
    let flusher = Arc::new(Flusher {
        es,
        streams: config.elasticsearch.streams.clone(),
        recreate_streams: config.elasticsearch.manage_templates,
        index_replicas: config.elasticsearch.index_replicas,
        producer: producer.clone(),
        settle: settle_tx.clone(),
        metrics: metrics.clone(),
        backoff,
        abandon: abandon.clone(),
    });
    let slots = Arc::new(Semaphore::new(config.bulk.max_parallel_flushes));
    let dispatcher = tokio::spawn(async move {
        while let Some(entries) = flush_rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let flusher = flusher.clone();
            tokio::spawn(async move {
                flusher.flush(entries).await;
                drop(permit);
            });
        }
    });

    let result = Consumer {
        consumer,
        config,
        producer,
        metrics,
        flush: flush_tx,
        settle_tx,
        settle_rx,
        abandon,
    }
    .run(shutdown)
    .await;
    dispatcher.abort();
    admin_stop.cancel();
    result.context("Kafka consumer failed")?;
    tracing::info!("ingest stopped");
    Ok(())
}
