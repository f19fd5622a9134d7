//! The scaling decision for ingest (pure): Kafka consumer lag in, a replica count and a sentence
//! out. No I/O and no clock: the caller reads the offsets, passes the time, and applies the
//! result through the Deployment's `/scale` subresource.
//!
//! The contract is KEDA's Kafka scaler as the HPA evaluates it with its default behaviour
//! (its `lagThreshold`, `activationLagThreshold` and `offsetResetPolicy`, and the HPA's
//! tolerance and stabilization window), so whoever knows KEDA can predict it. In order,
//! [`Autoscaler::decide`]:
//!
//! 1. **Lag.** Per partition `end − committed`, never negative. A partition without a committed
//!    offset counts per [`OffsetReset`] (KEDA's `offsetResetPolicy`): `latest` → 1, `earliest` →
//!    its end offset. `totalLag` is the sum ([`total_lag`]).
//! 2. **Activity.** Active when `totalLag > activationLagThreshold`. It matters only when
//!    `minReplicas` is 0: inactive recommends 0, active at least 1.
//! 3. **Cap.** `totalLag` is capped at `partitions × lagThreshold`, so the recommendation never
//!    exceeds the partition count (a consumer without a partition only idles).
//! 4. **Formula.** `ceil(cappedLag / lagThreshold)`, unless
//!    `|1 − cappedLag / (lagThreshold × current)| ≤ tolerance` (0.1), which keeps the current
//!    count. At 0 replicas the ratio is undefined and the formula applies directly.
//! 5. **Bounds.** Clamped to `[minReplicas, maxReplicas]`: this is the recommendation.
//! 6. **Stabilization.** A recommendation at or above the current count applies at once. A lower
//!    one is replaced by the highest recommendation of the last `scaleDownStabilization` (the
//!    HPA's scale-down window), so replicas go down only once the window has seen no higher
//!    recommendation, and only as far as the window's highest. Scaling to 0 (inactive, min 0)
//!    waits for the same window. Like the HPA, the window starts out holding the current count,
//!    so a restarted operator does not scale down before one full window.
//!
//! Where this differs from KEDA + HPA, on purpose:
//! - KEDA caps with an integer division (`totalLag / lagThreshold > partitions`), so a lag
//!   between `P × T + 1` and `P × T + T − 1` still yields `P + 1` replicas; here the cap is exact.
//! - No scale-up rate limit (the HPA allows +100 % or +4 pods per 15 s, whichever is more): the
//!   recommendation applies at once.
//! - 0↔1 is decided at the same poll as 1↔N, and scaling to 0 waits for the stabilization window
//!   (KEDA: its own 30 s polling and a 300 s `cooldownPeriod` since the last active poll).
//! - [`Policy::from_spec`] counts an uncommitted partition as `earliest`, because ingest's
//!   consumer sets `auto.offset.reset=earliest` (`components/ingest/src/lib.rs`); KEDA's default
//!   is `latest`, so a ScaledObject for ingest must say `offsetResetPolicy: earliest` to agree.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::time::Duration;

use crate::crd::AutoscalingSpec;

/// The HPA's default tolerance (`--horizontal-pod-autoscaler-tolerance`): a lag within 10 % of
/// what the current replicas are meant to carry changes nothing.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// Where a consumer without a committed offset starts reading (KEDA's `offsetResetPolicy`, which
/// must match the consumer's `auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the end: such a partition counts as a lag of 1 (KEDA's rule).
    Latest,
    /// From the beginning: such a partition counts as its whole end offset (KEDA's rule, which
    /// ignores that retention may have moved the log start).
    Earliest,
}

/// One partition's offsets as read through the Kafka admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The log end offset (high watermark).
    pub end: i64,
    /// The group's committed offset; `None` when nothing is committed (librdkafka reports
    /// `Offset::Invalid`, KEDA sees −1).
    pub committed: Option<i64>,
}

impl PartitionLag {
    /// This partition's lag under KEDA's `getLagForPartition` rules, never negative (a committed
    /// offset past the end, e.g. after the topic was recreated, counts as 0).
    pub fn lag(&self, reset: OffsetReset) -> i64 {
        match (self.committed, reset) {
            (Some(committed), _) => self.end.saturating_sub(committed).max(0),
            (None, OffsetReset::Latest) => 1,
            (None, OffsetReset::Earliest) => self.end.max(0),
        }
    }
}

