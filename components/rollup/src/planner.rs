//! Which windows a cycle rolls up: a pure function of the clock, the checkpoint and the span
//! counts the engine reports for recent windows.
//!
//! # State machine of a window
//! ```text
//!   open ──(end + lateness ≤ now)──> closed ──(first roll)──> rolled(count)
//!   rolled(count) ──(live count ≠ count, within the late horizon)──> rolled(live count)
//!   rolled ──(older than watermark − horizon)──> final (never read again)
//! ```
//! The checkpoint holds the *watermark* (every window ending at or before it was rolled at
//! least once) and, for the windows of the late horizon, the SERVER span count each was rolled
//! with. A window is rolled again when the engine counts a different number of spans in it now:
//! late spans arrived (or a roll was marked unsure, count −1). Rolling a window computes it from
//! all of its spans and replaces its documents, so a re-roll never double counts.

use std::collections::BTreeMap;

use panopticon_model::rollup::Window;
use serde::{Deserialize, Serialize};

/// What the planner needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub bucket_seconds: u32,
    pub lateness_ms: i64,
    pub horizon_ms: i64,
    pub initial_lookback_ms: i64,
    pub max_windows_per_cycle: usize,
}

/// The persisted progress (one document per bucket length in the checkpoint index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub bucket_seconds: u32,
    /// Every window ending at or before this instant (epoch ms) has been rolled up.
    pub watermark_ms: i64,
    /// The same instant, ISO 8601, under the name existing readers of the status use.
    #[serde(rename = "lastRolledUpAt")]
    pub last_rolled_up_at: String,
    /// Span count each recent window was rolled with, by window start; −1 forces a re-roll.
    pub windows: BTreeMap<i64, i64>,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// Who wrote it last (the roller's identity).
    pub holder: String,
}

/// Count that makes a window roll again whatever the engine reports.
pub const UNSURE: i64 = -1;

impl Checkpoint {
    /// Where a roller without a checkpoint starts: `initial_lookback` before the newest closed
    /// window.
    pub fn initial(now_ms: i64, timing: &Timing) -> Self {
        let start = Window::containing(
            closed_until(now_ms, timing) - timing.initial_lookback_ms,
            timing.bucket_seconds,
        );
        Self {
            bucket_seconds: timing.bucket_seconds,
            watermark_ms: start.start_ms,
            last_rolled_up_at: String::new(),
            windows: BTreeMap::new(),
            updated_at: String::new(),
            holder: String::new(),
        }
    }

    /// Records a roll of `window` with `spans` SERVER spans.
    pub fn record(&mut self, window: &Window, spans: i64) {
        self.windows.insert(window.start_ms, spans);
        if window.start_ms == self.watermark_ms {
            self.watermark_ms = window.end_ms();
        }
    }

    /// Forgets windows that left the late horizon.
    pub fn prune(&mut self, timing: &Timing) {
        let oldest = self.watermark_ms - timing.horizon_ms;
        self.windows.retain(|start, _| *start >= oldest);
    }

    /// The windows whose live span counts the planner needs: `[from, to)` in epoch ms.
    pub fn watched_range(&self, timing: &Timing) -> (i64, i64) {
        (self.watermark_ms - timing.horizon_ms, self.watermark_ms)
    }
}

/// End of the newest window that may be rolled up now (epoch ms, aligned).
pub fn closed_until(now_ms: i64, timing: &Timing) -> i64 {
    Window::containing(now_ms - timing.lateness_ms, timing.bucket_seconds).start_ms
}

/// One window to roll up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub window: Window,
    /// False for a re-roll.
    pub first: bool,
}

