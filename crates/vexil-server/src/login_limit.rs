//! Failed-login limits: per account and per client address, a sliding window of recent
//! failures. Over the limit, login answers 429 with `Retry-After` until the oldest failure
//! in the window ages out — without checking the password, so guessing stops paying.
//! Kept in memory per node (a cluster of N nodes allows up to N times the limit).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account within [`WINDOW`].
pub(crate) const PER_ACCOUNT: usize = 5;
/// Failures allowed per client address within [`WINDOW`] (many accounts from one place).
pub(crate) const PER_ADDRESS: usize = 20;
/// How long a failure counts.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most (oldest dropped first), so that a flood of distinct names cannot
/// exhaust memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn keys(account: &str, address: Option<&str>) -> [(String, usize); 2] {
        [
            (format!("account:{account}"), PER_ACCOUNT),
            (
                format!("address:{}", address.unwrap_or("unknown")),
                PER_ADDRESS,
            ),
        ]
    }

    /// `Err(retry_after)` when the account or the address is over its limit; otherwise the
    /// attempt is counted as a failure at once (check and count are one step, so parallel
    /// guesses cannot all pass before the first failure is recorded), and
    /// [`LoginLimiter::record_success`] takes it back.
    pub(crate) fn check(&self, account: &str, address: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for (key, limit) in Self::keys(account, address) {
            if let Some(times) = map.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= limit
                    && let Some(oldest) = times.front()
                {
                    wait = wait.max(WINDOW.saturating_sub(now.duration_since(*oldest)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        Self::count(&mut map, account, address, now);
        Ok(())
    }

    fn count(
        map: &mut HashMap<String, VecDeque<Instant>>,
        account: &str,
        address: Option<&str>,
        now: Instant,
    ) {
        if map.len() >= MAX_KEYS {
            // Drop the entries whose newest failure is oldest: cheap enough at this size,
            // and only reached under a flood.
            let mut by_age: Vec<(Instant, String)> = map
                .iter()
                .map(|(k, v)| (v.back().copied().unwrap_or(now), k.clone()))
                .collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(MAX_KEYS / 10) {
                map.remove(&k);
            }
        }
        for (key, limit) in Self::keys(account, address) {
            let times = map.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful attempt clears the account's failures and takes back the address's
    /// count of this attempt.
    pub(crate) fn record_success(&self, account: &str, address: Option<&str>) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("account:{account}"));
        if let Some(times) = map.get_mut(&format!("address:{}", address.unwrap_or("unknown"))) {
            times.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limit_then_success_clears_it() {
        let l = LoginLimiter::default();
        for _ in 0..PER_ACCOUNT {
            assert!(
                l.check("a@x", Some("1.2.3.4")).is_ok(),
                "each check counts as a failure"
            );
        }
        let wait = l.check("a@x", Some("5.6.7.8")).unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
        assert!(
            l.check("b@x", Some("5.6.7.8")).is_ok(),
            "other accounts unaffected"
        );
        l.record_success("a@x", Some("5.6.7.8"));
        assert!(l.check("a@x", Some("5.6.7.8")).is_ok());
    }

    #[test]
    fn address_limit_spans_accounts() {
        let l = LoginLimiter::default();
        for i in 0..PER_ADDRESS {
            assert!(l.check(&format!("user{i}@x"), Some("9.9.9.9")).is_ok());
        }
        assert!(l.check("new@x", Some("9.9.9.9")).is_err());
        assert!(l.check("new@x", Some("1.1.1.1")).is_ok());
    }

    #[test]
    fn successes_do_not_use_up_the_address() {
        let l = LoginLimiter::default();
        for _ in 0..PER_ADDRESS * 3 {
            assert!(l.check("ok@x", Some("7.7.7.7")).is_ok());
            l.record_success("ok@x", Some("7.7.7.7"));
        }
    }
}
