//! Panopticon rollup: SERVER spans of `traces-apm`, per closed window, into per-service and
//! per-endpoint metrics with mergeable latency sketches.
//!
//! # Contract
//! - **Windows** of `ROLLUP_BUCKET_SECONDS` (60), epoch-aligned, are first rolled up
//!   `ROLLUP_LATENESS_SECONDS` (120) after they end, then rolled up again whenever their SERVER
//!   span count changes during `ROLLUP_LATE_HORIZON_MINUTES` (30): late spans are counted. A
//!   roll computes the window from all of its spans and replaces its documents, so nothing is
//!   ever counted twice ([`planner`] holds the state machine). Spans arriving later than the
//!   horizon are not in the rollups (the query API's raw aggregation still sees them).
//! - **Series**: per (service, environment) and per (service, environment, endpoint = span
//!   name), with request/error counts, error rate, p50/p90/p95/p99, exact min/max/sum and a
//!   DDSketch (1 % relative accuracy) from which any coarser interval or union of series is
//!   computed exactly ([`panopticon_model::rollup`]). The sketch is built by the engine from the
//!   `duration_bucket` ingest stores on every span: no raw span is read ([`aggregate`]).
//! - **Caps**: services per window, environments per service, endpoints per (service,
//!   environment). What a cap leaves out is folded into an overflow series (key `_other`,
//!   `overflow: true`) and counted in `panopticon_rollup_overflow_spans_total`; nothing is
//!   dropped.
//! - **Index layout**: plain indices, one per series kind, bucket length and UTC day of the
//!   window (`metrics-apm-service-60s-2026.11.25`, `metrics-apm-endpoint-60s-…`), created from
//!   index templates that add them to the read aliases `metrics-apm` (service series, with
//!   the name and fields the dashboard reads) and `metrics-apm-endpoints` (rollup writes the
//!   templates at start; with `ELASTICSEARCH_MANAGE_TEMPLATES=false` the operator does, and
//!   rollup waits for them).
//!   Document ids derive from (bucket length, window, series) and a window always maps to the
//!   same index, so a re-roll replaces documents, whatever the age or size of the index: no
//!   duplicate after a rollover, unlike a data stream, where an id is unique per backing index
//!   only. Retention deletes whole daily indices.
//! - **Progress**: a checkpoint document per bucket length in `ROLLUP_CHECKPOINT_INDEX`, saved
//!   after every window with optimistic concurrency ([`checkpoint`]); a restart resumes at the
//!   window in progress. A cycle rolls at most `ROLLUP_MAX_WINDOWS_PER_CYCLE` windows, so a
//!   catch-up after an outage progresses steadily and never blocks start-up.
//! - **One roller**: a Kubernetes Lease elects the active replica when running in a cluster
//!   ([`panopticon_common::lease`]). If two roll anyway (no lease, a partition), their writes are idempotent and
//!   the checkpoint cannot go backwards: the loser adopts the winner's checkpoint and marks its
//!   window to be rolled again.
//!
//! Admin: `/health`, `/ready` (Elasticsearch answers), `/metrics` ([`metrics`]).

pub mod aggregate;
pub mod checkpoint;
use panopticon_common::lease;
pub mod metrics;
pub mod planner;
pub mod window;
pub mod worker;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use panopticon_common::admin::{self, ReadinessProbe};
use panopticon_common::backoff::retry_until_ready;
use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{ElectionMode, RollupConfig};
use panopticon_model::rollup::RollupIndices;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::aggregate::Caps;
use crate::checkpoint::CheckpointStore;
use crate::metrics::Metrics;
use crate::planner::Timing;
use crate::window::Aggregator;
use crate::worker::Worker;
use crate::writer::Writer;

/// Runtime options that are not rollup configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/health`, `/ready` and `/metrics` listen.
    pub admin_addr: SocketAddr,
}

impl From<&RollupConfig> for Timing {
    fn from(c: &RollupConfig) -> Self {
        let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        Timing {
            bucket_seconds: c.bucket_seconds,
            lateness_ms: secs(c.lateness_seconds),
            horizon_ms: secs(c.late_horizon_minutes.saturating_mul(60)),
            initial_lookback_ms: secs(c.initial_lookback_minutes.saturating_mul(60)),
            max_windows_per_cycle: c.max_windows_per_cycle,
        }
    }
}

