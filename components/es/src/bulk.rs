//! `_bulk create` bodies and the per-item outcome of a response.
//!
//! Every document goes in as `create` with an explicit `_index` (so one request can carry logs
//! and spans) and a deterministic `_id`. Data streams only accept `create`, and `create` turns a
//! replay into a 409 instead of a second document.

use bytes::Bytes;
use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::{EsClient, EsError, truncate};

/// Where bulk bodies go. The response keeps only what [`parse_response`] reads (the status and
/// error of each item): the engine spends less serialising it and we spend less parsing it.
pub const BULK_PATH: &str = "/_bulk?filter_path=errors,items.*.status,items.*.error";

/// An NDJSON `_bulk` body under construction.
#[derive(Debug, Default, Clone)]
pub struct BulkBody {
    buf: Vec<u8>,
    docs: usize,
}

impl BulkBody {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            docs: 0,
        }
    }

    /// Appends `create` of `doc` (already-serialised JSON, one line) into `index` with `id`.
    pub fn push_create(&mut self, index: &str, id: &str, doc: &[u8]) {
        self.push_op("create", index, id, doc);
    }

    /// Appends `index` of `doc`: creates the document or replaces the one with the same id
    /// (plain indices only; rollups use it so that re-rolling a window replaces its documents).
    pub fn push_index(&mut self, index: &str, id: &str, doc: &[u8]) {
        self.push_op("index", index, id, doc);
    }

    /// Appends `delete` of the document `id` in `index`.
    pub fn push_delete(&mut self, index: &str, id: &str) {
        self.buf.extend_from_slice(b"{\"delete\":{\"_index\":");
        write_json_str(&mut self.buf, index);
        self.buf.extend_from_slice(b",\"_id\":");
        write_json_str(&mut self.buf, id);
        self.buf.extend_from_slice(b"}}\n");
        self.docs += 1;
    }

    fn push_op(&mut self, op: &str, index: &str, id: &str, doc: &[u8]) {
        debug_assert!(!doc.contains(&b'\n'), "a bulk document must be one line");
        self.buf.extend_from_slice(b"{\"");
        self.buf.extend_from_slice(op.as_bytes());
        self.buf.extend_from_slice(b"\":{\"_index\":");
        write_json_str(&mut self.buf, index);
        self.buf.extend_from_slice(b",\"_id\":");
        write_json_str(&mut self.buf, id);
        self.buf.extend_from_slice(b"}}\n");
        self.buf.extend_from_slice(doc);
        self.buf.push(b'\n');
        self.docs += 1;
    }

    /// Bytes a document adds: what batching counts against `BULK_BATCH_BYTES_MB`.
    pub fn cost(index: &str, id: &str, doc: &[u8]) -> usize {
        // `{"create":{"_index":"` `","_id":"` `"}}\n` and the final `\n`: 35 bytes around the parts.
        35 + index.len() + id.len() + doc.len()
    }

    pub fn docs(&self) -> usize {
        self.docs
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs == 0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Index names and our ids need no escaping, but stay correct for any input.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        buf.extend_from_slice(Value::from(s).to_string().as_bytes());
    }
}

/// What happened to one document of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Indexed now.
    Created,
    /// A document with this id exists already: a replay, absorbed (409).
    Duplicate,
    /// Not stored, may succeed later (429, 5xx, a missing data stream): retry with backoff.
    Retry { status: u16, reason: String },
    /// Refused for good (a mapping error, say): dead-letter it with the engine's reason.
    Rejected { status: u16, reason: String },
}

impl ItemOutcome {
    /// Settled: nothing more to do for this document.
    pub fn is_stored(&self) -> bool {
        matches!(self, ItemOutcome::Created | ItemOutcome::Duplicate)
    }

    /// The status and the engine's reason of a document that was not stored.
    pub fn failure(&self) -> Option<(u16, &str)> {
        match self {
            ItemOutcome::Retry { status, reason } | ItemOutcome::Rejected { status, reason } => {
                Some((*status, reason))
            }
            ItemOutcome::Created | ItemOutcome::Duplicate => None,
        }
    }
}

#[derive(Deserialize)]
struct Response {
    errors: bool,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: ItemResult,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a successful (HTTP 200) `_bulk` response into one outcome per document, in request
/// order. `expected` is the number of documents sent; a different count is an error.
pub fn parse_response(body: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk response: {e}"))?;
    if response.items.len() != expected {
        return Err(format!(
            "bulk response has {} items for {expected} documents",
            response.items.len()
        ));
    }
    if !response.errors {
        return Ok(vec![ItemOutcome::Created; expected]);
    }
    Ok(response
        .items
        .iter()
        .map(|i| classify(i.create.status, i.create.error.as_ref()))
        .collect())
}

/// Sends `body` to `path` (a `_bulk` path whose `filter_path` keeps what [`parse_response`]
/// reads) and returns one outcome per document. An error status or an unreadable answer is an
/// [`EsError`] naming `what`. For writers that settle a whole batch at once; ingest, which
/// settles each document, reads the answer itself.
pub async fn send(
    es: &EsClient,
    path: &str,
    body: BulkBody,
    what: &str,
) -> Result<Vec<ItemOutcome>, EsError> {
    let docs = body.docs();
    let (status, answer) = es
        .send_raw(
            Method::Post,
            path,
            "application/x-ndjson",
            Some(Bytes::from(body.into_bytes())),
        )
        .await?;
    if !status.is_success() {
        return Err(EsError::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            body: truncate(&String::from_utf8_lossy(&answer), 2000),
        });
    }
    parse_response(&answer, docs).map_err(|detail| EsError::Decode {
        what: what.to_owned(),
        detail,
    })
}

