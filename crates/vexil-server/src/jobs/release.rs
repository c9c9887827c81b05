//! Release control's job: applies scheduled changes and approved change requests when
//! their time comes (`manage::pending::apply_due`), within a second, exactly once across
//! the cluster, and at the next start for those whose time passed while every node was
//! down.

use std::sync::Arc;
use std::time::Duration;

use super::Job;
use crate::manage::pending;
use crate::store::Store;

/// How often due changes are looked for: a cheap indexed read; the write lock is taken
/// only when one is due.
const EVERY: Duration = Duration::from_millis(200);

pub(crate) fn release(store: &Arc<Store>) -> Vec<Job> {
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
    vec![apply]
}
