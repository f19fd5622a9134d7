use serde::{Deserialize, Serialize};

use super::elasticsearch::ElasticsearchConfig;
use super::env::{ConfigError, EnvSource, ToEnv};
use super::kafka::KafkaConfig;
use super::vars::*;
use crate::limits::Limits;

/// Everything `panopticon ingest` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestConfig {
    pub kafka: KafkaConfig,
    pub elasticsearch: ElasticsearchConfig,
    /// `KAFKA_APM_LOG_TOPIC`.
    pub log_topic: String,
    /// `KAFKA_APM_SPAN_TOPIC`.
    pub span_topic: String,
    /// Where ERROR logs are forwarded (`KAFKA_APM_LOG_ERROR_TOPIC`).
    pub error_topic: String,
    /// Where invalid or rejected events go (`KAFKA_APM_DLQ_TOPIC`).
    pub dlq_topic: String,
    /// Consumer group of all ingest replicas (`KAFKA_CONSUMER_GROUP`).
    pub group_id: String,
    /// `KAFKA_CLIENT_ID`.
    pub client_id: String,
    /// Whether ingest creates its four topics at start when they are missing, as `new_topics`
    /// says (`KAFKA_CREATE_TOPICS`). The operator sets it to false when it creates them itself
    /// with their partitions, replication and retention.
    pub create_topics: bool,
    pub new_topics: NewTopics,
    /// How often settled offsets are committed (`KAFKA_COMMIT_INTERVAL_MS`).
    pub commit_interval_ms: u64,
    pub bulk: BulkConfig,
    /// Most events read from Kafka and not yet settled (`INGEST_MAX_INFLIGHT_EVENTS`, default
    /// 100 000). Past it, consumption pauses.
    pub max_inflight_events: usize,
    /// Most bytes of such events (`INGEST_MAX_INFLIGHT_MB`). Past it,
    /// consumption pauses. Enough for several full batches in flight; the benchmark's peak RSS
    /// is a few times this (document bookkeeping, librdkafka buffers, allocator).
    pub max_inflight_bytes: usize,
    /// How long a SIGTERM may take to flush and commit (`INGEST_SHUTDOWN_TIMEOUT_MS`, default
    /// 25 000, inside Kubernetes' default 30 s grace period).
    pub shutdown_timeout_ms: u64,
    /// Interval of the throughput log line (`STREAM_THROUGHPUT_MIN_INTERVAL_MS`).
    pub throughput_log_interval_ms: u64,
    /// Event limits (`INGEST_MAX_MESSAGE_BYTES`, `INGEST_MAX_KEYWORD_BYTES`,
    /// `INGEST_MAX_LABELS`, `INGEST_MAX_LABEL_KEY_BYTES`, `INGEST_MAX_LABEL_VALUE_BYTES`,
    /// `INGEST_MAX_FUTURE_SKEW_SECS`).
    pub limits: Limits,
}

/// Batching of `_bulk` requests (seed variable names; defaults chosen by the ingest benchmark,
/// see components/ingest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkConfig {
    /// Documents per request (`BULK_BATCH_SIZE`).
    pub batch_size: usize,
    /// Bytes per request (`BULK_BATCH_BYTES_MB`, may be fractional).
    pub batch_bytes: usize,
    /// Longest a document waits for its batch to fill (`BULK_FLUSH_INTERVAL_MS`).
    pub flush_interval_ms: u64,
    /// Requests in flight at once (`BULK_MAX_PARALLEL_FLUSHES`).
    pub max_parallel_flushes: usize,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            batch_size: BULK_BATCH_SIZE.typed_default(),
            batch_bytes: mib(BULK_BATCH_BYTES_MB.typed_default()),
            flush_interval_ms: BULK_FLUSH_INTERVAL_MS.typed_default(),
            max_parallel_flushes: BULK_MAX_PARALLEL_FLUSHES.typed_default(),
        }
    }
}

