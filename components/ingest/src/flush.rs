//! Sending batches to Elasticsearch until every document is settled.
//!
//! Per document: created or 409 (a replay) → settled; 429/5xx/404 → sent again after a
//! jittered backoff, for as long as it takes (the broker still holds the record, and the
//! consumer is paused meanwhile by the in-flight cap); any other 4xx → dead-lettered with the
//! engine's reason, then settled. Per request: no answer, 401/403/408/429/5xx → the whole
//! request again; 413 or another 4xx → the request is split in halves until the culprit is a
//! single document, which is dead-lettered.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use elasticsearch::http::Method;
use panopticon_common::backoff::Backoff;
use panopticon_es::bulk::{BulkBody, ItemOutcome, parse_response};
use panopticon_es::{EsClient, EsError, truncate};
use panopticon_kafka::PartitionKey;
use panopticon_model::config::StreamNames;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, ReasonLabel};
use crate::produce::{Producer, Source};
use crate::record::{DeadLetter, PreparedDoc, Stage};

/// A document with the record it came from.
#[derive(Debug)]
pub struct Entry {
    pub key: PartitionKey,
    pub offset: i64,
    pub doc: PreparedDoc,
}

impl Entry {
    pub fn cost(&self) -> usize {
        BulkBody::cost(&self.doc.index, &self.doc.id, &self.doc.json)
    }
}

/// One part of a record is done; `bytes` is what it counted against the in-flight cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub key: PartitionKey,
    pub offset: i64,
    pub bytes: usize,
}

/// What a flush needs; shared by all flushes.
pub struct Flusher {
    pub es: EsClient,
    pub streams: StreamNames,
    /// Whether a missing data stream is re-created here (false when the operator provisions
    /// them: its templates carry lifecycle settings ours lack, so only it creates them).
    pub recreate_streams: bool,
    /// `index.number_of_replicas` of the templates it re-creates.
    pub index_replicas: u32,
    pub producer: Producer,
    pub settle: UnboundedSender<Vec<Settlement>>,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// Cancelled when ingest gives up on in-flight work (shutdown deadline).
    pub abandon: CancellationToken,
}

impl Flusher {
    /// Sends `entries` until each is settled, or until ingest abandons in-flight work.
    pub async fn flush(self: Arc<Self>, entries: Vec<Entry>) {
        self.metrics.batch_docs.observe(entries.len() as f64);
        let mut pending = entries;
        let mut chunk = pending.len().max(1);
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let mut retry = Vec::new();
            let mut settled = Vec::new();
            let mut split = false;
            let mut missing_stream = false;
            let mut rest = pending.into_iter().peekable();
            while rest.peek().is_some() {
                let part: Vec<Entry> = rest.by_ref().take(chunk).collect();
                match self.send(&part).await {
                    Sent::Items(outcomes) => {
                        for (entry, outcome) in part.into_iter().zip(outcomes) {
                            match outcome {
                                ItemOutcome::Created => {
                                    self.metrics.indexed.inc();
                                    settled.push(settlement(&entry));
                                }
                                ItemOutcome::Duplicate => {
                                    self.metrics.duplicates.inc();
                                    settled.push(settlement(&entry));
                                }
                                ItemOutcome::Retry { status, reason } => {
                                    missing_stream |= status == 404;
                                    tracing::debug!(status, reason, "document will be retried");
                                    retry.push(entry);
                                }
                                ItemOutcome::Rejected { status, reason } => {
                                    if self.reject(&entry, status, &reason).await.is_err() {
                                        return;
                                    }
                                    settled.push(settlement(&entry));
                                }
                            }
                        }
                    }
                    Sent::RetryAll(reason) => {
                        tracing::warn!(
                            reason,
                            docs = part.len(),
                            attempt,
                            "bulk request failed, will retry"
                        );
                        retry.extend(part);
                    }
                    Sent::Refused { status, reason } if part.len() == 1 => {
                        let entry = &part[0];
                        if self.reject(entry, status, &reason).await.is_err() {
                            return;
                        }
                        settled.push(settlement(entry));
                    }
                    Sent::Refused { status, reason } => {
                        tracing::warn!(
                            status,
                            reason,
                            docs = part.len(),
                            "bulk request refused, splitting it"
                        );
                        split = true;
                        retry.extend(part);
                    }
                    Sent::Abandoned => return,
                }
            }
            if !settled.is_empty() && self.settle.send(settled).is_err() {
                return; // the consumer is gone; nothing left to report to
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
            if split {
                chunk = (chunk / 2).max(1);
                continue; // a smaller request is a different request: no need to wait
            }
            self.metrics.bulk_retries.inc_by(pending.len() as u64);
            if missing_stream && !self.recreate_streams {
                tracing::warn!(
                    docs = pending.len(),
                    "a data stream is missing (404): documents wait until the operator \
                     provisions it again"
                );
            } else if missing_stream
                && let Err(error) = panopticon_es::bootstrap::ensure_ingest_streams(
                    &self.es,
                    &self.streams,
                    self.index_replicas,
                )
                .await
            {
                tracing::warn!(%error, "cannot re-create the data streams");
            }
            let delay = self.backoff.delay(attempt);
            attempt += 1;
            tokio::select! {
                () = tokio::time::sleep(delay) => {},
                () = self.abandon.cancelled() => return,
            }
        }
    }

