//! Writes a window's documents and removes the ones a previous roll of the window wrote that
//! this roll no longer has (a series folded into overflow after late spans changed the top-N).
//!
//! Documents are written with `index` (create or replace) under deterministic ids into the
//! window's own index ([`RollupIndices::index`]), so writing a window twice leaves one copy.

use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use panopticon_es::bulk::{self, BulkBody, ItemOutcome};
use panopticon_es::{EsClient, EsError};
use panopticon_model::rollup::{
    OVERFLOW_KEY, RollupDocument, RollupIndices, SeriesKind, SeriesStats, Window,
};
use serde_json::json;

use crate::aggregate::{Overflow, WindowRollup};

/// Documents per `_bulk` request.
const BULK_DOCS: usize = 1000;

/// A document ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub index: String,
    pub id: String,
    pub document: RollupDocument,
}

/// The documents of a window: one per endpoint series and one per service series.
pub fn documents(
    indices: &RollupIndices,
    window: &Window,
    rollup: &WindowRollup,
    now: &DateTime<Utc>,
) -> Vec<Prepared> {
    let mut out = Vec::with_capacity(rollup.endpoints.len() * 2);
    let mut push = |kind, key: [&str; 3], overflow: bool, stats: &SeriesStats| {
        let document = RollupDocument::new(window, kind, key, overflow, stats, now);
        out.push(Prepared {
            index: indices.index(kind, window),
            id: document.id(window.start_ms),
            document,
        });
    };
    for ((service, environment, overflow), stats) in rollup.services() {
        push(
            SeriesKind::Service,
            [&service, &environment, ""],
            overflow != Overflow::None,
            &stats,
        );
    }
    for (key, stats) in &rollup.endpoints {
        debug_assert!(key.overflow == Overflow::None || key.endpoint == OVERFLOW_KEY);
        push(
            SeriesKind::Endpoint,
            [&key.service, &key.environment, &key.endpoint],
            key.overflow != Overflow::None,
            stats,
        );
    }
    out
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub documents: u64,
    /// Documents of an earlier roll of the window that this roll replaced by others.
    pub removed: u64,
}

#[derive(Clone, Debug)]
pub struct Writer {
    pub es: EsClient,
    pub indices: RollupIndices,
}

impl Writer {
    /// Writes `documents` (all of one window) and removes the window's other documents.
    pub async fn write(&self, window: &Window, documents: &[Prepared]) -> Result<Written, EsError> {
        for chunk in documents.chunks(BULK_DOCS) {
            let mut body = BulkBody::with_capacity(chunk.len() * 1024);
            for doc in chunk {
                let json = serde_json::to_vec(&doc.document).map_err(|e| EsError::Decode {
                    what: "rollup document".to_owned(),
                    detail: e.to_string(),
                })?;
                body.push_index(&doc.index, &doc.id, &json);
            }
            bulk::send_all_stored(&self.es, body, "POST /_bulk (rollups)").await?;
        }
        let removed = self.remove_others(window, documents).await?;
        Ok(Written {
            documents: documents.len() as u64,
            removed,
        })
    }