/// Runs rollup until `shutdown` is cancelled.
pub async fn run(
    config: RollupConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let es = EsClient::new(&config.elasticsearch, &EsSecrets::from_process_env())?;

    let probe_es = es.clone();
    let ready: ReadinessProbe = Arc::new(move || {
        let es = probe_es.clone();
        Box::pin(async move { es.ping().await.map_err(|e| e.to_string()) })
    });
    let admin_stop = CancellationToken::new();
    admin::serve(
        options.admin_addr,
        Arc::new(registry),
        ready,
        admin_stop.clone(),
    )
    .await
    .with_context(|| format!("cannot bind the admin server on {}", options.admin_addr))?;

    if !config.enabled {
        tracing::warn!("ROLLUP_AGGREGATOR_ENABLED is false: not rolling up");
        shutdown.cancelled().await;
        admin_stop.cancel();
        return Ok(());
    }

    let store = CheckpointStore::new(es.clone(), &config.checkpoint_index, config.bucket_seconds);
    let prepared = retry_until_ready(
        "prepare the rollup indices",
        &shutdown,
        |e: &panopticon_es::EsError| e.is_retryable() || e.is_not_found(),
        || async {
            // Provisioned by the operator, the templates carry lifecycle settings: leave them,
            // but do not write before they exist (an index created without them would have
            // neither the mapping nor the read alias).
            if config.elasticsearch.manage_templates {
                panopticon_es::bootstrap::ensure_rollup_templates(
                    &es,
                    &config.elasticsearch.streams,
                    config.elasticsearch.index_replicas,
                )
                .await?;
            } else {
                panopticon_es::bootstrap::require_rollup_templates(
                    &es,
                    &config.elasticsearch.streams,
                )
                .await?;
            }
            store.ensure_index().await
        },
    )
    .await
    .context("cannot prepare the rollup indices")?;
    if prepared.is_none() {
        admin_stop.cancel();
        return Ok(());
    }

    let identity = identity();
    let election_stop = CancellationToken::new();
    let (leader, election) = elect(&config, &identity, election_stop.clone()).await?;

    let worker = Worker {
        aggregator: Aggregator {
            es: es.clone(),
            spans: config.elasticsearch.streams.spans.clone(),
            caps: Caps {
                services: config.max_services,
                environments: config.max_environments,
                endpoints: config.max_endpoints,
            },
        },
        writer: Writer {
            es,
            indices: RollupIndices::new(&config.elasticsearch.streams.metrics),
        },
        store,
        timing: Timing::from(&config),
        poll_interval: Duration::from_millis(config.poll_interval_ms),
        identity,
        metrics,
        leader,
        state: None,
    };
    tracing::info!(
        bucket_seconds = config.bucket_seconds,
        lateness_seconds = config.lateness_seconds,
        late_horizon_minutes = config.late_horizon_minutes,
        "rollup running"
    );
    worker.run(shutdown).await;
    election_stop.cancel();
    if let Some(task) = election
        && let Err(error) = task.await
    {
        tracing::warn!(%error, "leader election task failed");
    }
    admin_stop.cancel();
    tracing::info!("rollup stopped");
    Ok(())
}

/// This process's name in the Lease and the checkpoint: the pod name, plus the process id and a
/// random suffix so two processes on one host differ.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "rollup".to_owned());
    format!("{host}_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Starts the election the configuration asks for; returns the leadership signal and the task.
async fn elect(
    config: &RollupConfig,
    identity: &str,
    stop: CancellationToken,
) -> anyhow::Result<(watch::Receiver<bool>, Option<tokio::task::JoinHandle<()>>)> {
    let election = &config.leader_election;
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let use_lease = match election.mode {
        ElectionMode::Off => false,
        ElectionMode::Lease => true,
        ElectionMode::Auto => in_cluster,
    };
    if !use_lease {
        tracing::info!(
            "leader election off: this process rolls up (run one replica, or set ROLLUP_LEADER_ELECTION=lease)"
        );
        // The receiver keeps reading `true` after the sender is gone.
        let (_, rx) = watch::channel(true);
        return Ok((rx, None));
    }
    let namespace = election
        .lease_namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "default".to_owned());
    let client = kube::Client::try_default()
        .await
        .context("leader election needs the Kubernetes API (ROLLUP_LEADER_ELECTION)")?;
    let (elector, rx) = lease::Elector::new(
        client,
        &namespace,
        &election.lease_name,
        identity,
        Duration::from_secs(u64::from(election.lease_duration_seconds)),
    );
    tracing::info!(
        namespace,
        lease = election.lease_name,
        identity,
        "leader election on a Lease"
    );
    Ok((rx, Some(tokio::spawn(elector.run(stop)))))
}
