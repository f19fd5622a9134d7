//! Turning one Kafka record into work: documents to index, ERROR logs to forward, events to
//! dead-letter. Pure; the consumer loop runs it for every record.

use std::sync::Arc;

use panopticon_model::ids::{self, LogOrigin};
use panopticon_model::{
    DecodeContext, ErrorLogPayload, EventError, Level, LogDocument, decode_log, decode_span,
    split_payload,
};

/// Which schema a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Log,
    Span,
}

/// A document ready for `_bulk create`.
#[derive(Debug, Clone)]
pub struct PreparedDoc {
    pub index: Arc<str>,
    pub id: String,
    /// The document, serialised on one line.
    pub json: Vec<u8>,
    /// Position of the event in its record (for the dead-letter record if Elasticsearch
    /// refuses it).
    pub event_index: u32,
}

/// An event that will not be indexed, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The bytes to keep: the whole record when it cannot be split into events, else the
    /// event's own JSON.
    pub payload: Vec<u8>,
    pub stage: Stage,
    /// Short reason code for metrics and headers.
    pub code: String,
    /// The full reason, naming the field.
    pub reason: String,
    pub event_index: Option<u32>,
}

/// Where an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Invalid input (panopticon-model refused it).
    Decode,
    /// Elasticsearch refused the document (a mapping error, say).
    Index,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Index => "index",
        }
    }
}

/// An ERROR log for the error topic: key and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub key: String,
    pub value: Vec<u8>,
}

/// All the work one record produces.
#[derive(Debug, Default)]
pub struct RecordWork {
    pub docs: Vec<PreparedDoc>,
    pub forwards: Vec<Forward>,
    pub dead: Vec<DeadLetter>,
    /// Events in the record (valid or not).
    pub events: usize,
}

impl RecordWork {
    /// Settlements the record waits for.
    pub fn parts(&self) -> usize {
        self.docs.len() + self.forwards.len() + self.dead.len()
    }
}

fn forward_of(doc: &LogDocument) -> Forward {
    let message = ErrorLogPayload::from(doc);
    Forward {
        key: doc.service_name.clone(),
        value: serde_json::to_vec(&message).unwrap_or_default(),
    }
}

fn dead(payload: Vec<u8>, error: &EventError, event_index: Option<u32>) -> DeadLetter {
    DeadLetter {
        payload,
        stage: Stage::Decode,
        code: error.reason.code().to_owned(),
        reason: error.to_string(),
        event_index,
    }
}

