//! Log throttling: a failure that repeats (Redis down, a producer writing garbage) is counted
//! every time but logged at most once per interval, so logs stay readable and cheap.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Allows one occurrence per interval, across threads.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: i64,
    last_ms: AtomicI64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as i64,
            last_ms: AtomicI64::new(i64::MIN / 2),
        }
    }

    /// Whether this occurrence may be logged: the first one of each interval.
    pub fn allow(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let last = self.last_ms.load(Ordering::Relaxed);
        now - last >= self.interval_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval() {
        let t = Throttle::new(Duration::from_secs(60));
        assert!(t.allow());
        assert!(!t.allow());
        let zero = Throttle::new(Duration::ZERO);
        assert!(zero.allow() && zero.allow());
    }
}
