//! The `webhooks` job: every 100 ms each node makes a cheap read (`manage::webhooks::
//! work_due`); when there is work, the node holding the `webhooks` lease turns new audit
//! entries into deliveries and sends the due ones (`manage::webhooks`). The lease lasts
//! 30 s and is renewed before every attempt, so that exactly one node delivers; if that
//! node dies, another takes over when the lease expires and sends what was not confirmed
//! (at least once). `webhook-purge` deletes, every hour, the deliveries that ended more
//! than 30 days ago.

use std::sync::Arc;
use std::time::Duration;

use super::Job;
use crate::manage::webhooks::{self as hooks, Retry};
use crate::store::{Store, new_id};
use crate::webhook::Sender;

/// How often each node looks for work.
const EVERY: Duration = Duration::from_millis(100);
/// How often deliveries that ended more than 30 days ago are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How long one run keeps starting attempts before it lets the next run begin.
const BUDGET_MS: i64 = 10_000;

pub(crate) fn webhooks(store: &Arc<Store>, sender: &Arc<Sender>, retry: Retry) -> Vec<Job> {
    let (s, snd) = (store.clone(), sender.clone());
    let node: Arc<str> = Arc::from(new_id());
    let deliver = Job::new("webhooks", EVERY, move || {
        let (store, sender, node) = (s.clone(), snd.clone(), node.clone());
        async move { run(&store, &sender, &node, retry).await }
    });
    let s = store.clone();
    let purge = Job::new("webhook-purge", PURGE_EVERY, move || {
        let store = s.clone();
        async move {
            let n = hooks::purge(&store).await?;
            if n > 0 {
                tracing::info!(deliveries = n, "purged old webhook deliveries");
            }
            Ok(())
        }
    });
    vec![deliver, purge]
}

async fn run(store: &Store, sender: &Sender, node: &str, retry: Retry) -> anyhow::Result<()> {
    if !hooks::work_due(store).await? {
        return Ok(());
    }
    if !hooks::claim(store, node).await {
        return Ok(());
    }
    let made = hooks::enqueue(store, sender).await?;
    let sent = hooks::deliver_due(store, sender, retry, BUDGET_MS, node).await?;
    if made + sent > 0 {
        tracing::debug!(made, sent, "webhook deliveries");
    }
    Ok(())
}
