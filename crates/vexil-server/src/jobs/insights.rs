//! The insights jobs: every node flushes what it counted (its snapshots' evaluation counts,
//! SDK reports and tracked events it received) every `--insights-flush-ms`; additions commute,
//! so every node flushes its own. The purge (idempotent on every node) drops minute buckets
//! after 48 hours and hour buckets after `--insights-retention-days`.

use std::sync::Arc;
use std::time::Duration;

use super::Job;
use crate::clock::now_ms;
use crate::insights::{Count, Insights};
use crate::snapshots::Snapshots;
use crate::store::{self, Store};

/// How often old buckets are purged.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// The flush and purge jobs.
pub(crate) fn insights(
    store: &Arc<Store>,
    snapshots: &Arc<Snapshots>,
    insights: &Arc<Insights>,
) -> Vec<Job> {
    let (s, snaps, ins) = (store.clone(), snapshots.clone(), insights.clone());
    let flush = Job::new("insights-flush", insights.settings.flush_every, move || {
        let (store, snapshots, insights) = (s.clone(), snaps.clone(), ins.clone());
        async move { flush_insights(&store, &snapshots, &insights).await }
    });
    let (s, retention_days) = (store.clone(), insights.settings.retention_days);
    let purge = Job::new("insights-purge", PURGE_EVERY, move || {
        let store = s.clone();
        async move {
            purge(&store, now_ms(), retention_days).await?;
            Ok(())
        }
    });
    vec![flush, purge]
}

/// Takes the snapshots' evaluation counts and everything else pending and writes it; on
/// failure the counts go back to wait for the next flush.
pub(crate) async fn flush_insights(
    store: &Store,
    snapshots: &Snapshots,
    insights: &Insights,
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut drained = Vec::new();
    snapshots.drain_counts(|env, flag, variation, n| {
        drained.push((env.to_owned(), flag.to_owned(), variation.to_owned(), n));
    });
    insights.add(drained.iter().map(|(env, flag, variation, n)| Count {
        environment_id: env,
        flag_key: flag,
        variation,
        event_key: "",
        at: now,
        count: *n,
        total: 0.0,
    }));
    let taken = insights.take();
    if taken.0.is_empty() && taken.1.is_empty() {
        return Ok(());
    }
    if let Err(e) = store::insights::save(store, &taken.0, &taken.1).await {
        insights.restore(taken);
        return Err(e.into());
    }
    Ok(())
}

/// Drops buckets past their keeping time at `now`; returns how many rows went.
pub(crate) async fn purge(store: &Store, now: i64, retention_days: u32) -> anyhow::Result<u64> {
    let mut conn = store.read().await?;
    let hours_before = now - i64::from(retention_days) * 24 * store::insights::HOUR_MS;
    Ok(store::insights::purge(&mut conn, now - store::insights::MINUTES_KEPT_MS, hours_before).await?)
}