/// The lag summed over `partitions` (KEDA's `totalLag`, before any cap), never negative.
pub fn total_lag(partitions: &[PartitionLag], reset: OffsetReset) -> i64 {
    partitions.iter().fold(0_i64, |sum, partition| {
        sum.saturating_add(partition.lag(reset))
    })
}

/// What the autoscaler aims for; see the module documentation for how each field is used.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Fewest replicas; 0 lets the activation threshold decide 0↔1.
    pub min_replicas: i32,
    /// Most replicas (wins over `min_replicas` if they cross).
    pub max_replicas: i32,
    /// Target lag per replica, events; at least 1.
    pub lag_threshold: i64,
    /// Lag at or below which ingest is inactive (matters only with `min_replicas` 0).
    pub activation_lag_threshold: i64,
    /// Relative band around the target in which nothing changes ([`DEFAULT_TOLERANCE`]).
    pub tolerance: f64,
    /// How long a lower recommendation must stand alone before replicas go down.
    pub scale_down_stabilization: Duration,
    /// How a partition without a committed offset counts.
    pub offset_reset: OffsetReset,
}

impl Policy {
    /// The policy of a `spec.ingest.autoscaling`, with the HPA's tolerance and ingest's
    /// `auto.offset.reset` (earliest). Out-of-range numbers, which the CRD schema already
    /// rejects, are brought into range rather than trusted (a threshold of 0 would divide by 0).
    pub fn from_spec(spec: &AutoscalingSpec) -> Self {
        Self {
            min_replicas: spec.min_replicas.max(0),
            max_replicas: spec.max_replicas.max(0),
            lag_threshold: spec.lag_threshold.max(1),
            activation_lag_threshold: spec.activation_lag_threshold.max(0),
            tolerance: DEFAULT_TOLERANCE,
            scale_down_stabilization: Duration::from_secs(
                u64::try_from(spec.scale_down_stabilization_seconds).unwrap_or(0),
            ),
            offset_reset: OffsetReset::Earliest,
        }
    }

    /// `replicas` within `[min_replicas, max_replicas]`; `max_replicas` wins if they cross.
    fn bound(&self, replicas: i32) -> i32 {
        replicas.max(self.min_replicas).min(self.max_replicas)
    }

    /// Steps 1–5 of the module documentation: what the lag alone asks for.
    fn recommend(&self, partitions: &[PartitionLag], current: i32) -> Recommendation {
        let threshold = self.lag_threshold.max(1);
        let total_lag = total_lag(partitions, self.offset_reset);
        let partition_count = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
        let active = total_lag > self.activation_lag_threshold;
        let lag_cap = i64::from(partition_count).saturating_mul(threshold);
        let capped_lag = total_lag.min(lag_cap);
        let formula = ceil_div(capped_lag, threshold);
        let partitions_note = if total_lag > lag_cap {
            format!(" (lag capped at {partition_count} partitions × threshold)")
        } else {
            String::new()
        };

        let (raw, mut explanation) = if self.min_replicas == 0 && !active {
            let sentence = format!(
                "lag {total_lag} is not above the activation threshold {}",
                self.activation_lag_threshold
            );
            (0, sentence)
        } else if current > 0 && within_tolerance(capped_lag, threshold, current, self.tolerance) {
            let percent = self.tolerance * 100.0;
            let sentence = format!(
                "lag {total_lag} is within {percent}% of {current} × threshold {threshold}\
                 {partitions_note}"
            );
            (current, sentence)
        } else {
            let uncapped = ceil_div(total_lag, threshold);
            let mut sentence = format!("lag {total_lag} over threshold {threshold}");
            if uncapped > formula {
                sentence.push_str(&format!(
                    " → {}, capped at {partition_count} partitions",
                    replicas_phrase(uncapped)
                ));
            }
            (saturating_i32(formula), sentence)
        };
        let mut replicas = self.bound(raw);
        if replicas > raw {
            explanation.push_str(&format!(" → {raw}, raised to min {}", self.min_replicas));
        } else if replicas < raw {
            explanation.push_str(&format!(" → {raw}, capped at max {}", self.max_replicas));
        }
        if active && replicas == 0 && self.max_replicas > 0 {
            replicas = 1;
            explanation.push_str(" → at least 1 while active");
        }
        explanation.push_str(&format!(" → {}", replicas_phrase(i64::from(replicas))));
        Recommendation {
            replicas,
            total_lag,
            partitions: partition_count,
            explanation,
        }
    }
}

