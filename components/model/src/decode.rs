//! Decoding one Kafka record into validated, normalised documents.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::document::{Level, LogDocument, SpanDocument, SpanKind, SpanStatus};
use crate::environment::normalize_environment;
use crate::error::{EventError, Reason, json_type};
use crate::labels::LabelsBuilder;
use crate::limits::Limits;
use crate::timestamp::{format_timestamp, from_epoch_millis, parse_timestamp};

/// What decoding needs besides the event: the limits and the current time (the ingest time of
/// the event, and the reference for the future-skew limit).
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    pub limits: &'a Limits,
    pub now: DateTime<Utc>,
}

/// Top-level fields of a log event; anything else goes to `labels`.
const LOG_FIELDS: &[&str] = &[
    "type",
    "timestamp",
    "service_name",
    "environment",
    "level",
    "message",
    "trace_id",
    "span_id",
    "http_method",
    "http_path",
    "http_status_code",
    "labels",
    ETC,
];

/// Top-level fields of a span event; anything else goes to `labels`.
const SPAN_FIELDS: &[&str] = &[
    "type",
    "timestamp",
    "service_name",
    "environment",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "duration_ms",
    "status",
    "http_method",
    "http_path",
    "http_status_code",
    "labels",
    ETC,
];

/// producerServer's map of the other OTLP span attributes; its entries become labels.
const ETC: &str = "etc";

/// Splits a record value into its events: a JSON object is one event, a JSON array holds
/// several. The elements are not checked here; [`decode_log`] / [`decode_span`] do that.
pub fn split_payload(bytes: &[u8]) -> Result<Vec<Value>, EventError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(EventError::new("payload", Reason::Empty));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| EventError::new("payload", Reason::InvalidJson(e.to_string())))?;
    match value {
        Value::Object(_) => Ok(vec![value]),
        Value::Array(items) => Ok(items),
        other => Err(EventError::new(
            "payload",
            Reason::WrongType {
                expected: "a JSON object or an array of objects",
                got: json_type(&other),
            },
        )),
    }
}

/// Validates and normalises a log event (the rules are listed in the crate docs).
pub fn decode_log(event: &Value, ctx: &DecodeContext<'_>) -> Result<LogDocument, EventError> {
    let obj = as_object(event)?;
    let limits = ctx.limits;
    let (level, level_aliased) = {
        let raw = required_str(obj, "level")?;
        Level::parse(raw).ok_or_else(|| {
            EventError::new(
                "level",
                Reason::NotOneOf {
                    allowed: Level::ACCEPTED,
                    got: raw.to_owned(),
                },
            )
        })?
    };
    let message = required_str(obj, "message")?;
    if message.is_empty() {
        return Err(EventError::new("message", Reason::Empty));
    }
    check_len("message", message, limits.max_message_bytes)?;

    let mut labels = labels_of(obj, LOG_FIELDS, limits)?;
    if level_aliased {
        // Keep the spelling that was folded (e.g. FATAL → ERROR), so nothing is hidden.
        if let Some(raw) = obj.get("level") {
            labels.add("level_original", raw)?;
        }
    }
    Ok(LogDocument {
        timestamp: event_time(obj, ctx)?,
        doc_type: "log".to_owned(),
        service_name: service_name(obj, limits)?,
        environment: environment(obj, limits)?,
        trace_id: optional_keyword(obj, "trace_id", limits)?,
        span_id: optional_keyword(obj, "span_id", limits)?,
        level,
        message: message.to_owned(),
        http_method: optional_keyword(obj, "http_method", limits)?,
        http_path: optional_keyword(obj, "http_path", limits)?,
        http_status_code: http_status_code(obj)?,
        labels: labels.finish(),
        ingested_at: format_timestamp(&ctx.now),
    })
}

/// Validates and normalises a span event (the rules are listed in the crate docs).
pub fn decode_span(event: &Value, ctx: &DecodeContext<'_>) -> Result<SpanDocument, EventError> {
    let obj = as_object(event)?;
    let limits = ctx.limits;
    let trace_id = required_keyword(obj, "trace_id", limits)?;
    let span_id = required_keyword(obj, "span_id", limits)?;
    let parent_span_id =
        optional_keyword(obj, "parent_span_id", limits)?.filter(|p| !p.trim().is_empty()); // "" is a root span
    let name = required_keyword(obj, "name", limits)?;
    let kind = {
        let raw = required_str(obj, "kind")?;
        SpanKind::parse(raw).ok_or_else(|| {
            EventError::new(
                "kind",
                Reason::NotOneOf {
                    allowed: SpanKind::ACCEPTED,
                    got: raw.to_owned(),
                },
            )
        })?
    };
    let status = {
        let raw = required_str(obj, "status")?;
        SpanStatus::parse(raw).ok_or_else(|| {
            EventError::new(
                "status",
                Reason::NotOneOf {
                    allowed: SpanStatus::ACCEPTED,
                    got: raw.to_owned(),
                },
            )
        })?
    };
    let duration_ms = match obj.get("duration_ms") {
        None | Some(Value::Null) => return Err(EventError::new("duration_ms", Reason::Missing)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => {
            return Err(EventError::new(
                "duration_ms",
                Reason::WrongType {
                    expected: "a number",
                    got: json_type(other),
                },
            ));
        }
    };
    if !duration_ms.is_finite() || duration_ms < 0.0 {
        return Err(EventError::new(
            "duration_ms",
            Reason::OutOfRange(format!("must be a finite number >= 0, got {duration_ms}")),
        ));
    }
    Ok(SpanDocument {
        timestamp: event_time(obj, ctx)?,
        doc_type: "span".to_owned(),
        service_name: service_name(obj, limits)?,
        environment: environment(obj, limits)?,
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind,
        duration_ms,
        duration_bucket: crate::sketch::bucket_index(duration_ms),
        status,
        http_method: optional_keyword(obj, "http_method", limits)?,
        http_path: optional_keyword(obj, "http_path", limits)?,
        http_status_code: http_status_code(obj)?,
        labels: labels_of(obj, SPAN_FIELDS, limits)?.finish(),
        ingested_at: format_timestamp(&ctx.now),
    })
}

fn as_object(event: &Value) -> Result<&Map<String, Value>, EventError> {
    event.as_object().ok_or_else(|| {
        EventError::new(
            "payload",
            Reason::WrongType {
                expected: "a JSON object",
                got: json_type(event),
            },
        )
    })
}

fn required_str<'v>(obj: &'v Map<String, Value>, field: &str) -> Result<&'v str, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(EventError::new(field, Reason::Missing)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::new(
            field,
            Reason::WrongType {
                expected: "a string",
                got: json_type(other),
            },
        )),
    }
}

