use serde::{Deserialize, Serialize};

use crate::config::vars::{
    INGEST_MAX_FUTURE_SKEW_SECS, INGEST_MAX_KEYWORD_BYTES, INGEST_MAX_LABEL_KEY_BYTES,
    INGEST_MAX_LABEL_VALUE_BYTES, INGEST_MAX_LABELS, INGEST_MAX_MESSAGE_BYTES,
};

/// Size limits applied to every event. Exceeding one rejects the event with an error naming the
/// field (it goes to the dead-letter topic); nothing is ever cut silently.
///
/// The defaults keep a single document far below what Elasticsearch and Kafka accept (Lucene
/// refuses keyword terms over 32 766 bytes; Kafka's default `message.max.bytes` is 1 MiB) while
/// staying above what real applications send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest `message`, in bytes. Default 65 536: a deep Java stack trace is 10–30 KiB.
    pub max_message_bytes: usize,
    /// Longest keyword field (`service_name`, `environment`, ids, `name`, `http_method`,
    /// `http_path`), in bytes. Default 1 024: longer than any real URL template or id.
    pub max_keyword_bytes: usize,
    /// Most labels per event, after unknown top-level fields are merged in. Default 64:
    /// generous for OTel resource + span attributes, and it bounds mapping growth.
    pub max_labels: usize,
    /// Longest label key, in bytes. Default 128 (OTel attribute names are far shorter).
    pub max_label_key_bytes: usize,
    /// Longest label value, in bytes, after flattening to a scalar. Default 4 096: enough for
    /// a typical SQL statement, well under Lucene's 32 KiB keyword limit.
    pub max_label_value_bytes: usize,
    /// How far in the future a timestamp may lie, in seconds, before it is rejected. Default
    /// 86 400 (one day): tolerates skewed clocks, keeps year-2099 typos out of the data streams.
    pub max_future_skew_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: INGEST_MAX_MESSAGE_BYTES.typed_default(),
            max_keyword_bytes: INGEST_MAX_KEYWORD_BYTES.typed_default(),
            max_labels: INGEST_MAX_LABELS.typed_default(),
            max_label_key_bytes: INGEST_MAX_LABEL_KEY_BYTES.typed_default(),
            max_label_value_bytes: INGEST_MAX_LABEL_VALUE_BYTES.typed_default(),
            max_future_skew_secs: INGEST_MAX_FUTURE_SKEW_SECS.typed_default(),
        }
    }
}
