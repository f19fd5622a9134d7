//! Pure planning and assembly of a metric series from rollups and raw spans.
//!
//! Contract:
//! - Points sit on buckets aligned to the interval since the epoch (UTC). The first bucket
//!   holds `from`, the last holds `to`; the data read is `[first bucket start, to]`. Every
//!   bucket has a point, zero-valued when it has no spans.
//! - A rollup window (`ROLLUP_BUCKET_SECONDS`) is *covered* when it lies inside that range,
//!   the interval is a multiple of its length (so windows tile buckets), and its rollup
//!   documents count at least the SERVER spans the engine holds for it now. Spans are only
//!   ever added (late arrivals) or removed (retention deletes whole backing indices, and traces
//!   are kept for less time than metrics); so fewer rollup requests than spans means late spans
//!   the rollup has not seen, and more means spans already deleted, which the rollup still
//!   remembers. Covered windows are read from rollups; every other span is aggregated raw.
//!   The two sets are disjoint windows, so nothing is missed or counted twice, and a rollup
//!   that is late, missing, or stale after late spans is simply not used.
//! - A bucket's percentiles come from the merge of its windows' sketches and its raw sketch
//!   (both DDSketch with 1 % relative accuracy), never from averaged percentiles.

use std::collections::{BTreeMap, BTreeSet};

use panopticon_model::sketch::Sketch;

/// Interval buckets of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Start of the first bucket (epoch ms, a multiple of the interval).
    pub start_ms: i64,
    pub interval_ms: i64,
    pub buckets: usize,
    /// Inclusive end of the data (the request's `to`).
    pub to_ms: i64,
}

impl Layout {
    pub fn new(from_ms: i64, to_ms: i64, interval_ms: i64) -> Self {
        let start_ms = from_ms - from_ms.rem_euclid(interval_ms);
        let buckets = usize::try_from((to_ms - start_ms) / interval_ms + 1).unwrap_or(0);
        Self {
            start_ms,
            interval_ms,
            buckets,
            to_ms,
        }
    }

    pub fn bucket_start(&self, index: usize) -> i64 {
        self.start_ms + self.interval_ms * index as i64
    }

    /// The bucket holding `t_ms`, if it is in the layout.
    pub fn bucket_of(&self, t_ms: i64) -> Option<usize> {
        if t_ms < self.start_ms || t_ms > self.to_ms {
            return None;
        }
        usize::try_from((t_ms - self.start_ms) / self.interval_ms).ok()
    }

    /// The end of the last rollup window that ends at or before `to` (exclusive), or the
    /// start when none does.
    pub fn full_windows_end(&self, window_ms: i64) -> i64 {
        let end = (self.to_ms + 1) - (self.to_ms + 1).rem_euclid(window_ms);
        end.max(self.start_ms)
    }
}

/// The measurements of one bucket or window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub errors: u64,
    pub sketch: Sketch,
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.errors += other.errors;
        self.sketch.merge(&other.sketch);
    }
}

/// Which spans come from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Starts of the windows read from rollups.
    pub covered: BTreeSet<i64>,
    /// Half-open `[start, end)` ranges aggregated raw; together with the covered windows they
    /// tile `[layout.start_ms, layout.to_ms]`.
    pub raw_ranges: Vec<(i64, i64)>,
}

/// Decides coverage from the engine's current SERVER-span count per window (`span_counts`,
/// windows without spans absent) and the summed request count of each window's rollup
/// documents (`rollup_counts`, windows without documents absent). `window_ms` of `None` means
/// rollups are not usable.
pub fn plan(
    layout: &Layout,
    window_ms: Option<i64>,
    span_counts: &BTreeMap<i64, u64>,
    rollup_counts: &BTreeMap<i64, u64>,
) -> Coverage {
    let end_exclusive = layout.to_ms + 1;
    let mut covered = BTreeSet::new();
    if let Some(w) = window_ms {
        let mut start = layout.start_ms;
        let full_end = layout.full_windows_end(w);
        while start < full_end {
            let spans = span_counts.get(&start).copied().unwrap_or(0);
            if rollup_counts
                .get(&start)
                .is_some_and(|r| *r > 0 && *r >= spans)
            {
                covered.insert(start);
            }
            start += w;
        }
    }
    // Raw ranges: the gaps between covered windows.
    let mut raw_ranges = Vec::new();
    let mut cursor = layout.start_ms;
    let w = window_ms.unwrap_or(0);
    for start in &covered {
        if *start > cursor {
            raw_ranges.push((cursor, *start));
        }
        cursor = start + w;
    }
    if cursor < end_exclusive {
        raw_ranges.push((cursor, end_exclusive));
    }
    Coverage {
        covered,
        raw_ranges,
    }
}