/// Steps 1–5 done, before the stabilization window.
struct Recommendation {
    replicas: i32,
    total_lag: i64,
    partitions: i32,
    explanation: String,
}

/// `ceil(numerator / denominator)` for a non-negative numerator and a positive denominator.
fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    numerator / denominator + i64::from(numerator % denominator != 0)
}

/// "1 replica", "4 replicas".
fn replicas_phrase(count: i64) -> String {
    if count == 1 {
        "1 replica".to_owned()
    } else {
        format!("{count} replicas")
    }
}

fn saturating_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The HPA's test: `|1 − lag / (threshold × current)| ≤ tolerance`; `current` must be positive.
fn within_tolerance(lag: i64, threshold: i64, current: i32, tolerance: f64) -> bool {
    // A ratio, computed in f64 as the HPA does.
    let ratio = lag as f64 / (threshold as f64 * f64::from(current));
    (1.0 - ratio).abs() <= tolerance
}

/// One decision of [`Autoscaler::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Replicas to run now; scale the Deployment to it when [`Decision::change`].
    pub desired: i32,
    /// What the lag alone asks for, before the stabilization window.
    pub recommended: i32,
    /// The summed lag, uncapped (for status and metrics).
    pub total_lag: i64,
    /// Partitions the lag was read from.
    pub partitions: i32,
    /// A sentence for status, Events and logs, e.g. `lag 45000 over threshold 10000 → 5
    /// replicas, capped at 4 partitions → 4 replicas; scaling up from 2`.
    pub reason: String,
    /// `desired` differs from the current replicas.
    pub change: bool,
}

/// The policy plus the recommendations of the last stabilization window (the state the HPA
/// keeps per target). One per scaled Deployment; feed it every poll.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    policy: Policy,
    /// `(time, recommendation)` of the polls within the window, oldest first.
    history: VecDeque<(Duration, i32)>,
    /// Whether the window has been seeded with the first current count.
    seeded: bool,
}

