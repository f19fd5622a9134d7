//! Kafka helpers for tests and benchmarks: topics, producing, reading a topic whole.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use futures::StreamExt as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};

fn config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", crate::kafka_brokers());
    c
}

/// Creates topics with `partitions` partitions each (replication 1).
pub async fn create_topics(names: &[&str], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config().create()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in admin.create_topics(&topics, &opts).await? {
        r.map_err(|(t, e)| anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

/// Raises `topic` to `total` partitions.
pub async fn add_partitions(topic: &str, total: usize) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config().create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in admin
        .create_partitions(&[NewPartitions::new(topic, total)], &opts)
        .await?
    {
        r.map_err(|(t, e)| anyhow!("add partitions to {t}: {e}"))?;
    }
    Ok(())
}

/// How many partitions `topic` has (0 when it does not exist).
pub fn partition_count(topic: &str) -> Result<usize> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = config().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().len())
        .sum())
}

/// A producer that waits for every in-sync replica.
pub fn producer() -> Result<FutureProducer> {
    Ok(config()
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?)
}

/// Produces `values` to `topic` (keys round-robin over 16 so they spread over partitions)
/// and waits until all are acknowledged.
pub async fn produce(producer: &FutureProducer, topic: &str, values: &[Vec<u8>]) -> Result<()> {
    let mut deliveries = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{}", i % 16);
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(v)) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                // The local queue is full: let it drain.
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err((e, _)) => return Err(anyhow!("produce to {topic}: {e}")),
            }
        }
    }
    for delivery in deliveries {
        delivery
            .await
            .map_err(|_| anyhow!("producer dropped a delivery to {topic}"))?
            .map_err(|(e, _)| anyhow!("produce to {topic}: {e}"))?;
    }
    Ok(())
}

/// A record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topic` from the beginning with a fresh group until `expected` records arrived, then
/// keeps reading for `settle` more to catch any extra (duplicates).
pub async fn read_all(
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Result<Vec<Record>> {
    let consumer: StreamConsumer = config()
        .set("group.id", crate::unique_name("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let mut stream = consumer.stream();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let until = if out.len() >= expected {
            tokio::time::Instant::now() + settle
        } else {
            deadline
        };
        match tokio::time::timeout_at(until.min(deadline), stream.next()).await {
            Ok(Some(m)) => {
                let m = m?;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Ok(None) => break,
            Err(_) if out.len() >= expected => break,
            Err(_) => {
                return Err(anyhow!(
                    "read {} of {expected} records from {topic} before the timeout",
                    out.len()
                ))
                .context("reading back a topic");
            }
        }
    }
    Ok(out)
}

/// Offsets of one topic summed over its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicProgress {
    /// Records the topic holds (high minus low watermarks).
    pub records: i64,
    /// Records not yet committed by the group (high watermark minus committed offset; a
    /// partition the group never committed counts whole).
    pub lag: i64,
}

/// How far `group` has committed through `topic`.
pub fn progress(topic: &str, group: &str) -> Result<TopicProgress> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::{Offset, TopicPartitionList};
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = config().set("group.id", group).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    let mut progress = TopicProgress { records: 0, lag: 0 };
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        let done = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.clamp(low, high),
            _ => low,
        };
        progress.records += high - low;
        progress.lag += high - done;
    }
    Ok(progress)
}