/// `n` MiB in bytes.
fn mib(n: f64) -> usize {
    (n * 1048576.0) as usize
}

impl IngestConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let batch_mb: f64 = env.parse(&BULK_BATCH_BYTES_MB)?;
        if !(0.001..=512.0).contains(&batch_mb) {
            return Err(ConfigError::new(
                BULK_BATCH_BYTES_MB.name,
                format!("must be between 0.001 and 512, got {batch_mb}"),
            ));
        }
        let bulk = BulkConfig {
            batch_size: env.at_least(&BULK_BATCH_SIZE, 1)?,
            batch_bytes: mib(batch_mb),
            flush_interval_ms: env.at_least(&BULK_FLUSH_INTERVAL_MS, 1)?,
            max_parallel_flushes: env.at_least(&BULK_MAX_PARALLEL_FLUSHES, 1)?,
        };
        let limits = Limits {
            max_message_bytes: env.at_least(&INGEST_MAX_MESSAGE_BYTES, 1)?,
            max_keyword_bytes: env.at_least(&INGEST_MAX_KEYWORD_BYTES, 1)?,
            max_labels: env.parse(&INGEST_MAX_LABELS)?,
            max_label_key_bytes: env.at_least(&INGEST_MAX_LABEL_KEY_BYTES, 1)?,
            max_label_value_bytes: env.at_least(&INGEST_MAX_LABEL_VALUE_BYTES, 1)?,
            max_future_skew_secs: env.parse(&INGEST_MAX_FUTURE_SKEW_SECS)?,
        };
        let config = Self {
            kafka: KafkaConfig::from_env(env)?,
            elasticsearch: ElasticsearchConfig::from_env(env)?,
            log_topic: env.text(&KAFKA_APM_LOG_TOPIC),
            span_topic: env.text(&KAFKA_APM_SPAN_TOPIC),
            error_topic: env.text(&KAFKA_APM_LOG_ERROR_TOPIC),
            dlq_topic: env.text(&KAFKA_APM_DLQ_TOPIC),
            group_id: env.text(&KAFKA_CONSUMER_GROUP),
            client_id: env.text(&INGEST_CLIENT_ID),
            create_topics: env.bool(&KAFKA_CREATE_TOPICS)?,
            new_topics: NewTopics {
                log_partitions: env.at_least(&KAFKA_APM_LOG_TOPIC_PARTITIONS, 1)?,
                span_partitions: env.at_least(&KAFKA_APM_SPAN_TOPIC_PARTITIONS, 1)?,
                error_partitions: env.at_least(&KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS, 1)?,
                dlq_partitions: env.at_least(&KAFKA_APM_DLQ_TOPIC_PARTITIONS, 1)?,
                replication_factor: env.at_least_opt(&KAFKA_TOPIC_REPLICATION_FACTOR, 1)?,
            },
            commit_interval_ms: env.at_least(&KAFKA_COMMIT_INTERVAL_MS, 10)?,
            bulk,
            max_inflight_events: env.at_least(&INGEST_MAX_INFLIGHT_EVENTS, 1)?,
            max_inflight_bytes: env.at_least::<usize>(&INGEST_MAX_INFLIGHT_MB, 1)? << 20,
            shutdown_timeout_ms: env.at_least(&INGEST_SHUTDOWN_TIMEOUT_MS, 100)?,
            throughput_log_interval_ms: env.at_least(&STREAM_THROUGHPUT_MIN_INTERVAL_MS, 100)?,
            limits,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rules between fields.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.log_topic == self.span_topic {
            return Err(ConfigError::new(
                format!("{}/{}", KAFKA_APM_LOG_TOPIC.name, KAFKA_APM_SPAN_TOPIC.name),
                format!(
                    "logs and spans must use different topics, both are {:?}",
                    self.log_topic
                ),
            ));
        }
        for (var, topic) in [
            (&KAFKA_APM_LOG_ERROR_TOPIC, &self.error_topic),
            (&KAFKA_APM_DLQ_TOPIC, &self.dlq_topic),
        ] {
            if topic == &self.log_topic || topic == &self.span_topic {
                return Err(ConfigError::new(
                    var.name,
                    format!(
                        "{topic:?} is also an input topic: ingest would consume its own output"
                    ),
                ));
            }
        }
        if self.max_inflight_bytes < self.bulk.batch_bytes {
            return Err(ConfigError::new(
                format!(
                    "{}/{}",
                    INGEST_MAX_INFLIGHT_MB.name, BULK_BATCH_BYTES_MB.name
                ),
                "the in-flight cap must hold at least one full batch",
            ));
        }
        Ok(())
    }
}

