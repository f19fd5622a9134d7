//! Ingest autoscaling, simulated: the built-in policy against KEDA's defaults on the same load
//! curves. Deterministic, no cluster needed:
//! `cargo bench -p panopticon-operator --bench autoscale_sim`.
//!
//! The model, in one-second steps:
//! - events arrive at r(t) events/s, spread evenly over 12 partitions;
//! - each ready replica consumes at most 34 200 events/s, ingest's measured rate per replica on
//!   the project's 2-core machine; replicas beyond the partition count add nothing;
//! - a replica added by a scale up starts consuming 15 s after it was asked for (both policies);
//!   a scale down removes the newest pods at once, as a ReplicaSet does;
//! - lag = produced − consumed, presented to the policies as per-partition end and committed
//!   offsets.
//!
//! Both policies take `AutoscalingSpec::default()` (min 1, max 10, lagThreshold 10 000,
//! activationLagThreshold 0, poll 10 s, stabilization 300 s) and start with 1 running replica:
//! - **built-in**: [`Autoscaler::decide`] every `pollIntervalSeconds`, applied at once;
//! - **KEDA**: the Kafka scaler's metric (its integer-division cap at the partition count) read
//!   by the HPA every 15 s (sync period) with the HPA defaults: tolerance 0.1, 300 s scale-down
//!   stabilization, scale-up limited to the larger of +100 % and +4 pods per 15 s; KEDA's own 30 s
//!   polling acts only on 0↔1 (300 s cooldown), which the default min of 1 never uses.
//!
//! Printed per curve and policy: the largest lag; "drain", the longest time the lag stayed above
//! lagThreshold without interruption (for step and spike, from the load change until the backlog
//! is worked off); the total time above lagThreshold; replica-seconds (pods asked for, starting
//! ones included); and scale events (changes of the replica count).

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

use std::f64::consts::PI;
use std::time::Duration;

use panopticon_operator::autoscale::policy::{
    Autoscaler, DEFAULT_TOLERANCE, OffsetReset, PartitionLag, Policy, total_lag,
};
use panopticon_operator::crd::AutoscalingSpec;

/// Partitions of the ingest topic.
const PARTITIONS: i64 = 12;
/// Events per second one ready ingest replica consumes (the ingest benchmark's per-replica rate
/// on the project's 2-core machine).
const EVENTS_PER_REPLICA_SECOND: i64 = 34_200;
/// From a scale up to the new pod consuming (both policies).
const STARTUP_SECONDS: u64 = 15;
/// kube-controller-manager's `--horizontal-pod-autoscaler-sync-period`.
const HPA_SYNC_SECONDS: u64 = 15;
/// The HPA's default scale-down stabilization window.
const HPA_DOWN_WINDOW_SECONDS: u64 = 300;
/// The HPA's default scale-up policies (per 15 s, the larger wins).
const HPA_UP_PODS: i32 = 4;
const HPA_UP_PERCENT: i32 = 100;
/// KEDA's default `pollingInterval` and `cooldownPeriod` (0↔1 only).
const KEDA_POLLING_SECONDS: u64 = 30;
const KEDA_COOLDOWN_SECONDS: u64 = 300;

/// A load curve: events/s at each second.
struct Curve {
    name: &'static str,
    shape: &'static str,
    seconds: u64,
    rate: fn(u64) -> i64,
}

fn step_rate(second: u64) -> i64 {
    if second < 600 { 20_000 } else { 200_000 }
}

fn ramp_rate(second: u64) -> i64 {
    let linear = |from: i64, to: i64, start: u64, length: u64| {
        from + (to - from) * i64::try_from(second - start).unwrap_or(0)
            / i64::try_from(length).unwrap_or(1)
    };
    match second {
        0..300 => 20_000,
        300..2100 => linear(20_000, 200_000, 300, 1800),
        2100..2700 => 200_000,
        2700..3600 => linear(200_000, 20_000, 2700, 900),
        _ => 20_000,
    }
}

fn spike_rate(second: u64) -> i64 {
    if (600..660).contains(&second) {
        300_000
    } else {
        20_000
    }
}

