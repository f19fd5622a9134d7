//! The consumer loop: the only task that touches the Kafka consumer.
//!
//! Each turn, in this order of priority (`biased` select):
//! 1. settlements from flushes and producer sends: count them in the [`OffsetTracker`], lower
//!    the in-flight totals, resume consumption when they fall under 80 % of the caps;
//! 2. shutdown: stop reading and drain (see [`Consumer::drain`]);
//! 3. the tick: send a batch older than `BULK_FLUSH_INTERVAL_MS`, store advanced offsets
//!    (librdkafka commits stored offsets every `KAFKA_COMMIT_INTERVAL_MS` and on revocation),
//!    log throughput;
//! 4. the next record: decode it, add its documents to the batch, start its forwards and dead
//!    letters, record it in the tracker; pause consumption when a cap is exceeded.
//!
//! Paused partitions are still polled, so the consumer stays in its group however long
//! Elasticsearch is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use panopticon_kafka::{OffsetTracker, PartitionKey};
use panopticon_model::DecodeContext;
use panopticon_model::config::IngestConfig;
use panopticon_model::ids::LogOrigin;
use rdkafka::consumer::{Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::flush::{Entry, Settlement};
use crate::metrics::{Metrics, PartitionLabel, ReasonLabel, TopicLabel};
use crate::produce::{Producer, Source};
use crate::record::{Schema, process_record};
use prometheus_client::metrics::counter::Counter;

/// Rebalance notifications, handed from librdkafka's callback to the loop.
enum Assignment {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// librdkafka callbacks: rebalances and statistics (consumer lag).
pub struct IngestContext {
    events: Mutex<Vec<Assignment>>,
    metrics: Metrics,
}

impl IngestContext {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            metrics,
        }
    }

    fn take_events(&self) -> Vec<Assignment> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for IngestContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .get_or_create(&PartitionLabel {
                            topic: topic.clone(),
                            partition: *partition,
                        })
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(list) => Assignment::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Assignment::Revoked(partitions(list)),
            Rebalance::Error(error) => {
                tracing::warn!(%error, "rebalance failed");
                return;
            }
        };
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

/// The loop's state.
pub struct Consumer {
    pub consumer: StreamConsumer<IngestContext>,
    pub config: IngestConfig,
    pub producer: Producer,
    pub metrics: Metrics,
    pub flush: UnboundedSender<Vec<Entry>>,
    pub settle_tx: UnboundedSender<Vec<Settlement>>,
    pub settle_rx: UnboundedReceiver<Vec<Settlement>>,
    pub abandon: CancellationToken,
}

/// The two input topics, with their data streams and per-topic counters resolved once
/// (a labelled lookup per record would cost a lock, a hash and an allocation).
struct Topics {
    logs: TopicRoute,
    spans: TopicRoute,
}

struct TopicRoute {
    name: Arc<str>,
    schema: Schema,
    index: Arc<str>,
    consumed: Counter,
    events: Counter,
}

impl TopicRoute {
    fn new(name: &str, schema: Schema, index: &str, metrics: &Metrics) -> Self {
        let label = TopicLabel {
            topic: name.to_owned(),
        };
        Self {
            name: Arc::from(name),
            schema,
            index: Arc::from(index),
            consumed: metrics.consumed.get_or_create(&label).clone(),
            events: metrics.events.get_or_create(&label).clone(),
        }
    }
}

#[derive(Default)]
struct State {
    tracker: OffsetTracker,
    stored: HashMap<PartitionKey, i64>,
    dirty: bool,
    batch: Vec<Entry>,
    batch_bytes: usize,
    batch_started: Option<Instant>,
    inflight_events: usize,
    inflight_bytes: usize,
    paused: bool,
    consumed: u64,
    consumed_at_last_log: u64,
}

