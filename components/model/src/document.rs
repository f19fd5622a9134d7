//! The documents stored in the `logs-apm` and `traces-apm` data streams. Field names and shapes
//! are those the NestJS backend stored, so existing readers keep working; absent optional
//! fields are omitted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels of an event: flat, with scalar values only.
pub type Labels = BTreeMap<String, LabelValue>;

/// A label value. Nested objects and arrays are flattened to their JSON text before they get
/// here, so a label is always a scalar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValue {
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

/// Log severity, stored upper-case. Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str =
        "DEBUG, INFO, WARN, ERROR (any case; TRACE→DEBUG, WARNING→WARN, FATAL/CRITICAL→ERROR)";

    /// Reads a level, case-insensitively. Returns the level and whether an alias was folded
    /// (the original spelling is then kept in the `level_original` label).
    pub fn parse(s: &str) -> Option<(Self, bool)> {
        let upper = s.trim().to_ascii_uppercase();
        Some(match upper.as_str() {
            "DEBUG" => (Level::Debug, false),
            "INFO" => (Level::Info, false),
            "WARN" => (Level::Warn, false),
            "ERROR" => (Level::Error, false),
            "TRACE" => (Level::Debug, true),
            "WARNING" => (Level::Warn, true),
            "FATAL" | "CRITICAL" => (Level::Error, true),
            _ => return None,
        })
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Span kind (OTel's five kinds; `UNSPECIFIED` is read as `INTERNAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SpanKind {
    Server,
    Client,
    Internal,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER, UNSPECIFIED (any case, SPAN_KIND_ prefix allowed)";

    /// Reads a kind, case-insensitively, with or without OTLP's `SPAN_KIND_` prefix.
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        Some(match upper.strip_prefix("SPAN_KIND_").unwrap_or(&upper) {
            "SERVER" => SpanKind::Server,
            "CLIENT" => SpanKind::Client,
            "INTERNAL" | "UNSPECIFIED" => SpanKind::Internal,
            "PRODUCER" => SpanKind::Producer,
            "CONSUMER" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

/// Span status; OTel's `UNSET` is stored as `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SpanStatus {
    Ok,
    Error,
}

impl SpanStatus {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "OK, ERROR, UNSET (any case, STATUS_CODE_ prefix allowed)";

    /// Reads a status, case-insensitively, with or without OTLP's `STATUS_CODE_` prefix.
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        Some(match upper.strip_prefix("STATUS_CODE_").unwrap_or(&upper) {
            "OK" | "UNSET" => SpanStatus::Ok,
            "ERROR" => SpanStatus::Error,
            _ => return None,
        })
    }
}

/// A log document in `logs-apm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogDocument {
    /// When the event happened (RFC 3339, UTC, milliseconds); ingest time when the event had none.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Always `"log"`.
    #[serde(rename = "type")]
    pub doc_type: String,
    pub service_name: String,
    /// Normalised (see [`crate::normalize_environment`]).
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// When Panopticon read the event.
    #[serde(rename = "ingestedAt")]
    pub ingested_at: String,
}

/// An ERROR log as ingest forwards it to the error topic and alert pushes it to clients: the
/// dashboard's LogItem (`timestamp`, `service_name`, `environment`, `level`, `message`,
/// optional `trace_id`, `span_id`, `labels`) plus the optional HTTP fields, with the timestamp
/// and environment normalised. Absent optional fields are omitted, as socket.io omits
/// undefined keys.
#[derive(Debug, Serialize)]
pub struct ErrorLogPayload<'a> {
    pub timestamp: &'a str,
    pub service_name: &'a str,
    pub environment: &'a str,
    pub level: Level,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<&'a Labels>,
}

impl<'a> From<&'a LogDocument> for ErrorLogPayload<'a> {
    fn from(doc: &'a LogDocument) -> Self {
        Self {
            timestamp: &doc.timestamp,
            service_name: &doc.service_name,
            environment: &doc.environment,
            level: doc.level,
            message: &doc.message,
            trace_id: doc.trace_id.as_deref(),
            span_id: doc.span_id.as_deref(),
            http_method: doc.http_method.as_deref(),
            http_path: doc.http_path.as_deref(),
            http_status_code: doc.http_status_code,
            labels: doc.labels.as_ref(),
        }
    }
}

/// A span document in `traces-apm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanDocument {
    /// When the span started (RFC 3339, UTC, milliseconds).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Always `"span"`.
    #[serde(rename = "type")]
    pub doc_type: String,
    pub service_name: String,
    /// Normalised (see [`crate::normalize_environment`]).
    pub environment: String,
    pub trace_id: String,
    pub span_id: String,
    /// `null` for a root span (also when the event sent `""`).
    pub parent_span_id: Option<String>,
    /// The operation, used as the endpoint name.
    pub name: String,
    pub kind: SpanKind,
    pub duration_ms: f64,
    /// The [`crate::sketch`] bucket of `duration_ms` (absent for a zero duration): rollups
    /// aggregate on it to build mergeable latency sketches without reading raw spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_bucket: Option<i32>,
    pub status: SpanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// When Panopticon read the event.
    #[serde(rename = "ingestedAt")]
    pub ingested_at: String,
}
