//! Ingest's Prometheus metrics, registered under the `panopticon_ingest` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `decode` (the event is invalid) or `index` (Elasticsearch refused it).
    pub stage: &'static str,
    /// A short reason code (`missing`, `wrong_type`, `mapper_parsing_exception`, …).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub topic: String,
    pub partition: i32,
}

/// Every counter and gauge of ingest. Cheap to clone (handles).
#[derive(Clone)]
pub struct Metrics {
    pub consumed: Family<TopicLabel, Counter>,
    pub events: Family<TopicLabel, Counter>,
    pub indexed: Counter,
    pub duplicates: Counter,
    pub dead_lettered: Family<ReasonLabel, Counter>,
    pub bulk_retries: Counter,
    pub bulk_requests: Counter,
    pub bulk_latency_seconds: Histogram,
    pub batch_docs: Histogram,
    pub forwarded_errors: Counter,
    pub produce_retries: Counter,
    pub inflight_events: Gauge,
    pub inflight_bytes: Gauge,
    pub paused: Gauge,
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    pub commits: Counter,
    /// The dead letters since the last throughput log line, of every stage (not exported).
    pub dead_letter_tally: std::sync::Arc<DeadLetterTally>,
}

/// Dead letters counted by stage and reason code between two throughput log lines, each with
/// the first record it came from, so the log names what happened and where to look without
/// Prometheus.
#[derive(Debug, Default)]
pub struct DeadLetterTally {
    by_reason:
        std::sync::Mutex<std::collections::BTreeMap<(&'static str, String), DeadLetterSummary>>,
}

/// Dead letters of one stage and reason code, and the first record that produced one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    pub stage: &'static str,
    pub reason: String,
    pub count: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetterTally {
    /// Counts one dead letter of `stage`/`reason` from the record at `topic/partition/offset`.
    pub fn record(
        &self,
        stage: &'static str,
        reason: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) {
        let mut by_reason = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        by_reason
            .entry((stage, reason.to_owned()))
            .or_insert_with(|| DeadLetterSummary {
                stage,
                reason: reason.to_owned(),
                count: 0,
                topic: topic.to_owned(),
                partition,
                offset,
            })
            .count += 1;
    }

    /// The summaries since the last call, and a fresh start.
    pub fn take(&self) -> Vec<DeadLetterSummary> {
        let mut by_reason = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *by_reason).into_values().collect()
    }
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            consumed: Family::default(),
            events: Family::default(),
            indexed: Counter::default(),
            duplicates: Counter::default(),
            dead_lettered: Family::default(),
            bulk_retries: Counter::default(),
            bulk_requests: Counter::default(),
            bulk_latency_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            batch_docs: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            forwarded_errors: Counter::default(),
            produce_retries: Counter::default(),
            inflight_events: Gauge::default(),
            inflight_bytes: Gauge::default(),
            paused: Gauge::default(),
            consumer_lag: Family::default(),
            commits: Counter::default(),
            dead_letter_tally: std::sync::Arc::default(),
        };
        let r = registry.sub_registry_with_prefix("panopticon_ingest");
        r.register("records_consumed", "Kafka records read", m.consumed.clone());
        r.register(
            "events",
            "Events decoded from records (valid or not)",
            m.events.clone(),
        );
        r.register(
            "documents_indexed",
            "Documents created in Elasticsearch",
            m.indexed.clone(),
        );
        r.register(
            "documents_duplicate",
            "Documents that existed already (a replay, absorbed by their deterministic id)",
            m.duplicates.clone(),
        );
        r.register(
            "dead_lettered",
            "Events sent to the dead-letter topic, by stage and reason",
            m.dead_lettered.clone(),
        );
        r.register(
            "bulk_retries",
            "Documents sent again after a retryable failure",
            m.bulk_retries.clone(),
        );
        r.register(
            "bulk_requests",
            "_bulk requests sent",
            m.bulk_requests.clone(),
        );
        r.register(
            "bulk_latency_seconds",
            "Latency of _bulk requests",
            m.bulk_latency_seconds.clone(),
        );
        r.register(
            "batch_documents",
            "Documents per _bulk request",
            m.batch_docs.clone(),
        );
        r.register(
            "errors_forwarded",
            "ERROR logs produced to the error topic",
            m.forwarded_errors.clone(),
        );
        r.register(
            "produce_retries",
            "Retries producing to the error or dead-letter topic",
            m.produce_retries.clone(),
        );
        r.register(
            "inflight_events",
            "Parts of records read and not yet settled",
            m.inflight_events.clone(),
        );
        r.register(
            "inflight_bytes",
            "Bytes of records read and not yet settled",
            m.inflight_bytes.clone(),
        );
        r.register(
            "consumption_paused",
            "1 while consumption is paused by backpressure",
            m.paused.clone(),
        );
        r.register(
            "consumer_lag",
            "Records behind the end of the partition",
            m.consumer_lag.clone(),
        );
        r.register(
            "offset_stores",
            "Times settled offsets were handed to the consumer for commit",
            m.commits.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_every_stage_by_reason_keeps_the_first_sample_and_restarts() {
        let tally = DeadLetterTally::default();
        tally.record("decode", "missing", "apm.spans", 0, 7);
        tally.record("index", "mapper_parsing_exception", "apm.spans", 2, 40);
        tally.record("index", "mapper_parsing_exception", "apm.spans", 1, 41);
        tally.record("decode", "missing", "apm.logs", 1, 3);
        let summaries = tally.take();
        assert_eq!(
            summaries,
            [
                DeadLetterSummary {
                    stage: "decode",
                    reason: "missing".to_owned(),
                    count: 2,
                    topic: "apm.spans".to_owned(),
                    partition: 0,
                    offset: 7
                },
                DeadLetterSummary {
                    stage: "index",
                    reason: "mapper_parsing_exception".to_owned(),
                    count: 2,
                    topic: "apm.spans".to_owned(),
                    partition: 2,
                    offset: 40
                },
            ]
        );
        assert_eq!(summaries.iter().map(|s| s.count).sum::<u64>(), 4);
        assert!(tally.take().is_empty());
    }
}