/// The windows of this cycle, oldest first: windows not rolled yet (they move the watermark),
/// then windows whose live span count differs from their recorded one, within
/// `max_windows_per_cycle`.
pub fn plan(
    now_ms: i64,
    timing: &Timing,
    checkpoint: &Checkpoint,
    live_counts: &BTreeMap<i64, u64>,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    let limit = closed_until(now_ms, timing);
    let mut window = Window::containing(checkpoint.watermark_ms, timing.bucket_seconds);
    while window.end_ms() <= limit && planned.len() < timing.max_windows_per_cycle {
        planned.push(Planned {
            window,
            first: true,
        });
        window = window.next();
    }
    let (from, to) = checkpoint.watched_range(timing);
    let mut window = Window::containing(from, timing.bucket_seconds);
    while window.start_ms < to && planned.len() < timing.max_windows_per_cycle {
        let live = live_counts.get(&window.start_ms).copied().unwrap_or(0);
        let recorded = checkpoint.windows.get(&window.start_ms).copied();
        let changed = match recorded {
            Some(UNSURE) => true,
            Some(n) => i64::try_from(live).is_ok_and(|live| live != n),
            // Not recorded: rolled before this checkpoint format, or pruned; roll only if
            // spans are there now.
            None => live > 0,
        };
        if changed {
            planned.push(Planned {
                window,
                first: false,
            });
        }
        window = window.next();
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn timing() -> Timing {
        Timing {
            bucket_seconds: 60,
            lateness_ms: 2 * MIN,
            horizon_ms: 30 * MIN,
            initial_lookback_ms: 5 * MIN,
            max_windows_per_cycle: 20,
        }
    }

    fn starts(p: &[Planned]) -> Vec<(i64, bool)> {
        p.iter()
            .map(|p| (p.window.start_ms / MIN, p.first))
            .collect()
    }

    #[test]
    fn a_window_waits_for_its_lateness() {
        let t = timing();
        let mut cp = Checkpoint::initial(100 * MIN, &t);
        // closed until minute 98: the lookback starts at 93.
        assert_eq!(cp.watermark_ms, 93 * MIN);
        cp.watermark_ms = 97 * MIN;
        let live = BTreeMap::new();
        // At 99:59.999 the window 97..98 has been closed for 1:59.999: not yet.
        assert!(plan(100 * MIN - 1, &t, &cp, &live).is_empty());
        assert_eq!(starts(&plan(100 * MIN, &t, &cp, &live)), [(97, true)]);
    }

    #[test]
    fn catch_up_is_bounded_and_makes_progress() {
        let t = timing();
        let mut cp = Checkpoint::initial(0, &t);
        cp.watermark_ms = 0;
        let live = BTreeMap::new();
        let first = plan(1000 * MIN, &t, &cp, &live);
        assert_eq!(first.len(), 20);
        for p in &first {
            cp.record(&p.window, 0);
        }
        assert_eq!(cp.watermark_ms, 20 * MIN);
        let second = plan(1000 * MIN, &t, &cp, &live);
        assert_eq!(second[0].window.start_ms, 20 * MIN);
    }

    #[test]
    fn late_spans_make_a_window_roll_again_until_the_horizon() {
        let t = timing();
        let mut cp = Checkpoint::initial(0, &t);
        cp.watermark_ms = 100 * MIN;
        cp.windows.insert(90 * MIN, 10);
        cp.windows.insert(95 * MIN, 10);
        cp.windows.insert(96 * MIN, UNSURE);
        let live = BTreeMap::from([
            (60 * MIN, 3),  // before the horizon: never again
            (80 * MIN, 4),  // not recorded (pruned or older format), spans now: roll
            (90 * MIN, 10), // unchanged
            (95 * MIN, 12), // two late spans
        ]);
        let planned = plan(102 * MIN, &t, &cp, &live);
        assert_eq!(
            starts(&planned),
            [(80, false), (95, false), (96, false)],
            "{planned:?}"
        );
        cp.prune(&t);
        assert!(cp.windows.contains_key(&(90 * MIN)));
        cp.watermark_ms = 125 * MIN;
        cp.prune(&t);
        assert!(!cp.windows.contains_key(&(90 * MIN)));
        assert!(cp.windows.contains_key(&(95 * MIN)));
    }

    #[test]
    fn first_rolls_come_before_re_rolls() {
        let mut t = timing();
        t.max_windows_per_cycle = 2;
        let mut cp = Checkpoint::initial(0, &t);
        cp.watermark_ms = 100 * MIN;
        cp.windows.insert(99 * MIN, UNSURE);
        let planned = plan(110 * MIN, &t, &cp, &BTreeMap::new());
        assert_eq!(starts(&planned), [(100, true), (101, true)]);
    }

    #[test]
    fn recording_an_old_window_does_not_move_the_watermark() {
        let t = timing();
        let mut cp = Checkpoint::initial(0, &t);
        cp.watermark_ms = 100 * MIN;
        cp.record(&Window::containing(95 * MIN, 60), 7);
        assert_eq!(cp.watermark_ms, 100 * MIN);
        cp.record(&Window::containing(100 * MIN, 60), 7);
        assert_eq!(cp.watermark_ms, 101 * MIN);
    }
}
