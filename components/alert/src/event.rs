//! One error as alert handles it: decoded from an error-topic record, with its client payload
//! serialised once for every client.

use chrono::Utc;
use panopticon_model::{
    DecodeContext, ErrorLogPayload, EventError, Level, Limits, decode_log, split_payload,
};
use serde_json::value::RawValue;

/// An error log ready to push.
#[derive(Debug)]
pub struct ErrorEvent {
    pub service: String,
    /// Normalised, as ingest stores it.
    pub environment: String,
    pub level: Level,
    /// The `error-log` payload ([`ErrorLogPayload`]), serialised once.
    pub payload: Box<RawValue>,
    /// The Kafka record's timestamp (ms since the epoch), when it has one.
    pub produced_at_ms: Option<i64>,
}

/// Decodes a record value: the events it holds, each valid or why not. The record may be one
/// object or an array of them; each is checked as a log event and normalised, so a producer
/// other than ingest gets the same rules. The level is not re-checked: whatever valid log
/// reaches the error topic is pushed.
pub fn decode(
    value: &[u8],
    produced_at_ms: Option<i64>,
    limits: &Limits,
) -> Vec<Result<ErrorEvent, EventError>> {
    let events = match split_payload(value) {
        Ok(events) => events,
        Err(e) => return vec![Err(e)],
    };
    let ctx = DecodeContext {
        limits,
        now: Utc::now(),
    };
    events
        .iter()
        .map(|event| {
            let doc = decode_log(event, &ctx)?;
            // Strings and JSON scalars only: serialising cannot fail.
            let payload = serde_json::value::to_raw_value(&ErrorLogPayload::from(&doc))
                .expect("an error payload always serialises");
            Ok(ErrorEvent {
                service: doc.service_name,
                environment: doc.environment,
                level: doc.level,
                payload,
                produced_at_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn one(value: Value) -> Result<ErrorEvent, EventError> {
        decode(value.to_string().as_bytes(), Some(1), &Limits::default())
            .pop()
            .unwrap()
    }

    #[test]
    fn ingests_forward_becomes_the_log_item_payload() {
        let e = one(json!({
            "timestamp": "2026-11-25T10:00:00.123Z", "service_name": "checkout",
            "environment": "PROD", "level": "ERROR", "message": "boom",
            "trace_id": "t1", "span_id": "s1", "labels": {"region": "eu"}
        }))
        .unwrap();
        assert_eq!(
            (e.service.as_str(), e.environment.as_str()),
            ("checkout", "production")
        );
        let payload: Value = serde_json::from_str(e.payload.get()).unwrap();
        assert_eq!(
            payload,
            json!({
                "timestamp": "2026-11-25T10:00:00.123Z", "service_name": "checkout",
                "environment": "production", "level": "ERROR", "message": "boom",
                "trace_id": "t1", "span_id": "s1", "labels": {"region": "eu"}
            })
        );
    }

    #[test]
    fn absent_optional_fields_are_omitted_and_any_level_is_pushed() {
        let e = one(
            json!({"service_name": "a", "environment": "dev", "level": "warn", "message": "m"}),
        )
        .unwrap();
        assert_eq!(e.level, Level::Warn);
        let payload: Value = serde_json::from_str(e.payload.get()).unwrap();
        let keys: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "environment",
                "level",
                "message",
                "service_name",
                "timestamp"
            ]
        );
    }

    #[test]
    fn invalid_events_say_which_field() {
        let e =
            one(json!({"service_name": "a", "environment": "dev", "level": "ERROR"})).unwrap_err();
        assert_eq!(e.field, "message");
        let all = decode(b"not json", None, &Limits::default());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap_err().field, "payload");
        let batch = decode(
            json!([{"service_name": "a", "environment": "dev", "level": "ERROR", "message": "x"}, 3])
                .to_string()
                .as_bytes(),
            None,
            &Limits::default(),
        );
        assert!(batch[0].is_ok() && batch[1].is_err());
    }
}
