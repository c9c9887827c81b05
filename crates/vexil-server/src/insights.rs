//! Insights in memory: the counts waiting for the next flush. Evaluations are counted in the
//! snapshots themselves (`vexil_core::Detail::count`, one atomic add) and drained here by
//! the flush job; SDK reports and tracked events arrive here directly, merged under a lock
//! off the evaluation path. The pending map is bounded: past `MAX_PENDING` distinct bucket
//! keys (or `MAX_PENDING_PER_ENV` of one environment), new keys are dropped and counted in
//! `dropped` (a flush every 10 s empties it).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::insights::{Addition, MINUTE_MS, Served, finite_sum};

/// Most distinct (environment, flag, minute, variation, event) keys waiting for a flush, in
/// all and per environment (so that one environment's keys cannot crowd out the others').
const MAX_PENDING: usize = 200_000;
const MAX_PENDING_PER_ENV: usize = 50_000;

/// `(environment id, flag key, minute, variation, event key)`: the table's key order, so a
/// flush writes rows in one stable order.
type Key = (String, String, i64, String, String);

#[derive(Debug, Default)]
struct Pending {
    counts: BTreeMap<Key, (i64, f64)>,
    /// Keys in `counts` per environment.
    per_env: std::collections::HashMap<String, usize>,
    /// When each `(environment, flag, variation)` was last served (ms).
    usage: BTreeMap<(String, String, String), i64>,
}

/// What a flush takes: the counts, and the last-evaluated notes.
pub(crate) type Taken = (Vec<Addition>, Vec<Served>);

/// How insights are kept and when a flag is stale (`Config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) flush_every: Duration,
    pub(crate) retention_days: u32,
    pub(crate) stale_unused_days: u32,
    pub(crate) stale_single_variation_days: u32,
    pub(crate) stale_temporary_days: u32,
}

impl Settings {
    pub(crate) fn from_config(config: &crate::Config) -> Settings {
        Settings {
            flush_every: Duration::from_millis(config.insights_flush_ms),
            retention_days: config.insights_retention_days,
            stale_unused_days: config.stale_unused_days,
            stale_single_variation_days: config.stale_single_variation_days,
            stale_temporary_days: config.stale_temporary_days,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&crate::Config::for_tests("sqlite::memory:"))
    }
}

/// The counts not yet written, and the settings.
#[derive(Debug, Default)]
pub(crate) struct Insights {
    pending: Mutex<Pending>,
    dropped: AtomicU64,
    pub(crate) settings: Settings,
    /// Held by a flush from taking the counts until they are written (or put back).
    pub(crate) flushing: tokio::sync::Mutex<()>,
}

/// One count to add (see [`Addition`]); `at` is any time in its minute (ms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count<'a> {
    pub(crate) environment_id: &'a str,
    pub(crate) flag_key: &'a str,
    pub(crate) variation: &'a str,
    /// `""` for evaluations.
    pub(crate) event_key: &'a str,
    pub(crate) at: i64,
    pub(crate) count: u64,
    pub(crate) total: f64,
}

impl Insights {
    pub(crate) fn new(settings: Settings) -> Insights {
        Insights {
            settings,
            ..Insights::default()
        }
    }

    /// Adds counts; evaluations also note when the flag was last evaluated.
    pub(crate) fn add<'a>(&self, counts: impl IntoIterator<Item = Count<'a>>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in counts {
            let key: Key = (
                c.environment_id.to_owned(),
                c.flag_key.to_owned(),
                c.at - c.at.rem_euclid(MINUTE_MS),
                c.variation.to_owned(),
                c.event_key.to_owned(),
            );
            let n = i64::try_from(c.count).unwrap_or(i64::MAX);
            let full = pending.counts.len() >= MAX_PENDING
                || pending
                    .per_env
                    .get(c.environment_id)
                    .is_some_and(|k| *k >= MAX_PENDING_PER_ENV);
            match pending.counts.get_mut(&key) {
                Some(cell) => {
                    cell.0 = cell.0.saturating_add(n);
                    cell.1 = finite_sum(cell.1, c.total);
                }
                None if full => {
                    self.dropped.fetch_add(c.count, Ordering::Relaxed);
                    continue;
                }
                None => {
                    pending.counts.insert(key, (n, c.total));
                    *pending
                        .per_env
                        .entry(c.environment_id.to_owned())
                        .or_default() += 1;
                }
            }
            if c.event_key.is_empty() {
                let at = pending
                    .usage
                    .entry((
                        c.environment_id.to_owned(),
                        c.flag_key.to_owned(),
                        c.variation.to_owned(),
                    ))
                    .or_insert(c.at);
                *at = (*at).max(c.at);
            }
        }
    }

    /// Takes everything pending, in the table's key order.
    pub(crate) fn take(&self) -> Taken {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let rows = pending
            .counts
            .into_iter()
            .map(
                |((environment_id, flag_key, minute, variation, event_key), (count, total))| {
                    Addition {
                        environment_id,
                        flag_key,
                        variation,
                        event_key,
                        minute,
                        count,
                        total,
                    }
                },
            )
            .collect();
        let usage = pending
            .usage
            .into_iter()
            .map(|((env, flag, variation), at)| (env, flag, variation, at))
            .collect();
        (rows, usage)
    }

    /// Puts back what a failed flush took, so that the next one writes it.
    pub(crate) fn restore(&self, (rows, usage): Taken) {
        self.add(rows.iter().map(|r| Count {
            environment_id: &r.environment_id,
            flag_key: &r.flag_key,
            variation: &r.variation,
            event_key: &r.event_key,
            at: r.minute,
            count: u64::try_from(r.count).unwrap_or(0),
            total: r.total,
        }));
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (env, flag, variation, at) in usage {
            let slot = pending.usage.entry((env, flag, variation)).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Counts dropped because the pending map was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