/// Puts covered windows' rollup stats and raw bucket stats into the layout's buckets.
pub fn assemble(
    layout: &Layout,
    covered_windows: impl IntoIterator<Item = (i64, Stats)>,
    raw_buckets: impl IntoIterator<Item = (i64, Stats)>,
) -> Vec<Stats> {
    let mut buckets = vec![Stats::default(); layout.buckets];
    for (t, stats) in covered_windows.into_iter().chain(raw_buckets) {
        if let Some(b) = layout.bucket_of(t).and_then(|i| buckets.get_mut(i)) {
            b.merge(&stats);
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    #[test]
    fn layout_aligns_to_the_interval() {
        // 10:02:30 .. 10:14:10 at 5 minutes → 10:00, 10:05, 10:10.
        let base = 1_764_064_800_000; // a multiple of an hour
        let l = Layout::new(base + 150_000, base + 850_000, 5 * MIN);
        assert_eq!(l.start_ms, base);
        assert_eq!(l.buckets, 3);
        assert_eq!(l.bucket_of(base + 850_000), Some(2));
        assert_eq!(l.bucket_of(base + 850_001), None);
        assert_eq!(l.full_windows_end(MIN), base + 14 * MIN);
    }

    #[test]
    fn covered_windows_and_raw_gaps_tile_the_range() {
        let base = 1_764_064_800_000;
        let l = Layout::new(base, base + 5 * MIN + 30_000, MIN);
        let spans = BTreeMap::from([
            (base, 10),
            (base + MIN, 5),
            (base + 2 * MIN, 7),
            (base + 3 * MIN, 1),
        ]);
        // Window 2 has a late span its rollup has not seen yet; window 3 was never rolled.
        let rollups = BTreeMap::from([(base, 10), (base + MIN, 5), (base + 2 * MIN, 6)]);
        let c = plan(&l, Some(MIN), &spans, &rollups);
        assert_eq!(c.covered, BTreeSet::from([base, base + MIN]));
        assert_eq!(
            c.raw_ranges,
            vec![(base + 2 * MIN, base + 5 * MIN + 30_001)]
        );
    }

    #[test]
    fn without_rollups_everything_is_raw() {
        let l = Layout::new(0, 10 * MIN, MIN);
        let c = plan(&l, None, &BTreeMap::new(), &BTreeMap::new());
        assert!(c.covered.is_empty());
        assert_eq!(c.raw_ranges, vec![(0, 10 * MIN + 1)]);
    }

    proptest! {
        /// Whatever the coverage, covered windows and raw ranges never overlap and leave no
        /// gap in the requested range.
        #[test]
        fn coverage_partitions_the_range(
            from in 0i64..100 * MIN,
            len in 0i64..200 * MIN,
            interval_windows in 1i64..5,
            counts in proptest::collection::vec((0u64..3, 0u64..3), 0..300),
        ) {
            let interval = interval_windows * MIN;
            let l = Layout::new(from, from + len, interval);
            let mut spans = BTreeMap::new();
            let mut rollups = BTreeMap::new();
            for (i, (s, r)) in counts.iter().enumerate() {
                let t = l.start_ms + i as i64 * MIN;
                if *s > 0 { spans.insert(t, *s); }
                if *r > 0 { rollups.insert(t, *r); }
            }
            let c = plan(&l, Some(MIN), &spans, &rollups);
            let mut pieces: Vec<(i64, i64)> = c.covered.iter().map(|s| (*s, s + MIN)).collect();
            pieces.extend(c.raw_ranges.iter().copied());
            pieces.sort();
            prop_assert_eq!(pieces.first().map(|p| p.0), Some(l.start_ms));
            prop_assert_eq!(pieces.last().map(|p| p.1), Some(l.to_ms + 1));
            for pair in pieces.windows(2) {
                prop_assert_eq!(pair[0].1, pair[1].0);
            }
            for s in &c.covered {
                prop_assert!(s + MIN <= l.to_ms + 1);
            }
        }
    }

    #[test]
    fn assembly_merges_sketches_per_bucket() {
        let l = Layout::new(0, 2 * MIN - 1, 2 * MIN);
        let stats = |values: &[f64], errors| {
            let mut sketch = Sketch::new();
            for v in values {
                sketch.add(*v);
            }
            Stats { errors, sketch }
        };
        let b = assemble(
            &l,
            [(0, stats(&[1.0, 2.0], 1))],
            [(0, stats(&[100.0, 200.0], 0)), (5 * MIN, stats(&[9.0], 0))],
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].sketch.count, 4);
        assert_eq!(b[0].errors, 1);
        // The median of the merged data, not an average of medians.
        let mut all = Sketch::new();
        for v in [1.0, 2.0, 100.0, 200.0] {
            all.add(v);
        }
        assert_eq!(b[0].sketch.quantile(0.5), all.quantile(0.5));
    }
}