fn check_len(field: &str, s: &str, max: usize) -> Result<(), EventError> {
    if s.len() > max {
        return Err(EventError::new(
            field,
            Reason::TooLong { max, len: s.len() },
        ));
    }
    Ok(())
}

/// A required keyword: a string, not blank, within the keyword limit; stored as sent.
fn required_keyword(
    obj: &Map<String, Value>,
    field: &str,
    limits: &Limits,
) -> Result<String, EventError> {
    let s = required_str(obj, field)?;
    if s.trim().is_empty() {
        return Err(EventError::new(field, Reason::Empty));
    }
    check_len(field, s, limits.max_keyword_bytes)?;
    Ok(s.to_owned())
}

fn optional_keyword(
    obj: &Map<String, Value>,
    field: &str,
    limits: &Limits,
) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_len(field, s, limits.max_keyword_bytes)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(EventError::new(
            field,
            Reason::WrongType {
                expected: "a string",
                got: json_type(other),
            },
        )),
    }
}

fn service_name(obj: &Map<String, Value>, limits: &Limits) -> Result<String, EventError> {
    Ok(required_keyword(obj, "service_name", limits)?
        .trim()
        .to_owned())
}

fn environment(obj: &Map<String, Value>, limits: &Limits) -> Result<String, EventError> {
    Ok(normalize_environment(&required_keyword(
        obj,
        "environment",
        limits,
    )?))
}

/// An integer HTTP status in 100..=599; a numeric string (`"404"`) is converted.
fn http_status_code(obj: &Map<String, Value>) -> Result<Option<u16>, EventError> {
    const FIELD: &str = "http_status_code";
    let code = match obj.get(FIELD) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e6)
                .map(|f| f as i64)
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(other) => {
            return Err(EventError::new(
                FIELD,
                Reason::WrongType {
                    expected: "an integer",
                    got: json_type(other),
                },
            ));
        }
    };
    match code {
        Some(c @ 100..=599) => Ok(Some(c as u16)),
        _ => Err(EventError::new(
            FIELD,
            Reason::OutOfRange(format!(
                "must be an integer between 100 and 599, got {}",
                obj.get(FIELD).map(Value::to_string).unwrap_or_default()
            )),
        )),
    }
}

/// The event's time, stored form; the ingest time when the event has none.
fn event_time(obj: &Map<String, Value>, ctx: &DecodeContext<'_>) -> Result<String, EventError> {
    const FIELD: &str = "timestamp";
    let t = match obj.get(FIELD) {
        None | Some(Value::Null) => return Ok(format_timestamp(&ctx.now)),
        Some(Value::String(s)) => parse_timestamp(s),
        Some(Value::Number(n)) => from_epoch_millis(n.as_f64().unwrap_or(f64::NAN)),
        Some(other) => {
            return Err(EventError::new(
                FIELD,
                Reason::WrongType {
                    expected: "an ISO 8601 string or epoch milliseconds",
                    got: json_type(other),
                },
            ));
        }
    }
    .map_err(|msg| EventError::new(FIELD, Reason::InvalidTimestamp(msg)))?;
    let skew =
        TimeDelta::seconds(i64::try_from(ctx.limits.max_future_skew_secs).unwrap_or(i64::MAX));
    if ctx
        .now
        .checked_add_signed(skew)
        .is_some_and(|latest| t > latest)
    {
        return Err(EventError::new(
            FIELD,
            Reason::OutOfRange(format!(
                "{} is more than {}s in the future",
                format_timestamp(&t),
                ctx.limits.max_future_skew_secs
            )),
        ));
    }
    Ok(format_timestamp(&t))
}

/// Explicit labels, then unknown top-level fields, then `etc` entries.
fn labels_of<'l>(
    obj: &Map<String, Value>,
    known: &[&str],
    limits: &'l Limits,
) -> Result<LabelsBuilder<'l>, EventError> {
    let mut labels = LabelsBuilder::new(limits);
    if let Some(explicit) = obj.get("labels") {
        labels.add_object_field("labels", explicit)?;
    }
    for (key, value) in obj {
        if !known.contains(&key.as_str()) {
            labels.add(key, value)?;
        }
    }
    match obj.get(ETC) {
        None | Some(Value::Null) => {}
        Some(Value::Object(attrs)) => labels.add_all(attrs)?,
        Some(other) => labels.add(ETC, other)?,
    }
    Ok(labels)
}

#[cfg(test)]
mod tests;