fn diurnal_rate(second: u64) -> i64 {
    let phase = 2.0 * PI * second as f64 / 7200.0;
    (110_000.0 - 90_000.0 * phase.cos()).round() as i64
}

fn curves() -> [Curve; 4] {
    [
        Curve {
            name: "step",
            shape: "20k ev/s, then 200k from t=600 s; 1 h",
            seconds: 3600,
            rate: step_rate,
        },
        Curve {
            name: "ramp",
            shape: "20k → 200k over 30 min from t=300 s, 10 min hold, down over 15 min; 70 min",
            seconds: 4200,
            rate: ramp_rate,
        },
        Curve {
            name: "spike",
            shape: "20k ev/s with 300k for 60 s at t=600 s; 30 min",
            seconds: 1800,
            rate: spike_rate,
        },
        Curve {
            name: "diurnal",
            shape: "110k − 90k·cos(2πt / 2 h): 20k → 200k → 20k; 2 h",
            seconds: 7200,
            rate: diurnal_rate,
        },
    ]
}

/// The consumer group and its pods.
struct Cluster {
    produced: i64,
    consumed: i64,
    /// When each pod consumes from, ascending (the newest last).
    ready_at: Vec<u64>,
}

impl Cluster {
    fn with_running_replicas(replicas: usize) -> Self {
        Self {
            produced: 0,
            consumed: 0,
            ready_at: vec![0; replicas],
        }
    }

    fn replicas(&self) -> i32 {
        i32::try_from(self.ready_at.len()).unwrap_or(i32::MAX)
    }

    fn lag(&self) -> i64 {
        self.produced - self.consumed
    }

    /// Produced and consumed split evenly over the partitions, as the admin API would show them.
    fn offsets(&self) -> Vec<PartitionLag> {
        let split = |total: i64, partition: i64| {
            total / PARTITIONS + i64::from(partition < total % PARTITIONS)
        };
        (0..PARTITIONS)
            .map(|partition| PartitionLag {
                end: split(self.produced, partition),
                committed: Some(split(self.consumed, partition)),
            })
            .collect()
    }

    fn scale_to(&mut self, replicas: i32, now: u64) {
        let replicas = usize::try_from(replicas).unwrap_or(0);
        self.ready_at.truncate(replicas);
        while self.ready_at.len() < replicas {
            self.ready_at.push(now + STARTUP_SECONDS);
        }
    }

    /// One second at `rate` events/s from `now`.
    fn advance(&mut self, now: u64, rate: i64) {
        let ready = self.ready_at.iter().filter(|&&at| at <= now).count();
        let consumers = i64::try_from(ready).unwrap_or(i64::MAX).min(PARTITIONS);
        self.produced += rate;
        self.consumed += self.lag().min(consumers * EVENTS_PER_REPLICA_SECOND);
    }
}

/// Something that sets the replica count; asked every second, acts on its own schedule.
trait Scaler {
    fn tick(&mut self, now: u64, partitions: &[PartitionLag], current: i32) -> Option<i32>;
}

/// (a) The operator's built-in policy.
struct BuiltIn {
    autoscaler: Autoscaler,
    poll_seconds: u64,
}

impl Scaler for BuiltIn {
    fn tick(&mut self, now: u64, partitions: &[PartitionLag], current: i32) -> Option<i32> {
        if !now.is_multiple_of(self.poll_seconds) {
            return None;
        }
        let decision = self
            .autoscaler
            .decide(Duration::from_secs(now), partitions, current);
        Some(decision.desired)
    }
}

/// (b) A ScaledObject with KEDA's defaults, and the HPA it creates with Kubernetes' defaults.
struct Keda {
    min_replica_count: i32,
    max_replica_count: i32,
    lag_threshold: i64,
    activation_lag_threshold: i64,
    /// The HPA's unstabilized recommendations of the last down window; `None` before its first
    /// sync (it then seeds the window with the current count).
    recommendations: Option<Vec<(u64, i32)>>,
    last_active: u64,
}

