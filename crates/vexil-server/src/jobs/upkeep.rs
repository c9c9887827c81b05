//! The server's own upkeep jobs: following other nodes' changes, recording API key usage,
//! and removing ended sessions.

use std::sync::Arc;
use std::time::Duration;

use super::Job;
use crate::keys::KeyRing;
use crate::snapshots::Snapshots;
use crate::store::{self, Store};

/// How often snapshots and keys are checked against the database: a safety net behind the
/// commit hook (this node's writes) and LISTEN/NOTIFY (other nodes', on PostgreSQL).
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// How often `last_used_at` of API keys used since is written (idempotent on every node).
const KEY_USAGE_EVERY: Duration = Duration::from_secs(5);
/// How often ended sessions never presented again are removed (idempotent on every node;
/// ended sessions are refused when presented in any case).
const SESSION_PURGE_EVERY: Duration = Duration::from_secs(600);

/// The upkeep jobs of one node.
pub(crate) fn upkeep(
    store: &Arc<Store>,
    snapshots: &Arc<Snapshots>,
    keys: &Arc<KeyRing>,
    session_idle: Duration,
) -> Vec<Job> {
    let (s, snaps, ring) = (store.clone(), snapshots.clone(), keys.clone());
    let sync = Job::new("sync", SYNC_EVERY, move || {
        let (store, snapshots, keys) = (s.clone(), snaps.clone(), ring.clone());
        async move {
            // Both are tried: a failing snapshot reload must not keep revoked keys alive.
            let snapshots = snapshots.sync(&store).await;
            keys.sync(&store).await?;
            Ok(snapshots?)
        }
    });
    let (s, ring) = (store.clone(), keys.clone());
    let usage = Job::new("key-usage", KEY_USAGE_EVERY, move || {
        let (store, keys) = (s.clone(), ring.clone());
        async move { Ok(keys.flush_usage(&store).await?) }
    });
    let s = store.clone();
    let purge = Job::new("session-purge", SESSION_PURGE_EVERY, move || {
        let store = s.clone();
        async move { Ok(purge_sessions(&store, session_idle).await?) }
    });
    vec![sync, usage, purge]
}

async fn purge_sessions(store: &Store, idle: Duration) -> store::StoreResult<()> {
    let now = store::now_ms();
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX / 2);
    let mut conn = store.read().await?;
    store::sessions::delete_expired(
        &mut conn,
        &vexil_core::time::format_rfc3339(now),
        &vexil_core::time::format_rfc3339(now.saturating_sub(idle_ms)),
    )
    .await?;
    Ok(())
}
