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

/// Start-up steps (templates, topics) retried until the dependency answers: runs `step` until
/// it succeeds, fails for good (`retryable` false), or `shutdown` is cancelled (`Ok(None)`).
/// Each failure is logged as a warning naming `what`.
pub async fn retry_until_ready<T, E, F, Fut>(
    what: &str,
    shutdown: &tokio_util::sync::CancellationToken,
    retryable: impl Fn(&E) -> bool,
    mut step: F,
) -> Result<Option<T>, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let backoff = Backoff::default();
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(value) => return Ok(Some(value)),
            Err(error) if retryable(&error) => {
                tracing::warn!(%error, attempt, "cannot {what} yet, retrying");
                attempt += 1;
                tokio::select! {
                    () = tokio::time::sleep(backoff.delay(attempt.min(6))) => {},
                    () = shutdown.cancelled() => return Ok(None),
                }
            }
            Err(error) => return Err(error),
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