impl Keda {
    fn from_spec(spec: &AutoscalingSpec) -> Self {
        Self {
            min_replica_count: spec.min_replicas,
            max_replica_count: spec.max_replicas,
            lag_threshold: spec.lag_threshold,
            activation_lag_threshold: spec.activation_lag_threshold,
            recommendations: None,
            last_active: 0,
        }
    }

    /// The scaler's metric and activity (`getTotalLag` with the default options: the cap at the
    /// partition count compares with an integer division).
    fn metric(&self, partitions: &[PartitionLag]) -> (i64, bool) {
        // Every partition has a commit in the simulation; the reset policy does not matter.
        let lag = total_lag(partitions, OffsetReset::Latest);
        let upper_bound = i64::try_from(partitions.len()).unwrap_or(i64::MAX);
        let capped = if lag / self.lag_threshold > upper_bound {
            upper_bound * self.lag_threshold
        } else {
            lag
        };
        (capped, lag > self.activation_lag_threshold)
    }

    /// One HPA sync: `GetExternalPerPodMetricReplicas`, then the default behaviour
    /// (stabilization, then rate limits and bounds). Each sync is 15 s after the previous one,
    /// so no earlier scale up falls inside the 15 s policy period: the limit is taken from the
    /// current count.
    fn hpa_sync(&mut self, now: u64, metric: i64, current: i32) -> i32 {
        let ratio = metric as f64 / (self.lag_threshold as f64 * f64::from(current));
        let proposal = if (1.0 - ratio).abs() > DEFAULT_TOLERANCE {
            i32::try_from((metric + self.lag_threshold - 1) / self.lag_threshold)
                .unwrap_or(i32::MAX)
        } else {
            current
        };
        let recommendations = self
            .recommendations
            .get_or_insert_with(|| vec![(now, current)]);
        recommendations.retain(|&(at, _)| at + HPA_DOWN_WINDOW_SECONDS > now);
        let down_limit = recommendations
            .iter()
            .map(|&(_, replicas)| replicas)
            .fold(proposal, i32::max);
        recommendations.push((now, proposal));
        let stabilized = current.max(proposal).min(down_limit);

        let hpa_min = self.min_replica_count.max(1);
        let mut hpa_max = self.max_replica_count;
        if stabilized > current {
            let up_limit = (current + HPA_UP_PODS).max(current * (100 + HPA_UP_PERCENT) / 100);
            hpa_max = hpa_max.min(up_limit);
        }
        stabilized.max(hpa_min).min(hpa_max)
    }
}

impl Scaler for Keda {
    fn tick(&mut self, now: u64, partitions: &[PartitionLag], current: i32) -> Option<i32> {
        let (metric, active) = self.metric(partitions);
        if now.is_multiple_of(KEDA_POLLING_SECONDS) {
            if active {
                self.last_active = now;
                if current == 0 {
                    return Some(self.min_replica_count.max(1));
                }
            } else if current > 0
                && self.min_replica_count == 0
                && now >= self.last_active + KEDA_COOLDOWN_SECONDS
            {
                return Some(0);
            }
        }
        // The HPA does nothing for a target at 0 replicas.
        if now.is_multiple_of(HPA_SYNC_SECONDS) && current > 0 {
            return Some(self.hpa_sync(now, metric, current));
        }
        None
    }
}

/// What one run of a curve through a scaler came to.
struct Outcome {
    max_lag: i64,
    longest_above_seconds: u64,
    above_seconds: u64,
    replica_seconds: i64,
    scale_events: u32,
}

fn simulate(curve: &Curve, scaler: &mut dyn Scaler, lag_threshold: i64) -> Outcome {
    let mut cluster = Cluster::with_running_replicas(1);
    let mut outcome = Outcome {
        max_lag: 0,
        longest_above_seconds: 0,
        above_seconds: 0,
        replica_seconds: 0,
        scale_events: 0,
    };
    let mut run_above = 0;
    for now in 0..curve.seconds {
        let current = cluster.replicas();
        if let Some(replicas) = scaler.tick(now, &cluster.offsets(), current)
            && replicas != current
        {
            cluster.scale_to(replicas, now);
            outcome.scale_events += 1;
        }
        outcome.replica_seconds += i64::from(cluster.replicas());
        cluster.advance(now, (curve.rate)(now));
        let lag = cluster.lag();
        outcome.max_lag = outcome.max_lag.max(lag);
        if lag > lag_threshold {
            run_above += 1;
            outcome.above_seconds += 1;
            outcome.longest_above_seconds = outcome.longest_above_seconds.max(run_above);
        } else {
            run_above = 0;
        }
    }
    outcome
}

