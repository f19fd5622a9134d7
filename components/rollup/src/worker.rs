//! The cycle loop: every poll interval, while leading, plan ([`crate::planner`]), then for each
//! planned window aggregate ([`crate::window`]), write ([`crate::writer`]) and save the
//! checkpoint ([`crate::checkpoint`]). The checkpoint is saved after every window, so a restart
//! at any point re-rolls at most the window in progress, whose documents it replaces.

use std::time::{Duration, Instant};

use chrono::Utc;
use panopticon_es::EsError;
use panopticon_model::format_timestamp;
use panopticon_model::rollup::Window;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointStore, SaveError, Version};
use crate::metrics::{LevelLabel, Metrics, RollLabel};
use crate::planner::{self, Checkpoint, Timing, UNSURE};
use crate::window::{Aggregator, RollError};
use crate::writer::{self, Writer};

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("cannot roll up window {window}: {source}")]
    Roll {
        window: Window,
        #[source]
        source: RollError,
    },
    #[error("cannot write window {window}: {source}")]
    Write {
        window: Window,
        #[source]
        source: EsError,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] SaveError),
    #[error("cannot count recent spans: {0}")]
    Counts(RollError),
}

impl From<EsError> for CycleError {
    fn from(e: EsError) -> Self {
        CycleError::Checkpoint(SaveError::Es(e))
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub windows: usize,
    pub documents: u64,
    /// Another roller saved the checkpoint meanwhile; the cycle stopped early.
    pub conflict: bool,
}

pub struct Worker {
    pub aggregator: Aggregator,
    pub writer: Writer,
    pub store: CheckpointStore,
    pub timing: Timing,
    pub poll_interval: Duration,
    pub identity: String,
    pub metrics: Metrics,
    pub leader: watch::Receiver<bool>,
    /// The checkpoint as last read or saved; `None` forces a reload.
    pub state: Option<(Checkpoint, Option<Version>)>,
}

impl Worker {
    /// Cycles until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let leading = *self.leader.borrow();
            self.metrics.leader.set(i64::from(leading));
            if !leading {
                // Another replica moves the checkpoint meanwhile.
                self.state = None;
                continue;
            }
            if let Err(error) = self.cycle(&shutdown).await {
                self.metrics.cycle_errors.inc();
                self.state = None;
                tracing::warn!(
                    error = format!("{error:#}"),
                    "rollup cycle stopped; retrying next cycle"
                );
            }
        }
    }

    /// One cycle. Public for tests.
    pub async fn cycle(&mut self, shutdown: &CancellationToken) -> Result<CycleReport, CycleError> {
        let (mut checkpoint, mut version) = match self.state.take() {
            Some(state) => state,
            None => match self.store.load().await? {
                Some((checkpoint, version)) => (checkpoint, Some(version)),
                None => {
                    let initial = Checkpoint::initial(Utc::now().timestamp_millis(), &self.timing);
                    tracing::info!(start = %Window::containing(initial.watermark_ms, self.timing.bucket_seconds),
                        "no checkpoint: starting from the initial lookback");
                    (initial, None)
                }
            },
        };
        let now_ms = Utc::now().timestamp_millis();
        let (from, to) = checkpoint.watched_range(&self.timing);
        let live = self
            .aggregator
            .live_counts(from, to, self.timing.bucket_seconds)
            .await
            .map_err(CycleError::Counts)?;
        let planned = planner::plan(now_ms, &self.timing, &checkpoint, &live);
        let mut report = CycleReport::default();
        for p in planned {
            if shutdown.is_cancelled() || !*self.leader.borrow() {
                break;
            }
            let started = Instant::now();
            let window = p.window;
            let rollup = self
                .aggregator
                .roll(&window)
                .await
                .map_err(|source| CycleError::Roll { window, source })?;
            let documents = writer::documents(&self.writer.indices, &window, &rollup, &Utc::now());
            let written = self
                .writer
                .write(&window, &documents)
                .await
                .map_err(|source| CycleError::Write { window, source })?;

            checkpoint.record(&window, i64::try_from(rollup.total).unwrap_or(i64::MAX));
            checkpoint.prune(&self.timing);
            checkpoint.last_rolled_up_at = format_timestamp(
                &chrono::DateTime::from_timestamp_millis(checkpoint.watermark_ms)
                    .unwrap_or_default(),
            );
            checkpoint.updated_at = format_timestamp(&Utc::now());
            checkpoint.holder.clone_from(&self.identity);
            match self.store.save(&checkpoint, version).await {
                Ok(v) => version = Some(v),
                Err(SaveError::Conflict) => {
                    self.metrics.checkpoint_conflicts.inc();
                    self.yield_window(&window).await?;
                    report.conflict = true;
                    return Ok(report);
                }
                Err(e) => return Err(e.into()),
            }

            let counted = rollup.counted();
            if counted < rollup.total {
                self.metrics
                    .unaccounted_spans
                    .inc_by(rollup.total - counted);
                tracing::warn!(%window, total = rollup.total, counted, "spans not counted in any series (terms counts approximate across shards)");
            }
            for (level, spans) in rollup.folded() {
                self.metrics
                    .overflow_spans
                    .get_or_create(&LevelLabel {
                        level: level.label(),
                    })
                    .inc_by(spans);
            }
            let roll = if p.first { "first" } else { "again" };
            self.metrics
                .windows_rolled
                .get_or_create(&RollLabel { roll })
                .inc();
            self.metrics.documents_written.inc_by(written.documents);
            self.metrics.documents_removed.inc_by(written.removed);
            self.metrics.spans_rolled.inc_by(rollup.total);
            self.metrics
                .window_seconds
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(%window, roll, spans = rollup.total, docs = written.documents,
                removed = written.removed, elapsed_ms = started.elapsed().as_millis() as u64,
                "rolled up window");
            report.windows += 1;
            report.documents += written.documents;
        }
        self.metrics
            .lag_seconds
            .set((Utc::now().timestamp_millis() - checkpoint.watermark_ms) as f64 / 1000.0);
        self.state = Some((checkpoint, version));
        Ok(report)
    }

    /// Another roller saved the checkpoint after we read it: adopt theirs, and mark the
    /// window we just wrote unsure so that whoever leads rolls it once more (our write and
    /// theirs may have seen different spans).
    async fn yield_window(&mut self, window: &Window) -> Result<(), CycleError> {
        tracing::warn!(%window, "another roller saved the checkpoint; adopting it");
        let Some((mut theirs, version)) = self.store.load().await? else {
            return Err(SaveError::Conflict.into());
        };
        if window.start_ms < theirs.watermark_ms {
            theirs.windows.insert(window.start_ms, UNSURE);
            let version = self.store.save(&theirs, Some(version)).await?;
            self.state = Some((theirs, Some(version)));
        } else {
            self.state = Some((theirs, Some(version)));
        }
        Ok(())
    }
}