/// Decodes one record. `origin` locates it (for log ids); `index` is the data stream of the
/// schema.
pub fn process_record(
    schema: Schema,
    index: &Arc<str>,
    origin: &LogOrigin<'_>,
    ctx: &DecodeContext<'_>,
) -> RecordWork {
    let mut work = RecordWork::default();
    let events = match split_payload(origin.payload) {
        Ok(events) => events,
        Err(error) => {
            work.events = 1;
            work.dead.push(dead(origin.payload.to_vec(), &error, None));
            return work;
        }
    };
    work.events = events.len();
    for (i, event) in events.iter().enumerate() {
        let event_index = i as u32;
        let prepared = match schema {
            Schema::Log => decode_log(event, ctx).map(|doc| {
                if doc.level == Level::Error {
                    work.forwards.push(forward_of(&doc));
                }
                let id = ids::log_id(&LogOrigin {
                    index: event_index,
                    ..*origin
                });
                (id, serde_json::to_vec(&doc))
            }),
            Schema::Span => decode_span(event, ctx).map(|doc| {
                (
                    ids::span_id(&doc.trace_id, &doc.span_id),
                    serde_json::to_vec(&doc),
                )
            }),
        };
        match prepared {
            Ok((id, Ok(json))) => {
                work.docs.push(PreparedDoc {
                    index: index.clone(),
                    id,
                    json,
                    event_index,
                });
            }
            Ok((_, Err(e))) => {
                // Unreachable for our document types; kept as a dead letter, never a panic.
                let error = EventError {
                    field: "payload".to_owned(),
                    reason: panopticon_model::Reason::Invalid(format!("cannot serialise: {e}")),
                };
                work.dead.push(dead(
                    event.to_string().into_bytes(),
                    &error,
                    Some(event_index),
                ));
            }
            Err(error) => {
                let payload = if events.len() == 1 {
                    origin.payload.to_vec()
                } else {
                    event.to_string().into_bytes()
                };
                work.dead.push(dead(payload, &error, Some(event_index)));
            }
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use panopticon_model::Limits;
    use serde_json::{Value, json};

    fn run(schema: Schema, payload: &[u8]) -> RecordWork {
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            now: Utc::now(),
        };
        let origin = LogOrigin {
            topic: "apm.logs",
            partition: 0,
            offset: 7,
            index: 0,
            payload,
        };
        process_record(schema, &Arc::from("logs-apm"), &origin, &ctx)
    }

    #[test]
    fn an_error_log_is_indexed_and_forwarded_with_a_normalised_timestamp() {
        let payload = br#"{"timestamp":"2025-11-10 16:17:00+09:00","service_name":"pay","environment":"prod",
            "level":"error","message":"boom","trace_id":"t","labels":{"k":"v"},"client_ip":"1.2.3.4"}"#;
        let work = run(Schema::Log, payload);
        assert_eq!(
            (
                work.docs.len(),
                work.forwards.len(),
                work.dead.len(),
                work.parts()
            ),
            (1, 1, 0, 2)
        );
        let forwarded: Value = serde_json::from_slice(&work.forwards[0].value).unwrap();
        assert_eq!(
            forwarded,
            json!({"timestamp":"2025-11-10T07:17:00.000Z","service_name":"pay","environment":"production",
                "level":"ERROR","message":"boom","trace_id":"t","labels":{"client_ip":"1.2.3.4","k":"v"}})
        );
        assert_eq!(work.forwards[0].key, "pay");
    }

    #[test]
    fn an_array_record_yields_one_id_per_event_and_dead_letters_the_bad_one_alone() {
        let payload = br#"[{"service_name":"a","environment":"e","level":"INFO","message":"1"},
            {"service_name":"a","environment":"e","level":"NOPE","message":"2"},
            {"service_name":"a","environment":"e","level":"INFO","message":"3"}]"#;
        let work = run(Schema::Log, payload);
        assert_eq!(work.events, 3);
        assert_eq!(work.docs.len(), 2);
        assert_ne!(work.docs[0].id, work.docs[1].id);
        assert_eq!(work.docs[1].event_index, 2);
        let dl = &work.dead[0];
        assert_eq!(
            (dl.event_index, dl.code.as_str(), dl.stage),
            (Some(1), "not_allowed", Stage::Decode)
        );
        assert!(
            dl.reason.starts_with("level: must be one of"),
            "{}",
            dl.reason
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&dl.payload).unwrap()["message"],
            "2"
        );
    }

    #[test]
    fn an_unreadable_record_is_dead_lettered_whole() {
        for payload in [&b"not json"[..], b"null", b""] {
            let work = run(Schema::Span, payload);
            assert_eq!((work.docs.len(), work.dead.len()), (0, 1));
            assert_eq!(work.dead[0].payload, payload);
            assert_eq!(work.dead[0].event_index, None);
        }
    }

    #[test]
    fn a_replayed_record_gets_the_same_ids() {
        let payload =
            br#"{"service_name":"a","environment":"e","trace_id":"t","span_id":"s","name":"n",
            "kind":"SERVER","duration_ms":1,"status":"OK"}"#;
        assert_eq!(
            run(Schema::Span, payload).docs[0].id,
            run(Schema::Span, payload).docs[0].id
        );
        assert_eq!(
            run(Schema::Span, payload).docs[0].id,
            ids::span_id("t", "s")
        );
    }
}