    /// Deletes the window's documents whose ids are not in `documents`: found by a search
    /// (documents just written may not be searchable yet; they are excluded by id either way),
    /// deleted by id with `_bulk` (works on every distribution; `_delete_by_query` needs the
    /// reindex module).
    async fn remove_others(&self, window: &Window, documents: &[Prepared]) -> Result<u64, EsError> {
        let ids: Vec<&str> = documents.iter().map(|d| d.id.as_str()).collect();
        let path = format!(
            "/{},{}/_search?ignore_unavailable=true&allow_no_indices=true\
             &filter_path=hits.hits._index,hits.hits._id",
            self.indices.index(SeriesKind::Service, window),
            self.indices.index(SeriesKind::Endpoint, window),
        );
        let query = json!({
            "size": 1000,
            "_source": false,
            "query": {"bool": {
                "filter": [
                    {"term": {"bucket_duration_seconds": window.bucket_seconds}},
                    {"range": {"@timestamp_bucket": {
                        "gte": window.start_ms, "lte": window.start_ms, "format": "epoch_millis"
                    }}}
                ],
                "must_not": [{"ids": {"values": ids}}]
            }}
        });
        let mut removed = 0;
        loop {
            let answer = self
                .es
                .request_ok(Method::Post, &path, Some(&query))
                .await?;
            let hits = answer["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() {
                return Ok(removed);
            }
            let mut body = BulkBody::with_capacity(hits.len() * 100);
            for hit in &hits {
                if let (Some(index), Some(id)) = (hit["_index"].as_str(), hit["_id"].as_str()) {
                    body.push_delete(index, id);
                }
            }
            let docs = body.docs();
            // Refresh so the next search does not find them again.
            let what = "POST /_bulk (deleting replaced rollups)";
            let path = format!("{}&refresh=true", bulk::BULK_PATH);
            let outcomes = bulk::send(&self.es, &path, body, what).await?;
            let failed = outcomes.iter().filter(|o| !is_missing(o));
            if let Some((status, reason)) = failed.filter_map(ItemOutcome::failure).next() {
                return Err(EsError::Status {
                    what: what.to_owned(),
                    status,
                    body: reason.to_owned(),
                });
            }
            removed += docs as u64;
        }
    }
}

/// A delete of a document that is gone already.
fn is_missing(outcome: &ItemOutcome) -> bool {
    matches!(
        outcome,
        ItemOutcome::Rejected { status: 404, .. } | ItemOutcome::Retry { status: 404, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::SeriesKey;
    use panopticon_model::sketch::Sketch;

    fn stats(values: &[f64], errors: u64) -> SeriesStats {
        let mut sketch = Sketch::new();
        for v in values {
            sketch.add(*v);
        }
        SeriesStats { errors, sketch }
    }

    fn key(s: &str, e: &str, n: &str, overflow: Overflow) -> SeriesKey {
        SeriesKey {
            service: s.into(),
            environment: e.into(),
            endpoint: n.into(),
            overflow,
        }
    }

    #[test]
    fn service_series_merge_their_endpoints_and_overflow_stays_apart() {
        let mut rollup = WindowRollup::default();
        rollup.add(
            key("api", "production", "GET /a", Overflow::None),
            stats(&[1.0, 2.0], 1),
        );
        rollup.add(
            key("api", "production", OVERFLOW_KEY, Overflow::Endpoint),
            stats(&[3.0], 0),
        );
        rollup.add(
            key("api", OVERFLOW_KEY, OVERFLOW_KEY, Overflow::Environment),
            stats(&[4.0], 1),
        );
        let w = Window::containing(0, 60);
        let docs = documents(&RollupIndices::new("metrics-apm"), &w, &rollup, &w.end());
        let services: Vec<_> = docs
            .iter()
            .filter(|d| d.document.series == SeriesKind::Service)
            .map(|d| {
                (
                    d.document.environment.as_str(),
                    d.document.request_count,
                    d.document.error_count,
                    d.document.overflow,
                    d.index.as_str(),
                )
            })
            .collect();
        assert_eq!(
            services,
            [
                ("_other", 1, 1, true, "metrics-apm-service-60s-1970.01.01"),
                (
                    "production",
                    3,
                    1,
                    false,
                    "metrics-apm-service-60s-1970.01.01"
                ),
            ]
        );
        let endpoints = docs
            .iter()
            .filter(|d| d.document.series == SeriesKind::Endpoint)
            .count();
        assert_eq!(endpoints, 3);
        let mut ids: Vec<_> = docs.iter().map(|d| &d.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), docs.len());
        let prod = docs
            .iter()
            .find(|d| d.document.environment == "production" && d.document.endpoint.is_none())
            .unwrap();
        assert_eq!(prod.document.latency_max_ms, 3.0);
        assert_eq!(prod.document.latency_sum_ms, 6.0);
    }
}
