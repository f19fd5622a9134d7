//! Shared by the rollup tests and benchmark: a span stream and rollup indices of their own in
//! the stack's OpenSearch, spans stored exactly as ingest stores them, and a worker over them.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use elasticsearch::http::Method;
use panopticon_es::bulk::{self, BulkBody};
use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{ElasticsearchConfig, EnvSource};
use panopticon_model::rollup::{RollupDocument, RollupIndices, SeriesKind};
use panopticon_model::{DecodeContext, Limits, decode_span, ids};
use panopticon_rollup::aggregate::Caps;
use panopticon_rollup::checkpoint::CheckpointStore;
use panopticon_rollup::metrics::Metrics;
use panopticon_rollup::planner::Timing;
use panopticon_rollup::window::Aggregator;
use panopticon_rollup::worker::Worker;
use panopticon_rollup::writer::Writer;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

pub const MIN: i64 = 60_000;

pub struct Fixture {
    pub es: EsClient,
    pub config: ElasticsearchConfig,
    pub checkpoint_index: String,
}

impl Fixture {
    /// A span stream, rollup indices and a checkpoint index no other test uses.
    pub async fn create(prefix: &str) -> Result<Self> {
        let name = panopticon_e2e::unique_name(prefix);
        let url = panopticon_e2e::elasticsearch_url();
        let spans = format!("traces-{name}");
        let metrics = format!("metrics-{name}");
        let pairs = [
            ("ELASTICSEARCH_NODE", url.as_str()),
            ("ELASTICSEARCH_APM_SPAN_STREAM", spans.as_str()),
            ("ELASTICSEARCH_APM_ROLLUP_STREAM", metrics.as_str()),
        ];
        let config = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs))?;
        let es = EsClient::new(&config, &EsSecrets::default())?;
        panopticon_es::bootstrap::ensure_stream(
            &es,
            &config.streams.spans_template,
            &spans,
            panopticon_es::templates::StreamKind::Spans,
            config.index_replicas,
        )
        .await?;
        panopticon_es::bootstrap::ensure_rollup_templates(
            &es,
            &config.streams,
            config.index_replicas,
        )
        .await?;
        let fixture = Self {
            es,
            config,
            checkpoint_index: format!("rollup-state-{name}"),
        };
        fixture.store().ensure_index().await?;
        Ok(fixture)
    }

    pub fn spans(&self) -> &str {
        &self.config.streams.spans
    }

    pub fn indices(&self) -> RollupIndices {
        RollupIndices::new(&self.config.streams.metrics)
    }

    pub fn store(&self) -> CheckpointStore {
        CheckpointStore::new(self.es.clone(), &self.checkpoint_index, 60)
    }

    pub fn aggregator(&self, caps: Caps) -> Aggregator {
        Aggregator {
            es: self.es.clone(),
            spans: self.spans().to_owned(),
            caps,
        }
    }

    pub fn writer(&self) -> Writer {
        Writer {
            es: self.es.clone(),
            indices: self.indices(),
        }
    }

    /// A worker that leads, with its metrics.
    pub fn worker(&self, caps: Caps, timing: Timing, identity: &str) -> Worker {
        let mut registry = Registry::default();
        let (_, leader) = tokio::sync::watch::channel(true);
        Worker {
            aggregator: self.aggregator(caps),
            writer: self.writer(),
            store: self.store(),
            timing,
            poll_interval: Duration::from_millis(200),
            identity: identity.to_owned(),
            metrics: Metrics::register(&mut registry),
            leader,
            state: None,
        }
    }

    /// Stores span events as ingest does (decoded, with their deterministic ids), then
    /// refreshes so they are searchable.
    pub async fn index_spans(&self, events: &[Value]) -> Result<()> {
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            now: chrono::Utc::now(),
        };
        for chunk in events.chunks(5000) {
            let mut body = BulkBody::with_capacity(chunk.len() * 400);
            for event in chunk {
                let doc = decode_span(event, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
                let id = ids::span_id(&doc.trace_id, &doc.span_id);
                body.push_create(self.spans(), &id, &serde_json::to_vec(&doc)?);
            }
            bulk::send_all_stored(&self.es, body, "POST /_bulk (fixture spans)").await?;
        }
        self.refresh(self.spans()).await
    }

    pub async fn refresh(&self, target: &str) -> Result<()> {
        Ok(self.es.refresh(target).await?)
    }

    /// Every rollup document of a kind, with its id, sorted by (window, service, environment,
    /// endpoint).
    pub async fn documents(&self, kind: SeriesKind) -> Result<Vec<(String, RollupDocument)>> {
        let alias = self.indices().alias(kind);
        self.refresh(&alias).await?;
        let (status, answer) = self
            .es
            .request(
                Method::Post,
                &format!("/{alias}/_search?ignore_unavailable=true&allow_no_indices=true"),
                Some(&json!({"size": 10000, "query": {"match_all": {}}})),
            )
            .await
            .context("searching rollup documents")?;
        // The index rollup just created may not have its shard started yet ("all shards
        // failed", 503): nothing to read so far, the caller polls again.
        if status.as_u16() == 503 {
            return Ok(Vec::new());
        }
        ensure!(
            status.is_success(),
            "searching rollup documents: {status} {answer}"
        );
        let mut docs = Vec::new();
        for hit in answer["hits"]["hits"].as_array().into_iter().flatten() {
            let id = hit["_id"].as_str().unwrap_or_default().to_owned();
            docs.push((id, serde_json::from_value(hit["_source"].clone())?));
        }
        docs.sort_by(|(_, a): &(String, RollupDocument), (_, b)| {
            (&a.timestamp, &a.service_name, &a.environment, &a.endpoint).cmp(&(
                &b.timestamp,
                &b.service_name,
                &b.environment,
                &b.endpoint,
            ))
        });
        Ok(docs)
    }
}

/// A span event as applications publish it.
#[allow(clippy::too_many_arguments)]
pub fn span_event(
    service: &str,
    environment: &str,
    name: &str,
    kind: &str,
    error: bool,
    duration_ms: f64,
    at_ms: i64,
    id: u64,
) -> Value {
    json!({
        "timestamp": at_ms,
        "service_name": service,
        "environment": environment,
        "trace_id": format!("{:032x}", id / 4 + 1),
        "span_id": format!("{id:016x}"),
        "name": name,
        "kind": kind,
        "duration_ms": duration_ms,
        "status": if error { "ERROR" } else { "OK" },
    })
}

/// Timing with everything in the past closed: no lateness.
pub fn timing(lookback_minutes: i64) -> Timing {
    Timing {
        bucket_seconds: 60,
        lateness_ms: 0,
        horizon_ms: 120 * MIN,
        initial_lookback_ms: lookback_minutes * MIN,
        max_windows_per_cycle: 1000,
    }
}

pub fn caps(services: usize, environments: usize, endpoints: usize) -> Caps {
    Caps {
        services,
        environments,
        endpoints,
    }
}