impl Consumer {
    /// Runs until `shutdown`, then drains within `INGEST_SHUTDOWN_TIMEOUT_MS`.
    pub async fn run(mut self, shutdown: CancellationToken) -> KafkaResult<()> {
        let topics = Topics {
            logs: TopicRoute::new(
                &self.config.log_topic,
                Schema::Log,
                &self.config.elasticsearch.streams.logs,
                &self.metrics,
            ),
            spans: TopicRoute::new(
                &self.config.span_topic,
                Schema::Span,
                &self.config.elasticsearch.streams.spans,
                &self.metrics,
            ),
        };
        self.consumer
            .subscribe(&[&self.config.log_topic, &self.config.span_topic])?;
        tracing::info!(topics = ?[&self.config.log_topic, &self.config.span_topic],
            group = %self.config.group_id, "consuming");
        let mut state = State::default();
        let flush_interval = Duration::from_millis(self.config.bulk.flush_interval_ms);
        let mut tick = tokio::time::interval(
            (flush_interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(100)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let throughput_every = Duration::from_millis(self.config.throughput_log_interval_ms);
        let mut last_log = Instant::now();
        let consumer = &self.consumer;
        let mut stream = consumer.stream();
        loop {
            tokio::select! {
                biased;
                Some(settled) = self.settle_rx.recv() => {
                    self.apply(&mut state, settled);
                }
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if state.batch_started.is_some_and(|t| t.elapsed() >= flush_interval) {
                        self.dispatch(&mut state);
                    }
                    self.rebalanced(&mut state);
                    self.store_offsets(&mut state);
                    self.maybe_resume(&mut state);
                    if last_log.elapsed() >= throughput_every {
                        let n = state.consumed - state.consumed_at_last_log;
                        // Dead letters of every stage: invalid events (decode) and documents
                        // the engine refused (index), summarised here instead of a line each.
                        let dead = self.metrics.dead_letter_tally.take();
                        let dead_lettered: u64 = dead.iter().map(|d| d.count).sum();
                        tracing::info!(records = n, per_second = (n as f64 / last_log.elapsed().as_secs_f64()) as u64,
                            dead_lettered,
                            inflight_events = state.inflight_events, inflight_bytes = state.inflight_bytes,
                            paused = state.paused, "stream throughput");
                        for d in dead {
                            tracing::warn!(stage = d.stage, reason = %d.reason, events = d.count,
                                sample_topic = %d.topic, sample_partition = d.partition, sample_offset = d.offset,
                                dlq_topic = %self.config.dlq_topic,
                                "events were dead-lettered since the last report; the dead-letter records carry the full reason");
                        }
                        state.consumed_at_last_log = state.consumed;
                        last_log = Instant::now();
                    }
                }
                next = stream.next() => match next {
                    Some(Ok(message)) => self.on_record(&mut state, &topics, &message),
                    Some(Err(error)) => tracing::warn!(%error, "kafka consumer error"),
                    None => break,
                },
            }
        }
        drop(stream);
        self.drain(&mut state).await
    }

    fn on_record(
        &self,
        state: &mut State,
        topics: &Topics,
        message: &rdkafka::message::BorrowedMessage<'_>,
    ) {
        let topic = message.topic();
        let route = if topic == &*topics.logs.name {
            &topics.logs
        } else if topic == &*topics.spans.name {
            &topics.spans
        } else {
            tracing::warn!(topic, "record from an unexpected topic ignored");
            return;
        };
        let key = PartitionKey {
            topic: route.name.clone(),
            partition: message.partition(),
        };
        let offset = message.offset();
        let payload = message.payload().unwrap_or_default();
        let origin = LogOrigin {
            topic,
            partition: key.partition,
            offset,
            index: 0,
            payload,
        };
        let ctx = DecodeContext {
            limits: &self.config.limits,
            now: chrono::Utc::now(),
        };
        let work = process_record(route.schema, &route.index, &origin, &ctx);

        route.consumed.inc();
        route.events.inc_by(work.events as u64);
        state.consumed += 1;
        let parts = work.parts();
        let mut bytes = 0;
        for doc in work.docs {
            let entry = Entry {
                key: key.clone(),
                offset,
                doc,
            };
            let cost = entry.cost();
            bytes += cost;
            state.batch_bytes += cost;
            state.batch.push(entry);
            state.batch_started.get_or_insert_with(Instant::now);
        }
        for forward in work.forwards {
            let len = forward.value.len();
            bytes += len;
            self.spawn_part(&key, offset, len, move |producer, abandon| async move {
                producer.forward(&forward, &abandon).await
            });
        }
        for dead in work.dead {
            let len = dead.payload.len();
            bytes += len;
            self.metrics
                .dead_lettered
                .get_or_create(&ReasonLabel {
                    stage: dead.stage.as_str(),
                    reason: dead.code.clone(),
                })
                .inc();
            self.metrics.dead_letter_tally.record(
                dead.stage.as_str(),
                &dead.code,
                topic,
                key.partition,
                offset,
            );
            tracing::debug!(topic, partition = key.partition, offset, reason = %dead.reason, "dead-lettering an event");
            let source_key = key.clone();
            self.spawn_part(&key, offset, len, move |producer, abandon| async move {
                let source = Source {
                    topic: &source_key.topic,
                    partition: source_key.partition,
                    offset,
                };
                producer.dead_letter(&source, &dead, &abandon).await
            });
        }
        state.tracker.consumed(&key, offset, parts as u32);
        state.dirty = true;
        state.inflight_events += parts;
        state.inflight_bytes += bytes;
        self.gauges(state);
        if state.batch.len() >= self.config.bulk.batch_size
            || state.batch_bytes >= self.config.bulk.batch_bytes
        {
            self.dispatch(state);
        }
        if !state.paused
            && (state.inflight_events > self.config.max_inflight_events
                || state.inflight_bytes > self.config.max_inflight_bytes)
        {
            self.set_paused(state, true);
        }
    }

    /// Runs one produced part of a record (a forward, a dead letter) in its own task, and
    /// reports it settled once the broker acknowledged it.
    fn spawn_part<F, Fut>(&self, key: &PartitionKey, offset: i64, bytes: usize, send: F)
    where
        F: FnOnce(Producer, CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), crate::produce::Abandoned>> + Send,
    {
        let (producer, settle, abandon, key) = (
            self.producer.clone(),
            self.settle_tx.clone(),
            self.abandon.clone(),
            key.clone(),
        );
        tokio::spawn(async move {
            if send(producer, abandon).await.is_ok() {
                let _sent = settle.send(vec![Settlement { key, offset, bytes }]);
            }
        });
    }

    fn dispatch(&self, state: &mut State) {
        state.batch_started = None;
        state.batch_bytes = 0;
        if state.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut state.batch);
        if self.flush.send(batch).is_err() {
            tracing::error!(
                "the flush dispatcher is gone; records stay unsettled and will be read again"
            );
        }
    }

