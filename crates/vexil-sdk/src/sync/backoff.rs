//! Exponential backoff with jitter for reconnecting: the n-th consecutive failure waits a
//! random time in `[d/2, d]` where `d = min(max, initial · 2ⁿ)`, so that many SDK instances
//! cut off together do not reconnect in lockstep, and no wait is ever zero.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            // Seeded from std's per-process random keys: no random-number crate needed for
            // jitter, and two processes started together still differ.
            rng: RandomState::new().hash_one(std::process::id()) | 1,
        }
    }

    /// The wait before the next attempt, counting one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self
            .initial
            .checked_mul(1u32 << exp)
            .map_or(self.max, |d| d.min(self.max));
        let half = ceiling / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            self.random() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Forgets past failures (after a connection that stayed healthy).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// xorshift64*: plenty for jitter.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for ceiling in ceilings {
            let d = b.next_delay().as_millis();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d} ms not in [{}, {ceiling}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.len() > 10, "jitter should vary: {delays:?}");
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
