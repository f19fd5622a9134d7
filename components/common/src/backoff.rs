//! Jittered exponential backoff ("full jitter"): attempt n waits a random time in
//! `[base·2ⁿ / 2, base·2ⁿ]`, capped at `max`. Half of the delay is kept fixed so that a retry
//! never hammers a struggling server immediately.

use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_is_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        for (attempt, ceiling_ms) in [(0, 100), (1, 200), (3, 800), (6, 5000), (40, 5000)] {
            for _ in 0..50 {
                let d = b.delay(attempt).as_millis() as u64;
                assert!(
                    d >= ceiling_ms / 2 && d <= ceiling_ms,
                    "attempt {attempt}: {d}ms"
                );
            }
        }
    }
}