/// [`send`] to [`BULK_PATH`], requiring every document stored: the first one that is not
/// becomes an [`EsError::Status`] with its status and the engine's reason.
pub async fn send_all_stored(es: &EsClient, body: BulkBody, what: &str) -> Result<(), EsError> {
    let outcomes = send(es, BULK_PATH, body, what).await?;
    match outcomes.iter().find_map(ItemOutcome::failure) {
        Some((status, reason)) => Err(EsError::Status {
            what: format!("a document of {what}"),
            status,
            body: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Classifies one item by status and error.
pub fn classify(status: u16, error: Option<&Value>) -> ItemOutcome {
    match status {
        200..=299 => ItemOutcome::Created,
        409 => ItemOutcome::Duplicate,
        // 404: the data stream or its template is missing (deleted under us, or auto-create
        // is off); it comes back once bootstrap ran again, so this is not the document's fault.
        404 | 408 | 429 | 500.. => ItemOutcome::Retry {
            status,
            reason: reason(error),
        },
        _ => ItemOutcome::Rejected {
            status,
            reason: reason(error),
        },
    }
}

/// `type: reason (caused by: type: reason)`, as the engine explains it.
fn reason(error: Option<&Value>) -> String {
    let Some(e) = error else {
        return "no reason given".to_owned();
    };
    let one = |e: &Value| {
        let kind = e["type"].as_str().unwrap_or("error");
        match e["reason"].as_str() {
            Some(r) => format!("{kind}: {r}"),
            None => kind.to_owned(),
        }
    };
    match e.get("caused_by") {
        Some(cause) if cause.is_object() => format!("{} (caused by {})", one(e), one(cause)),
        _ => one(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_is_ndjson_create_with_index_and_id() {
        let mut body = BulkBody::default();
        body.push_create("logs-apm", "abc", br#"{"message":"x"}"#);
        body.push_create("traces-apm", "q\"d", br#"{"name":"n"}"#);
        assert_eq!(body.docs(), 2);
        let text = String::from_utf8(body.into_bytes()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"create": {"_index": "logs-apm", "_id": "abc"}})
        );
        assert_eq!(lines[1], json!({"message": "x"}));
        assert_eq!(
            lines[2],
            json!({"create": {"_index": "traces-apm", "_id": "q\"d"}})
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn cost_is_exactly_the_bytes_added() {
        let mut body = BulkBody::default();
        body.push_create("logs-apm", "id", b"{}");
        assert_eq!(BulkBody::cost("logs-apm", "id", b"{}"), body.len_bytes());
    }

    #[test]
    fn every_item_is_classified() {
        let response = json!({"took": 3, "errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"create": {"status": 503, "error": {"type": "unavailable_shards_exception"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception",
                "reason": "failed to parse field [labels.n]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"x\""}}}},
            {"create": {"status": 404, "error": {"type": "index_not_found_exception", "reason": "no such index [logs-apm]"}}}
        ]});
        let outcomes = parse_response(response.to_string().as_bytes(), 6).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Created);
        assert_eq!(outcomes[1], ItemOutcome::Duplicate);
        assert_eq!(
            outcomes[2],
            ItemOutcome::Retry {
                status: 429,
                reason: "es_rejected_execution_exception: queue full".into()
            }
        );
        assert!(matches!(
            outcomes[3],
            ItemOutcome::Retry { status: 503, .. }
        ));
        assert_eq!(
            outcomes[4],
            ItemOutcome::Rejected {
                status: 400,
                reason: "mapper_parsing_exception: failed to parse field [labels.n] (caused by \
                     illegal_argument_exception: For input string: \"x\")"
                    .into()
            }
        );
        assert!(matches!(
            outcomes[5],
            ItemOutcome::Retry { status: 404, .. }
        ));
        assert!(outcomes[0].is_stored() && outcomes[1].is_stored() && !outcomes[2].is_stored());
    }

    #[test]
    fn no_errors_means_all_created_and_counts_must_match() {
        let ok = json!({"errors": false, "items": [{"create": {"status": 201}}, {"create": {"status": 201}}]});
        assert_eq!(
            parse_response(ok.to_string().as_bytes(), 2).unwrap(),
            vec![ItemOutcome::Created; 2]
        );
        assert!(
            parse_response(ok.to_string().as_bytes(), 3)
                .unwrap_err()
                .contains("2 items for 3")
        );
        assert!(parse_response(b"<html>", 1).is_err());
    }
}