impl ToEnv for IngestConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = self.kafka.to_env();
        vars.extend(self.elasticsearch.to_env());
        vars.extend(self.new_topics.to_env());
        let l = &self.limits;
        vars.extend([
            (KAFKA_APM_LOG_TOPIC.name, self.log_topic.clone()),
            (KAFKA_APM_SPAN_TOPIC.name, self.span_topic.clone()),
            (KAFKA_APM_LOG_ERROR_TOPIC.name, self.error_topic.clone()),
            (KAFKA_APM_DLQ_TOPIC.name, self.dlq_topic.clone()),
            (KAFKA_CONSUMER_GROUP.name, self.group_id.clone()),
            (INGEST_CLIENT_ID.name, self.client_id.clone()),
            (KAFKA_CREATE_TOPICS.name, self.create_topics.to_string()),
            (
                KAFKA_COMMIT_INTERVAL_MS.name,
                self.commit_interval_ms.to_string(),
            ),
            (BULK_BATCH_SIZE.name, self.bulk.batch_size.to_string()),
            (
                BULK_BATCH_BYTES_MB.name,
                (self.bulk.batch_bytes as f64 / 1048576.0).to_string(),
            ),
            (
                BULK_FLUSH_INTERVAL_MS.name,
                self.bulk.flush_interval_ms.to_string(),
            ),
            (
                BULK_MAX_PARALLEL_FLUSHES.name,
                self.bulk.max_parallel_flushes.to_string(),
            ),
            (
                INGEST_MAX_INFLIGHT_EVENTS.name,
                self.max_inflight_events.to_string(),
            ),
            (
                INGEST_MAX_INFLIGHT_MB.name,
                (self.max_inflight_bytes >> 20).to_string(),
            ),
            (
                INGEST_SHUTDOWN_TIMEOUT_MS.name,
                self.shutdown_timeout_ms.to_string(),
            ),
            (
                STREAM_THROUGHPUT_MIN_INTERVAL_MS.name,
                self.throughput_log_interval_ms.to_string(),
            ),
            (
                INGEST_MAX_MESSAGE_BYTES.name,
                l.max_message_bytes.to_string(),
            ),
            (
                INGEST_MAX_KEYWORD_BYTES.name,
                l.max_keyword_bytes.to_string(),
            ),
            (INGEST_MAX_LABELS.name, l.max_labels.to_string()),
            (
                INGEST_MAX_LABEL_KEY_BYTES.name,
                l.max_label_key_bytes.to_string(),
            ),
            (
                INGEST_MAX_LABEL_VALUE_BYTES.name,
                l.max_label_value_bytes.to_string(),
            ),
            (
                INGEST_MAX_FUTURE_SKEW_SECS.name,
                l.max_future_skew_secs.to_string(),
            ),
        ]);
        vars
    }
}

/// How ingest creates the topics that are missing (`KAFKA_CREATE_TOPICS`): the operator's
/// partition counts by default, so a standalone ingest and the operator agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopics {
    /// `KAFKA_APM_LOG_TOPIC_PARTITIONS`.
    pub log_partitions: i32,
    /// `KAFKA_APM_SPAN_TOPIC_PARTITIONS`.
    pub span_partitions: i32,
    /// `KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS`.
    pub error_partitions: i32,
    /// `KAFKA_APM_DLQ_TOPIC_PARTITIONS`.
    pub dlq_partitions: i32,
    /// `KAFKA_TOPIC_REPLICATION_FACTOR`; `None` is the brokers' default.
    pub replication_factor: Option<i32>,
}