    async fn send(&self, part: &[Entry]) -> Sent {
        let mut body = BulkBody::with_capacity(part.iter().map(Entry::cost).sum());
        for e in part {
            body.push_create(&e.doc.index, &e.doc.id, &e.doc.json);
        }
        let started = Instant::now();
        self.metrics.bulk_requests.inc();
        let request = self.es.send_raw(
            Method::Post,
            panopticon_es::bulk::BULK_PATH,
            "application/x-ndjson",
            Some(Bytes::from(body.into_bytes())),
        );
        let result = tokio::select! {
            r = request => r,
            () = self.abandon.cancelled() => return Sent::Abandoned,
        };
        self.metrics
            .bulk_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok((status, bytes)) if status.is_success() => {
                match parse_response(&bytes, part.len()) {
                    Ok(outcomes) => Sent::Items(outcomes),
                    Err(reason) => Sent::RetryAll(reason),
                }
            }
            Ok((status, bytes)) => {
                let error = EsError::Status {
                    what: "POST /_bulk".to_owned(),
                    status: status.as_u16(),
                    body: truncate(&String::from_utf8_lossy(&bytes), 500),
                };
                if error.is_retryable() {
                    Sent::RetryAll(error.to_string())
                } else {
                    Sent::Refused {
                        status: status.as_u16(),
                        reason: error.to_string(),
                    }
                }
            }
            Err(error) => Sent::RetryAll(error.to_string()),
        }
    }

    /// Dead-letters a document Elasticsearch refused for good.
    async fn reject(
        &self,
        entry: &Entry,
        status: u16,
        reason: &str,
    ) -> Result<(), crate::produce::Abandoned> {
        let code = reason
            .split(':')
            .next()
            .unwrap_or("rejected")
            .trim()
            .to_owned();
        let dead = DeadLetter {
            payload: entry.doc.json.clone(),
            stage: Stage::Index,
            code: code.clone(),
            reason: format!("elasticsearch refused the document ({status}): {reason}"),
            event_index: Some(entry.doc.event_index),
        };
        let source = Source {
            topic: &entry.key.topic,
            partition: entry.key.partition,
            offset: entry.offset,
        };
        self.producer
            .dead_letter(&source, &dead, &self.abandon)
            .await?;
        self.metrics
            .dead_lettered
            .get_or_create(&ReasonLabel {
                stage: Stage::Index.as_str(),
                reason: code.clone(),
            })
            .inc();
        self.metrics.dead_letter_tally.record(
            Stage::Index.as_str(),
            &code,
            &entry.key.topic,
            entry.key.partition,
            entry.offset,
        );
        Ok(())
    }
}

fn settlement(entry: &Entry) -> Settlement {
    Settlement {
        key: entry.key.clone(),
        offset: entry.offset,
        bytes: entry.cost(),
    }
}

enum Sent {
    Items(Vec<ItemOutcome>),
    RetryAll(String),
    Refused { status: u16, reason: String },
    Abandoned,
}
