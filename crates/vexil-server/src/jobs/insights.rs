//! The insights jobs: every node flushes what it counted (its snapshots' evaluation counts,
//! SDK reports and tracked events it received) every `--insights-flush-ms`; additions commute,
//! so every node flushes its own. The purge (idempotent on every node) drops minute buckets
//! after 48 hours and hour buckets after `--insights-retention-days`.

use std::sync::Arc;
use std::time::Duration;

use super::Job;
use crate::clock::now_ms;
use crate::insights::{Count, Insights, Settings};
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
    let (s, settings) = (store.clone(), insights.settings);
    let purge = Job::new("insights-purge", PURGE_EVERY, move || {
        let store = s.clone();
        async move {
            purge(&store, now_ms(), &settings).await?;
            Ok(())
        }
    });
    vec![flush, purge]
}

/// Takes the snapshots' evaluation counts and everything else pending and writes it; on
/// failure the counts go back to wait for the next flush. The work runs on a task of its
/// own under `Insights::flushing`: a job stopped mid-flush (at shutdown) does not cancel a
/// write whose counts were already taken, and the final flush waits for it.
pub(crate) async fn flush_insights(
    store: &Arc<Store>,
    snapshots: &Arc<Snapshots>,
    insights: &Arc<Insights>,
) -> anyhow::Result<()> {
    let (store, snapshots, insights) = (store.clone(), snapshots.clone(), insights.clone());
    tokio::spawn(async move {
        let _flushing = insights.flushing.lock().await;
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
        if let Err(e) = store::insights::save(&store, &taken.0, &taken.1).await {
            insights.restore(taken);
            return Err(e.into());
        }
        Ok(())
    })
    .await?
}

/// Drops buckets past their keeping time at `now`; returns how many rows went. When each
/// variation was last served is kept as long as the stale rules look back, if longer than
/// the retention (else a flag evaluated within their window would read as unused).
pub(crate) async fn purge(store: &Store, now: i64, settings: &Settings) -> anyhow::Result<u64> {
    let mut conn = store.read().await?;
    let days = |n: u32| now - i64::from(n) * 24 * store::insights::HOUR_MS;
    let usage_days = settings
        .retention_days
        .max(settings.stale_unused_days)
        .max(settings.stale_single_variation_days);
    Ok(store::insights::purge(
        &mut conn,
        now - store::insights::MINUTES_KEPT_MS,
        days(settings.retention_days),
        days(usage_days),
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::insights::{Addition, HOUR_MS, Resolution, buckets};

    fn addition(minute: i64, count: i64) -> Addition {
        Addition {
            environment_id: "env".into(),
            flag_key: "flag".into(),
            variation: "on".into(),
            event_key: String::new(),
            minute,
            count,
            total: 0.0,
        }
    }

    #[tokio::test]
    async fn minutes_go_after_48_hours_and_hours_after_the_retention() {
        let path = std::env::temp_dir().join(format!("vexil-purge-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let now = 1_000 * 24 * HOUR_MS;
        // 3 days, 10 days and 100 days ago, each in its minute and its hour bucket; two
        // minutes of one hour add up in the hour.
        let rows = [
            addition(now - 100 * 24 * HOUR_MS, 1),
            addition(now - 10 * 24 * HOUR_MS, 2),
            addition(now - 3 * 24 * HOUR_MS, 3),
            addition(now - 60_000, 4),
            addition(now - 120_000, 5),
        ];
        let mut sorted = rows.to_vec();
        sorted.sort_by_key(|r| r.minute);
        store::insights::save(&store, &sorted, &[]).await.unwrap();
        let count = |resolution| {
            let store = store.clone();
            async move {
                let mut conn = store.read().await.unwrap();
                buckets(&mut conn, "env", "flag", resolution, (0, i64::MAX))
                    .await
                    .unwrap()
                    .iter()
                    .map(|b| (b.bucket, b.count))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(count(Resolution::Minute).await.len(), 5);
        assert_eq!(count(Resolution::Hour).await.len(), 4);
        let settings = |retention_days| Settings {
            retention_days,
            ..Settings::default()
        };
        purge(&store, now, &settings(90)).await.unwrap();
        let minutes = count(Resolution::Minute).await;
        assert_eq!(minutes, [(now - 120_000, 5), (now - 60_000, 4)]);
        let hours: Vec<i64> = count(Resolution::Hour).await.iter().map(|h| h.1).collect();
        assert_eq!(hours, [2, 3, 9], "the 100-day-old hour is gone");
        purge(&store, now, &settings(5)).await.unwrap();
        let hours: Vec<i64> = count(Resolution::Hour).await.iter().map(|h| h.1).collect();
        assert_eq!(hours, [3, 9]);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