impl Autoscaler {
    /// An autoscaler with an empty window; the first [`decide`](Self::decide) seeds it with the
    /// current replicas.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            history: VecDeque::new(),
            seeded: false,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the policy (the spec changed) and keeps the window, so an edit does not cause
    /// an early scale down.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The replicas to run at `now` (time since any fixed epoch, never decreasing between
    /// calls), given every partition's offsets and the Deployment's current replicas.
    pub fn decide(&mut self, now: Duration, partitions: &[PartitionLag], current: i32) -> Decision {
        let current = current.max(0);
        let window = self.policy.scale_down_stabilization;
        if !self.seeded {
            self.history.push_back((now, current));
            self.seeded = true;
        }
        // Like the HPA: a sample counts while it is younger than the window.
        self.history
            .retain(|&(at, _)| at.saturating_add(window) > now);

        let recommendation = self.policy.recommend(partitions, current);
        let recommended = recommendation.replicas;
        let window_max = self
            .history
            .iter()
            .map(|&(_, replicas)| replicas)
            .fold(recommended, i32::max);
        self.history.push_back((now, recommended));

        let stabilized = if recommended >= current {
            recommended
        } else {
            window_max.min(current)
        };
        let desired = self.policy.bound(stabilized);

        let seconds = window.as_secs();
        let action = match desired.cmp(&current) {
            Ordering::Greater => format!("scaling up from {current}"),
            Ordering::Equal if recommended < current => {
                format!("keeping {current} until {seconds} s pass without a higher recommendation")
            }
            Ordering::Equal => format!("keeping {current}"),
            Ordering::Less if current > self.policy.max_replicas => {
                format!(
                    "scaling down from {current} to max {}",
                    self.policy.max_replicas
                )
            }
            Ordering::Less if desired == recommended => format!(
                "scaling down from {current}: no higher recommendation in the last {seconds} s"
            ),
            Ordering::Less => format!(
                "scaling down from {current} to {desired}, the highest recommendation of the \
                 last {seconds} s"
            ),
        };
        Decision {
            desired,
            recommended,
            total_lag: recommendation.total_lag,
            partitions: recommendation.partitions,
            reason: format!("{}; {action}", recommendation.explanation),
            change: desired != current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u64) -> Duration {
        Duration::from_secs(second)
    }

    fn policy(min: i32, max: i32, threshold: i64) -> Policy {
        Policy {
            min_replicas: min,
            max_replicas: max,
            lag_threshold: threshold,
            activation_lag_threshold: 0,
            tolerance: DEFAULT_TOLERANCE,
            scale_down_stabilization: Duration::from_secs(300),
            offset_reset: OffsetReset::Earliest,
        }
    }

    /// `count` partitions holding `total` lag between them, spread as evenly as integers allow.
    fn lagging(count: usize, total: i64) -> Vec<PartitionLag> {
        let count_i64 = i64::try_from(count).unwrap();
        (0..count_i64)
            .map(|index| {
                let lag = total / count_i64 + i64::from(index < total % count_i64);
                PartitionLag {
                    end: 1_000_000 + lag,
                    committed: Some(1_000_000),
                }
            })
            .collect()
    }

    fn once(policy: Policy, partitions: &[PartitionLag], current: i32) -> Decision {
        Autoscaler::new(policy).decide(Duration::ZERO, partitions, current)
    }

    #[test]
    fn keda_worked_examples_give_the_same_replicas() {
        // 12 partitions, threshold 10, lag 1000 → capped to 120 → 12.
        let decision = once(policy(1, 100, 10), &lagging(12, 1000), 1);
        assert_eq!((decision.desired, decision.total_lag), (12, 1000));
        // Lag 35 on 3 replicas: ratio 1.17 > 1.1 → ceil(3.5) = 4.
        assert_eq!(once(policy(1, 100, 10), &lagging(12, 35), 3).desired, 4);
    }

    #[test]
    fn lag_within_the_tolerance_band_keeps_the_current_replicas() {
        // (lag, current, desired) with threshold 10 000.
        let cases = [
            (40_000, 4, 4),
            (43_900, 4, 4), // ratio 1.0975
            (36_100, 4, 4), // ratio 0.9025
            (44_500, 4, 5), // ratio 1.11
            (35_500, 4, 4), // ratio 0.89 → 4 (ceil 3.55)
            (34_000, 4, 4), // ratio 0.85 → recommends 4 all the same
            (29_000, 4, 4), // recommends 3; the window holds 4
        ];
        for (lag, current, desired) in cases {
            let decision = once(policy(1, 10, 10_000), &lagging(12, lag), current);
            assert_eq!(decision.desired, desired, "lag {lag} on {current}");
        }
        let held = once(policy(1, 10, 10_000), &lagging(12, 43_900), 4);
        assert_eq!(
            held.reason,
            "lag 43900 is within 10% of 4 × threshold 10000 → 4 replicas; keeping 4"
        );
        assert!(!held.change);
    }

    #[test]
    fn replicas_are_capped_at_the_partition_count_and_at_max() {
        let decision = once(policy(1, 10, 10_000), &lagging(4, 45_000), 2);
        assert_eq!(decision.desired, 4);
        assert_eq!(decision.partitions, 4);
        assert_eq!(
            decision.reason,
            "lag 45000 over threshold 10000 → 5 replicas, capped at 4 partitions → 4 replicas; \
             scaling up from 2"
        );
        // KEDA's integer-division cap would give 5 here; the exact cap gives 4.
        assert_eq!(
            once(policy(1, 10, 10_000), &lagging(4, 49_999), 2).desired,
            4
        );

        let decision = once(policy(1, 3, 10_000), &lagging(12, 1_000_000), 1);
        assert_eq!(decision.desired, 3);
        assert!(
            decision.reason.contains("capped at max 3"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn replicas_never_go_below_min() {
        let decision = once(policy(2, 10, 10_000), &lagging(12, 0), 2);
        assert_eq!((decision.desired, decision.change), (2, false));
        let decision = once(policy(2, 10, 10_000), &lagging(12, 500), 1);
        assert_eq!(decision.desired, 2);
        assert!(
            decision.reason.contains("raised to min 2"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_partition_without_commit_counts_per_offset_reset_policy() {
        let partitions = [
            PartitionLag {
                end: 500,
                committed: None,
            },
            PartitionLag {
                end: 0,
                committed: None,
            },
            PartitionLag {
                end: 300,
                committed: Some(100),
            },
            // Committed past the end (topic recreated): 0, never negative.
            PartitionLag {
                end: 10,
                committed: Some(50),
            },
        ];
        assert_eq!(total_lag(&partitions, OffsetReset::Latest), 1 + 1 + 200);
        assert_eq!(total_lag(&partitions, OffsetReset::Earliest), 500 + 200);
        assert_eq!(total_lag(&[], OffsetReset::Earliest), 0);
    }

    #[test]
    fn from_spec_takes_the_spec_and_ingests_offset_reset() {
        let policy = Policy::from_spec(&AutoscalingSpec::default());
        assert_eq!(policy.lag_threshold, 10_000);
        assert_eq!(policy.activation_lag_threshold, 0);
        assert_eq!((policy.min_replicas, policy.max_replicas), (1, 10));
        assert_eq!(policy.scale_down_stabilization, Duration::from_secs(300));
        assert_eq!(policy.offset_reset, OffsetReset::Earliest);
        assert!((policy.tolerance - 0.1).abs() < f64::EPSILON);

        let broken = AutoscalingSpec {
            lag_threshold: 0,
            ..AutoscalingSpec::default()
        };
        assert_eq!(Policy::from_spec(&broken).lag_threshold, 1);
    }

    #[test]
    fn scale_up_applies_at_once() {
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        assert!(!autoscaler.decide(Duration::ZERO, &lagging(12, 0), 1).change);
        let decision = autoscaler.decide(at(10), &lagging(12, 52_000), 1);
        assert_eq!((decision.desired, decision.change), (6, true));
        assert_eq!(
            decision.reason,
            "lag 52000 over threshold 10000 → 6 replicas; scaling up from 1"
        );
    }

    #[test]
    fn scale_down_waits_until_the_window_saw_no_higher_recommendation() {
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        let mut current = 1;
        let mut changes = Vec::new();
        // Polls every 10 s: 50 000 at t = 0, 30 000 at t = 100, then 5 000.
        for second in (0..=700).step_by(10) {
            let lag = match second {
                0 => 50_000,
                100 => 30_000,
                _ => 5_000,
            };
            let decision = autoscaler.decide(at(second), &lagging(12, lag), current);
            if decision.change {
                changes.push((second, decision.desired));
                current = decision.desired;
            }
        }
        // Up at once; down to the window's highest (3, seen at t = 100) exactly 300 s after the
        // 5 was seen, then to 1 exactly 300 s after the 3.
        assert_eq!(changes, [(0, 5), (300, 3), (400, 1)]);
    }

    #[test]
    fn held_scale_down_says_why() {
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        autoscaler.decide(Duration::ZERO, &lagging(12, 50_000), 5);
        let held = autoscaler.decide(at(290), &lagging(12, 5_000), 5);
        assert_eq!(
            held.reason,
            "lag 5000 over threshold 10000 → 1 replica; keeping 5 until 300 s pass without a \
             higher recommendation"
        );
        let down = autoscaler.decide(at(300), &lagging(12, 5_000), 5);
        assert_eq!(down.desired, 1);
        assert!(
            down.reason
                .ends_with("scaling down from 5: no higher recommendation in the last 300 s"),
            "{}",
            down.reason
        );
    }

    #[test]
    fn a_new_autoscaler_does_not_scale_down_before_one_window() {
        // An operator restart finds 6 replicas and no lag: the window starts out holding 6.
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        assert_eq!(autoscaler.decide(Duration::ZERO, &[], 6).desired, 6);
        assert_eq!(autoscaler.decide(at(299), &[], 6).desired, 6);
        assert_eq!(autoscaler.decide(at(300), &[], 6).desired, 1);
    }

    #[test]
    fn a_zero_window_scales_down_at_once() {
        let mut zero = policy(1, 10, 10_000);
        zero.scale_down_stabilization = Duration::ZERO;
        let mut autoscaler = Autoscaler::new(zero);
        assert_eq!(
            autoscaler
                .decide(Duration::ZERO, &lagging(12, 50_000), 5)
                .desired,
            5
        );
        assert_eq!(autoscaler.decide(at(1), &lagging(12, 0), 5).desired, 1);
    }

    #[test]
    fn steady_lag_near_the_threshold_does_not_flap() {
        // 4 replicas, lag wandering ±9 % around 4 × 10 000 for an hour, polled every 10 s.
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        let wander = [0, 3_600, -2_000, 1_500, -3_600, 2_900, -900, 3_100, -3_300];
        for (index, second) in (0..3600).step_by(10).enumerate() {
            let lag = 40_000 + wander[index % wander.len()];
            let decision = autoscaler.decide(at(second), &lagging(12, lag), 4);
            assert!(!decision.change, "t={second}: {}", decision.reason);
        }
    }

    #[test]
    fn lag_oscillating_across_the_band_scales_once_and_holds() {
        // 35 000 and 48 000 alternating every minute on 4 replicas: up to 5 at the first
        // 48 000, then 48 000 is within tolerance of 5 and 35 000 is held by the window.
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        let mut current = 4;
        let mut changes = 0;
        for second in (0..3600).step_by(10) {
            let lag = if (second / 60) % 2 == 0 {
                35_000
            } else {
                48_000
            };
            let decision = autoscaler.decide(at(second), &lagging(12, lag), current);
            if decision.change {
                changes += 1;
                current = decision.desired;
            }
        }
        assert_eq!((changes, current), (1, 5));
    }

    #[test]
    fn activation_threshold_decides_between_zero_and_one() {
        let mut scale_to_zero = policy(0, 10, 10_000);
        scale_to_zero.activation_lag_threshold = 100;
        let mut autoscaler = Autoscaler::new(scale_to_zero);
        let mut current = 0;
        let mut step = |second: u64, lag: i64, autoscaler: &mut Autoscaler| {
            let decision = autoscaler.decide(at(second), &lagging(12, lag), current);
            current = decision.desired;
            decision
        };
        let idle = step(0, 100, &mut autoscaler);
        assert_eq!(idle.desired, 0);
        assert_eq!(
            idle.reason,
            "lag 100 is not above the activation threshold 100 → 0 replicas; keeping 0"
        );
        assert_eq!(step(10, 101, &mut autoscaler).desired, 1);
        // Inactive again: 0 only after a window without a higher recommendation.
        assert_eq!(step(20, 0, &mut autoscaler).desired, 1);
        assert_eq!(step(300, 0, &mut autoscaler).desired, 1);
        assert_eq!(step(310, 0, &mut autoscaler).desired, 0);
        // From 0 with a large lag, straight to the formula (no division by 0 replicas).
        assert_eq!(step(320, 30_000, &mut autoscaler).desired, 3);
    }

    #[test]
    fn zero_replicas_with_min_above_zero_scales_to_the_formula() {
        // The ratio is undefined at 0 replicas; the formula applies directly.
        assert_eq!(once(policy(1, 10, 10_000), &lagging(12, 0), 0).desired, 1);
        assert_eq!(
            once(policy(1, 10, 10_000), &lagging(12, 25_000), 0).desired,
            3
        );
    }

    #[test]
    fn no_partitions_means_min_replicas() {
        let decision = once(policy(1, 10, 10_000), &[], 1);
        assert_eq!(
            (decision.desired, decision.partitions, decision.total_lag),
            (1, 0, 0)
        );
    }

    #[test]
    fn replicas_above_max_come_down_to_max_at_once() {
        let decision = once(policy(1, 4, 10_000), &lagging(12, 1_000_000), 7);
        assert_eq!(decision.desired, 4);
        assert!(
            decision.reason.ends_with("scaling down from 7 to max 4"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_new_policy_keeps_the_window() {
        let mut autoscaler = Autoscaler::new(policy(1, 10, 10_000));
        autoscaler.decide(Duration::ZERO, &lagging(12, 50_000), 5);
        autoscaler.set_policy(policy(1, 8, 10_000));
        assert_eq!(autoscaler.decide(at(10), &lagging(12, 0), 5).desired, 5);
        assert_eq!(autoscaler.policy().max_replicas, 8);
    }
}