    fn apply(&self, state: &mut State, settled: Vec<Settlement>) {
        for s in settled {
            state.tracker.settle(&s.key, s.offset);
            state.inflight_events = state.inflight_events.saturating_sub(1);
            state.inflight_bytes = state.inflight_bytes.saturating_sub(s.bytes);
        }
        state.dirty = true;
        self.gauges(state);
        self.maybe_resume(state);
    }

    fn gauges(&self, state: &State) {
        self.metrics
            .inflight_events
            .set(state.inflight_events as i64);
        self.metrics.inflight_bytes.set(state.inflight_bytes as i64);
    }

    fn maybe_resume(&self, state: &mut State) {
        if state.paused
            && state.inflight_events * 10 <= self.config.max_inflight_events * 8
            && state.inflight_bytes * 10 <= self.config.max_inflight_bytes * 8
        {
            self.set_paused(state, false);
        }
    }

    fn set_paused(&self, state: &mut State, paused: bool) {
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "cannot read the assignment");
                return;
            }
        };
        let result = if paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(error) = result {
            tracing::warn!(%error, paused, "cannot pause or resume consumption");
            return;
        }
        state.paused = paused;
        self.metrics.paused.set(i64::from(paused));
        tracing::info!(
            paused,
            inflight_events = state.inflight_events,
            inflight_bytes = state.inflight_bytes,
            "backpressure: consumption {}",
            if paused { "paused" } else { "resumed" }
        );
    }

    fn rebalanced(&self, state: &mut State) {
        for event in self.consumer.context().take_events() {
            match event {
                Assignment::Assigned(list) => {
                    tracing::info!(partitions = ?list, "partitions assigned");
                    if state.paused {
                        // New partitions start unpaused; keep the whole assignment paused.
                        state.paused = false;
                        self.set_paused(state, true);
                    }
                }
                Assignment::Revoked(list) => {
                    tracing::info!(partitions = ?list, "partitions revoked");
                    for (topic, partition) in list {
                        let key = PartitionKey {
                            topic: Arc::from(topic.as_str()),
                            partition,
                        };
                        state.tracker.forget(&key);
                        state.stored.remove(&key);
                    }
                }
            }
        }
    }

    /// Hands every advanced commit point to librdkafka, which commits it on its timer.
    fn store_offsets(&self, state: &mut State) {
        if !state.dirty {
            return;
        }
        state.dirty = false;
        let mut list = TopicPartitionList::new();
        let mut advanced = Vec::new();
        for (key, point) in state.tracker.commit_points() {
            if state.stored.get(key).is_none_or(|s| point > *s)
                && list
                    .add_partition_offset(&key.topic, key.partition, Offset::Offset(point))
                    .is_ok()
            {
                advanced.push((key.clone(), point));
            }
        }
        if advanced.is_empty() {
            return;
        }
        match self.consumer.store_offsets(&list) {
            Ok(()) => {
                self.metrics.commits.inc();
                state.stored.extend(advanced);
            }
            // A partition revoked a moment ago refuses stores; its next owner re-reads.
            Err(error) => tracing::debug!(%error, "storing offsets failed"),
        }
    }

    /// Stops reading, sends the open batch, waits for every part to settle (or the deadline),
    /// then commits what is settled, synchronously.
    async fn drain(mut self, state: &mut State) -> KafkaResult<()> {
        let deadline = Instant::now() + Duration::from_millis(self.config.shutdown_timeout_ms);
        tracing::info!(
            inflight_events = state.inflight_events,
            "draining before exit"
        );
        self.dispatch(state);
        while state.inflight_events > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.settle_rx.recv()).await {
                Ok(Some(settled)) => self.apply(state, settled),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        unsettled = state.inflight_events,
                        "shutdown deadline reached; unsettled records will be read again after restart"
                    );
                    self.abandon.cancel();
                    break;
                }
            }
        }
        state.dirty = true;
        self.store_offsets(state);
        match self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) => tracing::info!("offsets committed"),
            // Nothing stored since the last commit is not an error worth reporting.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(error) => tracing::warn!(%error, "final commit failed"),
        }
        self.consumer.unsubscribe();
        Ok(())
    }
}
