//! Panopticon's event model: what applications publish to Kafka, how it is validated and
//! normalised, and the documents stored for it in Elasticsearch/OpenSearch. No I/O.
//!
//! Position in the data flow: `ingest` decodes every Kafka message with [`decode_log`] or
//! [`decode_span`]; a success is a [`LogDocument`] / [`SpanDocument`] with its deterministic
//! document id, a failure is an [`EventError`] that names the field and the reason, and becomes
//! the dead-letter reason.
//!
//! Compatibility with the NestJS backend this replaces: every event it accepted is accepted
//! here and stores the same document fields, with these deliberate differences:
//! - `kind` also accepts `PRODUCER`, `CONSUMER` and `UNSPECIFIED` (stored as `INTERNAL`, as OTel
//!   prescribes); `status` also accepts `UNSET` (stored as `OK`); both are case-insensitive and
//!   accept the OTLP enum spellings (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`).
//! - `http_status_code` must be an integer in 100..=599 (a numeric string is converted).
//! - timestamps: RFC 3339 with offset, naive ISO 8601 read as UTC (never local time), epoch
//!   milliseconds as a JSON number; anything else is an error, never silently "now".
//! - `environment` is trimmed, lower-cased and aliases are folded (`prod` → `production`, …)
//!   when the event is read, so stored data and query filters agree ([`normalize_environment`]).
//! - `parent_span_id: ""` means root and is stored as `null`.
//! - a payload with a top-level `value` key is taken as it is, never unwrapped.
//! - unknown top-level fields are kept in `labels` instead of being dropped; label values are
//!   flattened to scalars; size limits ([`Limits`]) give an error, never a silent cut.
//!
//! [`workload`] generates realistic traffic (event JSON) for tests, benchmarks and
//! `panopticon sample`.
//!
//! Document ids are deterministic ([`ids`]), so a replayed Kafka message maps to the same
//! document and `_bulk create` absorbs the duplicate.

pub mod config;
mod decode;
pub mod document;
mod environment;
mod error;
pub mod ids;
mod labels;
mod limits;
pub mod rollup;
pub mod sketch;
mod timestamp;
pub mod workload;

pub use decode::{DecodeContext, decode_log, decode_span, split_payload};
pub use document::{
    ErrorLogPayload, LabelValue, Labels, Level, LogDocument, SpanDocument, SpanKind, SpanStatus,
};
pub use environment::normalize_environment;
pub use error::{EventError, Reason};
pub use limits::Limits;
pub use timestamp::{format_timestamp, parse_timestamp};
