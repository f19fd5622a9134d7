//! A mergeable latency sketch: DDSketch's logarithmic buckets with 1 % relative accuracy.
//!
//! A positive value `x` falls in bucket `i = ceil(ln x / ln γ)` with `γ = (1 + α) / (1 − α)`;
//! the bucket's representative value `2γⁱ / (γ + 1)` is within `α` (relative) of every value in
//! it. A sketch is a count per bucket (plus zeros, min, max, sum), so two sketches merge by
//! adding counts: the sketch of the union of two data sets *is* the sum of their sketches,
//! exactly. Any quantile read from a sketch is within `α` of a value of rank `⌊q·(n−1)⌋`.
//!
//! The bucket index of a span's duration is stored on the span at ingest
//! ([`crate::SpanDocument::duration_bucket`]), so rollups can build sketches with a `terms`
//! aggregation instead of reading raw spans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Relative accuracy of every quantile.
pub const RELATIVE_ACCURACY: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Values at or below this are counted as zero (durations are in milliseconds: 1 ns).
pub const MIN_POSITIVE: f64 = 1e-6;

/// The bucket of a positive value (`None` for zero, negative or non-finite values).
pub fn bucket_index(value: f64) -> Option<i32> {
    if !value.is_finite() || value <= MIN_POSITIVE {
        return None;
    }
    Some((value.ln() / gamma().ln()).ceil() as i32)
}

/// The representative value of a bucket.
pub fn bucket_value(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

/// A latency sketch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Count per bucket index.
    pub buckets: BTreeMap<i32, u64>,
    /// Values at or below [`MIN_POSITIVE`].
    pub zeros: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch from its parts (a stored sketch, or aggregation results): bucket counts, zero
    /// count, and the exact sum, min and max of the values.
    pub fn from_parts(
        buckets: impl IntoIterator<Item = (i32, u64)>,
        zeros: u64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Self {
        let mut sketch = Self {
            zeros,
            count: zeros,
            ..Self::default()
        };
        for (index, count) in buckets {
            if count > 0 {
                *sketch.buckets.entry(index).or_insert(0) += count;
                sketch.count += count;
            }
        }
        if sketch.count > 0 {
            sketch.sum = sum;
            sketch.min = min;
            sketch.max = max;
        }
        sketch
    }

    /// Adds one value (negative and non-finite values count as zero).
    pub fn add(&mut self, value: f64) {
        let v = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        match bucket_index(v) {
            Some(i) => *self.buckets.entry(i).or_insert(0) += 1,
            None => self.zeros += 1,
        }
        self.record_extremes(v, 1);
    }

    /// Adds `count` values of a bucket (what a `terms` aggregation on the stored index gives).
    pub fn add_bucket(&mut self, index: i32, count: u64) {
        if count == 0 {
            return;
        }
        *self.buckets.entry(index).or_insert(0) += count;
        let v = bucket_value(index);
        self.record_extremes(v, count);
    }

    fn record_extremes(&mut self, v: f64, count: u64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += count;
        self.sum += v * count as f64;
    }

    /// Adds another sketch: the result is the sketch of both data sets together.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        for (i, c) in &other.buckets {
            *self.buckets.entry(*i).or_insert(0) += c;
        }
        self.zeros += other.zeros;
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The value at quantile `q` (0..=1), within 1 % of the value of rank `⌊q·(n−1)⌋`;
    /// `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (i, c) in &self.buckets {
            seen += c;
            if seen > rank {
                // Never report outside the observed range.
                return Some(bucket_value(*i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn bucket_values_are_within_the_accuracy_of_their_members() {
        for v in [0.001, 0.5, 1.0, 4.31, 99.9, 1234.5, 3.6e6] {
            let rep = bucket_value(bucket_index(v).unwrap());
            assert!(
                (rep - v).abs() <= RELATIVE_ACCURACY * v * 1.000_001,
                "{v} -> {rep}"
            );
        }
        assert_eq!(bucket_index(0.0), None);
        assert_eq!(bucket_index(-3.0), None);
        assert_eq!(bucket_index(f64::NAN), None);
    }

    #[test]
    fn known_durations() {
        let mut s = Sketch::new();
        for ms in 1..=100 {
            s.add(f64::from(ms));
        }
        assert_eq!(s.count, 100);
        let p50 = s.quantile(0.5).unwrap();
        let p99 = s.quantile(0.99).unwrap();
        assert!((p50 - 50.0).abs() <= 0.5, "{p50}");
        assert!((p99 - 99.0).abs() <= 0.99, "{p99}");
        assert_eq!(s.quantile(0.0), Some(1.0));
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(
            mut values in prop::collection::vec(0.01f64..1e6, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut s = Sketch::new();
            for v in &values { s.add(*v); }
            values.sort_by(f64::total_cmp);
            let want = exact(&values, q);
            let got = s.quantile(q).unwrap();
            prop_assert!((got - want).abs() <= RELATIVE_ACCURACY * want * 1.000_001, "q {} want {} got {}", q, want, got);
        }

        #[test]
        fn merging_equals_sketching_the_union(
            parts in prop::collection::vec(prop::collection::vec(0.0f64..1e5, 0..60), 1..6),
        ) {
            let mut merged = Sketch::new();
            let mut whole = Sketch::new();
            for part in &parts {
                let mut s = Sketch::new();
                for v in part { s.add(*v); whole.add(*v); }
                merged.merge(&s);
            }
            prop_assert_eq!(&merged.buckets, &whole.buckets);
            prop_assert_eq!(merged.zeros, whole.zeros);
            prop_assert_eq!(merged.count, whole.count);
            for q in [0.5, 0.9, 0.95, 0.99] {
                prop_assert_eq!(merged.quantile(q), whole.quantile(q));
            }
        }
    }
}