impl ToEnv for NewTopics {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (
                KAFKA_APM_LOG_TOPIC_PARTITIONS.name,
                self.log_partitions.to_string(),
            ),
            (
                KAFKA_APM_SPAN_TOPIC_PARTITIONS.name,
                self.span_partitions.to_string(),
            ),
            (
                KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS.name,
                self.error_partitions.to_string(),
            ),
            (
                KAFKA_APM_DLQ_TOPIC_PARTITIONS.name,
                self.dlq_partitions.to_string(),
            ),
        ];
        if let Some(factor) = self.replication_factor {
            vars.push((KAFKA_TOPIC_REPLICATION_FACTOR.name, factor.to_string()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_variables_are_read() {
        let c = IngestConfig::from_env(&EnvSource::from_pairs(&[
            ("BULK_BATCH_SIZE", "6000"),
            ("BULK_BATCH_BYTES_MB", "32"),
            ("BULK_FLUSH_INTERVAL_MS", "500"),
            ("BULK_MAX_PARALLEL_FLUSHES", "6"),
            ("KAFKA_APM_LOG_TOPIC", "logs"),
        ]))
        .unwrap();
        assert_eq!(
            c.bulk,
            BulkConfig {
                batch_size: 6000,
                batch_bytes: 32 << 20,
                flush_interval_ms: 500,
                max_parallel_flushes: 6
            }
        );
        assert_eq!(c.log_topic, "logs");
        assert_eq!(c.span_topic, "apm.spans");
    }

    #[test]
    fn cross_field_rules_name_both_variables() {
        let e = IngestConfig::from_env(&EnvSource::from_pairs(&[(
            "KAFKA_APM_DLQ_TOPIC",
            "apm.logs",
        )]))
        .unwrap_err();
        assert_eq!(e.var, "KAFKA_APM_DLQ_TOPIC");
        let e = IngestConfig::from_env(&EnvSource::from_pairs(&[
            ("INGEST_MAX_INFLIGHT_MB", "1"),
            ("BULK_BATCH_BYTES_MB", "2"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "INGEST_MAX_INFLIGHT_MB/BULK_BATCH_BYTES_MB");
        let e = IngestConfig::from_env(&EnvSource::from_pairs(&[("BULK_BATCH_SIZE", "0")]))
            .unwrap_err();
        assert_eq!(e.to_string(), "BULK_BATCH_SIZE: must be at least 1, got 0");
    }

    #[test]
    fn renders_what_it_reads() {
        let c = IngestConfig::from_env(&EnvSource::from_pairs(&[("BULK_BATCH_BYTES_MB", "0.5")]))
            .unwrap();
        assert!(c.create_topics && c.elasticsearch.manage_templates);
        let rendered = c.to_env();
        let back = IngestConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn operator_managed_topics_and_templates_round_trip() {
        let c = IngestConfig::from_env(&EnvSource::from_pairs(&[
            ("KAFKA_CREATE_TOPICS", "false"),
            ("ELASTICSEARCH_MANAGE_TEMPLATES", "false"),
        ]))
        .unwrap();
        assert!(!c.create_topics);
        assert!(!c.elasticsearch.manage_templates);
        let rendered = c.to_env();
        for var in ["KAFKA_CREATE_TOPICS", "ELASTICSEARCH_MANAGE_TEMPLATES"] {
            assert!(rendered.contains(&(var, "false".to_owned())), "{var}");
        }
        let back = IngestConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
        let e = IngestConfig::from_env(&EnvSource::from_pairs(&[("KAFKA_CREATE_TOPICS", "maybe")]))
            .unwrap_err();
        assert_eq!(e.var, "KAFKA_CREATE_TOPICS");
    }
}
