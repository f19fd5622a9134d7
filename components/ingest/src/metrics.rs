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