fn ratio(builtin: i64, keda: i64) -> String {
    if keda == 0 {
        return if builtin == 0 {
            "=".to_owned()
        } else {
            "∞".to_owned()
        };
    }
    format!("{:.2}", builtin as f64 / keda as f64)
}

fn main() {
    let spec = AutoscalingSpec::default();
    let poll_seconds = u64::try_from(spec.poll_interval_seconds).unwrap_or(10);
    println!(
        "Ingest autoscaling simulation: {PARTITIONS} partitions, {EVENTS_PER_REPLICA_SECOND} \
         events/s per ready replica, {STARTUP_SECONDS} s startup."
    );
    println!(
        "Spec defaults: min {}, max {}, lagThreshold {}, activation {}, poll {poll_seconds} s, \
         stabilization {} s. KEDA: HPA sync {HPA_SYNC_SECONDS} s, tolerance {DEFAULT_TOLERANCE}, \
         scale-up max(+{HPA_UP_PERCENT} %, +{HPA_UP_PODS}) per 15 s, 0↔1 polling \
         {KEDA_POLLING_SECONDS} s.",
        spec.min_replicas,
        spec.max_replicas,
        spec.lag_threshold,
        spec.activation_lag_threshold,
        spec.scale_down_stabilization_seconds,
    );
    println!("drain = longest time lag stayed above lagThreshold; above = total time above it.\n");
    println!(
        "{:<8} {:<9} {:>12} {:>9} {:>9} {:>11} {:>7}",
        "curve", "policy", "max lag", "drain s", "above s", "replica-s", "scales"
    );
    let mut verdicts = Vec::new();
    for curve in curves() {
        let mut builtin = BuiltIn {
            autoscaler: Autoscaler::new(Policy::from_spec(&spec)),
            poll_seconds,
        };
        let mut keda = Keda::from_spec(&spec);
        let ours = simulate(&curve, &mut builtin, spec.lag_threshold);
        let theirs = simulate(&curve, &mut keda, spec.lag_threshold);
        for (policy, outcome) in [("built-in", &ours), ("KEDA", &theirs)] {
            println!(
                "{:<8} {:<9} {:>12} {:>9} {:>9} {:>11} {:>7}",
                curve.name,
                policy,
                outcome.max_lag,
                outcome.longest_above_seconds,
                outcome.above_seconds,
                outcome.replica_seconds,
                outcome.scale_events,
            );
        }
        println!(
            "{:<8} {:<9} {:>12} {:>9} {:>9} {:>11}",
            "",
            "ratio",
            ratio(ours.max_lag, theirs.max_lag),
            ratio(
                i64::try_from(ours.longest_above_seconds).unwrap_or(i64::MAX),
                i64::try_from(theirs.longest_above_seconds).unwrap_or(i64::MAX),
            ),
            ratio(
                i64::try_from(ours.above_seconds).unwrap_or(i64::MAX),
                i64::try_from(theirs.above_seconds).unwrap_or(i64::MAX),
            ),
            ratio(ours.replica_seconds, theirs.replica_seconds),
        );
        verdicts.push((
            curve,
            ours.max_lag <= theirs.max_lag,
            ours.replica_seconds <= theirs.replica_seconds,
        ));
    }
    println!("\nGoal: built-in ≤ KEDA on max lag and on replica-seconds for every curve.");
    for (curve, lag_ok, replicas_ok) in verdicts {
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "{:<8} max lag {:<7} replica-s {:<7} ({})",
            curve.name,
            mark(lag_ok),
            mark(replicas_ok),
            curve.shape
        );
    }
}
