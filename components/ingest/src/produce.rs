//! Producing ERROR logs to the error topic and refused events to the dead-letter topic.
//!
//! One idempotent producer with `acks=all`. A send is retried with backoff until it succeeds
//! or ingest gives up at shutdown (then the record stays unsettled and is read again by the
//! next owner): a broken producer is retried and reported, never silently disabled.

use std::time::Duration;

use panopticon_common::backoff::Backoff;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::record::{DeadLetter, Forward};

/// Where a dead letter came from, written into its headers.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The headers of a dead-letter record: where the event came from and why it was refused.
pub fn dead_letter_headers(source: &Source<'_>, dead: &DeadLetter) -> OwnedHeaders {
    let partition = source.partition.to_string();
    let offset = source.offset.to_string();
    let index = dead.event_index.map(|i| i.to_string());
    let mut headers = OwnedHeaders::new_with_capacity(7)
        .insert(Header {
            key: "panopticon.source.topic",
            value: Some(source.topic),
        })
        .insert(Header {
            key: "panopticon.source.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "panopticon.source.offset",
            value: Some(&offset),
        })
        .insert(Header {
            key: "panopticon.stage",
            value: Some(dead.stage.as_str()),
        })
        .insert(Header {
            key: "panopticon.reason.code",
            value: Some(&dead.code),
        })
        .insert(Header {
            key: "panopticon.reason",
            value: Some(&dead.reason),
        });
    if let Some(index) = &index {
        headers = headers.insert(Header {
            key: "panopticon.source.event_index",
            value: Some(index),
        });
    }
    headers
}

/// The producer with its retry policy.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    error_topic: String,
    dlq_topic: String,
    backoff: Backoff,
    metrics: Metrics,
}

/// Ingest stopped before the record could be produced.
#[derive(Debug)]
pub struct Abandoned;

impl Producer {
    pub fn new(
        inner: FutureProducer,
        error_topic: String,
        dlq_topic: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner,
            error_topic,
            dlq_topic,
            backoff: Backoff::default(),
            metrics,
        }
    }

    pub fn client(&self) -> &FutureProducer {
        &self.inner
    }

    /// Forwards one ERROR log; returns once the broker acknowledged it.
    pub async fn forward(&self, f: &Forward, cancel: &CancellationToken) -> Result<(), Abandoned> {
        let topic = self.error_topic.as_str();
        self.send_until_done("error topic", cancel, || {
            FutureRecord::to(topic).key(&f.key).payload(&f.value)
        })
        .await?;
        self.metrics.forwarded_errors.inc();
        Ok(())
    }

    /// Dead-letters one event; returns once the broker acknowledged it.
    pub async fn dead_letter(
        &self,
        source: &Source<'_>,
        dead: &DeadLetter,
        cancel: &CancellationToken,
    ) -> Result<(), Abandoned> {
        let topic = self.dlq_topic.as_str();
        let headers = dead_letter_headers(source, dead);
        self.send_until_done("dead-letter topic", cancel, || {
            FutureRecord::<(), _>::to(topic)
                .payload(&dead.payload)
                .headers(headers.clone())
        })
        .await
    }

    async fn send_until_done<'a, K, F>(
        &self,
        what: &'static str,
        cancel: &CancellationToken,
        record: F,
    ) -> Result<(), Abandoned>
    where
        K: rdkafka::message::ToBytes + ?Sized + 'a,
        F: Fn() -> FutureRecord<'a, K, Vec<u8>>,
    {
        let mut attempt = 0u32;
        loop {
            let send = self.inner.send(record(), Duration::from_secs(30));
            let result = tokio::select! {
                r = send => r,
                () = cancel.cancelled() => return Err(Abandoned),
            };
            match result {
                Ok(_) => return Ok(()),
                Err((error, _)) => {
                    self.metrics.produce_retries.inc();
                    let delay = self.backoff.delay(attempt);
                    if attempt == 0 || attempt % 10 == 9 {
                        tracing::warn!(%error, attempt, what, retry_in_ms = delay.as_millis() as u64,
                            "producing failed, retrying");
                    }
                    attempt += 1;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {},
                        () = cancel.cancelled() => return Err(Abandoned),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stage;
    use rdkafka::message::Headers as _;

    #[test]
    fn dead_letter_headers_locate_and_explain_the_event() {
        let dead = DeadLetter {
            payload: b"{}".to_vec(),
            stage: Stage::Decode,
            code: "missing".into(),
            reason: "service_name: is required".into(),
            event_index: Some(2),
        };
        let h = dead_letter_headers(
            &Source {
                topic: "apm.spans",
                partition: 3,
                offset: 99,
            },
            &dead,
        );
        let got: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        let want = [
            ("panopticon.source.topic", "apm.spans"),
            ("panopticon.source.partition", "3"),
            ("panopticon.source.offset", "99"),
            ("panopticon.stage", "decode"),
            ("panopticon.reason.code", "missing"),
            ("panopticon.reason", "service_name: is required"),
            ("panopticon.source.event_index", "2"),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}
