//! Release control's jobs. `scheduled-changes` applies scheduled changes and approved
//! change requests when their time comes (`manage::pending::apply_due`), within a second,
//! exactly once across the cluster, and at the next start for those whose time passed while
//! every node was down. `release-guard` checks the live release plans every
//! `--release-guard-ms` (`manage::release::check_all`): while any plan is live, every node
//! first writes what it counted (so that the guard reads fresh counts), then the one node
//! that holds the guard's lease checks.

use std::sync::Arc;
use std::time::Duration;

use super::{Job, flush_insights};
use crate::clock::now_ms;
use crate::insights::Insights;
use crate::manage::{pending, release as plans};
use crate::snapshots::Snapshots;
use crate::store::{Store, new_id};

/// How often due changes are looked for: a cheap indexed read; the write lock is taken
/// only when one is due.
const EVERY: Duration = Duration::from_millis(200);

pub(crate) fn release(
    store: &Arc<Store>,
    snapshots: &Arc<Snapshots>,
    insights: &Arc<Insights>,
    guard_every: Duration,
) -> Vec<Job> {
    let s = store.clone();
    let apply = Job::new("scheduled-changes", EVERY, move || {
        let store = s.clone();
        async move {
            let n = pending::apply_due(&store).await?;
            if n > 0 {
                tracing::info!(settled = n, "applied due changes");
            }
            Ok(())
        }
    });
    // This node's name for the lease: one per process.
    let node: Arc<str> = Arc::from(new_id());
    let (s, snaps, ins) = (store.clone(), snapshots.clone(), insights.clone());
    let guard = Job::new("release-guard", guard_every, move || {
        let (store, snapshots, insights, node) =
            (s.clone(), snaps.clone(), ins.clone(), node.clone());
        async move { guard(&store, &snapshots, &insights, &node, guard_every).await }
    });
    vec![apply, guard]
}

/// One check of the release guard on this node.
async fn guard(
    store: &Arc<Store>,
    snapshots: &Arc<Snapshots>,
    insights: &Arc<Insights>,
    node: &str,
    every: Duration,
) -> anyhow::Result<()> {
    if !plans::any_live(store).await? {
        return Ok(());
    }
    flush_insights(store, snapshots, insights).await?;
    // Held for three checks: another node takes over when this one stops checking.
    let now = now_ms();
    let until = now + 3 * i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
    let held = plans::claim_guard(store, node, now, until).await?;
    if !held {
        return Ok(());
    }
    let steps = plans::check_all(store).await?;
    if steps > 0 {
        tracing::info!(steps, "the release guard moved release plans");
    }
    Ok(())
}
