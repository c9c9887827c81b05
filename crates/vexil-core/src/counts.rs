//! Evaluation counts: one atomic counter per variation of every compiled flag, incremented by
//! [`Detail::count`](crate::Detail::count) without a lock or an allocation, and drained by
//! whoever reports them (the server's insights flush, the SDK's metrics reporter). A
//! [`Tally`] also drains snapshots that were replaced while requests still held them, so no
//! count is lost when a flag changes between two drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::compile::Snapshot;

/// The counters of one compiled flag, one per variation, in the flag's variation order.
#[derive(Debug, Default)]
pub(crate) struct Counters(Box<[AtomicU64]>);

impl Counters {
    pub(crate) fn new(variations: usize) -> Counters {
        Counters((0..variations).map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn cell(&self, index: usize) -> Option<&AtomicU64> {
        self.0.get(index)
    }

    /// Takes every non-zero count, leaving zero.
    fn drain(&self, mut f: impl FnMut(usize, u64)) {
        for (index, cell) in self.0.iter().enumerate() {
            // A cheap load first: most variations of most flags have nothing to take, and a
            // swap would take the cache line exclusively.
            if cell.load(Ordering::Relaxed) != 0 {
                let n = cell.swap(0, Ordering::Relaxed);
                if n != 0 {
                    f(index, n);
                }
            }
        }
    }
}

/// The counter an evaluation result adds to when it is counted; compares equal to any other
/// (two results are the same result whatever they would count into).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counter<'s>(pub(crate) Option<&'s AtomicU64>);

impl PartialEq for Counter<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Counter<'_> {
    pub(crate) fn add(self) {
        if let Some(cell) = self.0 {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Snapshot {
    /// Takes the evaluation counts accumulated since the last drain, as
    /// `f(flag key, variation key, count)` for every non-zero count.
    pub fn drain_counts(&self, mut f: impl FnMut(&str, &str, u64)) {
        for flag in self.flags.values() {
            flag.counts
                .drain(|index, n| f(&flag.key, &flag.variations[index].0, n));
        }
    }
}

/// The snapshots of one evaluation source whose counts are still to be taken: the current
/// one (passed to [`Tally::drain`]) and the replaced ones that requests may still hold.
#[derive(Debug, Default)]
pub struct Tally {
    retired: Mutex<Vec<Arc<Snapshot>>>,
}

impl Tally {
    /// Keeps a replaced snapshot until its counts are taken and nobody else holds it.
    pub fn retire(&self, snapshot: Arc<Snapshot>) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(snapshot);
    }

    /// Takes the counts of `current` and of every retired snapshot (see
    /// [`Snapshot::drain_counts`]); a flag shared by several snapshots is counted once.
    /// Retired snapshots nobody else holds any more are dropped after their last drain.
    pub fn drain(&self, current: Option<&Snapshot>, mut f: impl FnMut(&str, &str, u64)) {
        let retired = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|p| p.into_inner()));
        let mut kept = Vec::new();
        for snapshot in retired {
            // Checked before draining: once only this reference is left, nothing can count
            // into it any more, so this drain is its last.
            let last = Arc::strong_count(&snapshot) == 1;
            snapshot.drain_counts(&mut f);
            if !last {
                kept.push(snapshot);
            }
        }
        if let Some(current) = current {
            current.drain_counts(&mut f);
        }
        if !kept.is_empty() {
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(kept);
        }
    }
}
