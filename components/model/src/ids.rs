//! Deterministic document ids, so that `_bulk create` turns a replay into a harmless 409.
//!
//! Both are 128-bit XXH3 hashes over a length-prefixed encoding of their inputs (no two input
//! tuples share an encoding), written as 22 characters of unpadded URL-safe base64. The encoding
//! and the hash are part of the storage contract: changing either re-indexes every replay as new.
//!
//! - span: `(trace_id, span_id)`, the span's identity in OTel.
//! - log: `(topic, partition, offset, index in message, hash of the message bytes)`. A replay of
//!   the same record gives the same id; a recreated topic whose offsets restart at 0 carries
//!   different bytes at the same offset, so it cannot collide with older documents. The index
//!   tells apart the events of a message holding a JSON array.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use xxhash_rust::xxh3::Xxh3;

const SPAN_DOMAIN: &[u8] = b"panopticon/span/v1";
const LOG_DOMAIN: &[u8] = b"panopticon/log/v1";
const ROLLUP_DOMAIN: &[u8] = b"panopticon/rollup/v1";

/// The document id of a span.
pub fn span_id(trace_id: &str, span_id: &str) -> String {
    let mut h = Hasher::new(SPAN_DOMAIN);
    h.bytes(trace_id.as_bytes());
    h.bytes(span_id.as_bytes());
    h.finish()
}

/// Where a log event came from: its Kafka record and its position inside the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOrigin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Position of the event in the record (0 unless the record holds a JSON array).
    pub index: u32,
    /// The record's value, exactly as consumed.
    pub payload: &'a [u8],
}

/// The document id of a log event.
pub fn log_id(origin: &LogOrigin<'_>) -> String {
    let mut h = Hasher::new(LOG_DOMAIN);
    h.bytes(origin.topic.as_bytes());
    h.fixed(&origin.partition.to_be_bytes());
    h.fixed(&origin.offset.to_be_bytes());
    h.fixed(&origin.index.to_be_bytes());
    h.fixed(&xxhash_rust::xxh3::xxh3_128(origin.payload).to_be_bytes());
    h.finish()
}

/// The document id of a rollup series in one window: `(bucket length, window start, series
/// kind, service, environment, endpoint, overflow)`. The bucket length is part of it, so
/// rollups of different bucket sizes never replace each other.
pub fn rollup_id(
    bucket_seconds: u32,
    window_start_ms: i64,
    kind: &str,
    key: [&str; 3],
    overflow: bool,
) -> String {
    let mut h = Hasher::new(ROLLUP_DOMAIN);
    h.fixed(&bucket_seconds.to_be_bytes());
    h.fixed(&window_start_ms.to_be_bytes());
    h.bytes(kind.as_bytes());
    for part in key {
        h.bytes(part.as_bytes());
    }
    h.fixed(&[u8::from(overflow)]);
    h.finish()
}

struct Hasher(Xxh3);

impl Hasher {
    fn new(domain: &[u8]) -> Self {
        let mut h = Self(Xxh3::new());
        h.bytes(domain);
        h
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
    }
    fn fixed(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    fn finish(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.digest128().to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin<'a>(topic: &'a str, offset: i64, payload: &'a [u8]) -> LogOrigin<'a> {
        LogOrigin {
            topic,
            partition: 0,
            offset,
            index: 0,
            payload,
        }
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // Pinned values: these ids are stored; a change here re-indexes every replay as new.
        assert_eq!(
            span_id("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
            "fPvg6MJNeMPaQLyIOgGrKQ"
        );
        let origin = LogOrigin {
            topic: "apm.logs",
            partition: 3,
            offset: 1234,
            index: 0,
            payload: br#"{"message":"x"}"#,
        };
        assert_eq!(log_id(&origin), "UPdEZHQ93wWHNascrQH6VQ");
        assert_eq!(
            rollup_id(
                60,
                1_764_000_000_000,
                "endpoint",
                ["api", "production", "GET /"],
                false
            ),
            "je2WAf_uM8bVoHm8hmzZkg"
        );
    }

    #[test]
    fn a_replay_gives_the_same_log_id() {
        let p = br#"{"message":"x"}"#;
        assert_eq!(
            log_id(&origin("apm.logs", 42, p)),
            log_id(&origin("apm.logs", 42, p))
        );
    }

    #[test]
    fn a_recreated_topic_does_not_collide() {
        let old = log_id(&origin("apm.logs", 0, br#"{"message":"old"}"#));
        let new = log_id(&origin("apm.logs", 0, br#"{"message":"new"}"#));
        assert_ne!(old, new);
    }

    #[test]
    fn every_coordinate_matters() {
        let p = b"{}";
        let base = LogOrigin {
            topic: "t",
            partition: 1,
            offset: 2,
            index: 3,
            payload: p,
        };
        let id = log_id(&base);
        assert_ne!(id, log_id(&LogOrigin { topic: "u", ..base }));
        assert_ne!(
            id,
            log_id(&LogOrigin {
                partition: 9,
                ..base
            })
        );
        assert_ne!(id, log_id(&LogOrigin { offset: 9, ..base }));
        assert_ne!(id, log_id(&LogOrigin { index: 9, ..base }));
    }

    proptest! {
        #[test]
        fn span_ids_do_not_depend_on_where_the_pair_is_split(
            a in "[a-f0-9]{1,8}", b in "[a-f0-9]{1,8}",
        ) {
            // ("ab", "c") and ("a", "bc") must differ: inputs are length-prefixed.
            let joined = format!("{a}{b}");
            let (x, y) = joined.split_at(1);
            if x != a {
                prop_assert_ne!(span_id(&a, &b), span_id(x, y));
            }
        }

        #[test]
        fn ids_are_url_safe(t in "\\PC{0,30}", s in "\\PC{0,30}") {
            let id = span_id(&t, &s);
            prop_assert_eq!(id.len(), 22);
            prop_assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        }
    }
}
