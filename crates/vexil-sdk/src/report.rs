//! What the SDK tells the server: the evaluations it served locally (counted in the
//! snapshots by `vexil-core`, one atomic add each, and reported every `metrics_interval` to
//! `POST /api/v1/sdk/metrics`) and the events `Client::track` queued (sent about every
//! second to `POST /api/v1/track`, in batches of at most 1,000). Both are sent once more
//! when the client closes. Counts go in reports of at most 1,000 flags. A report or batch
//! that fails for a reason that may pass (the network, a timeout, a server error, 408, 429)
//! is kept for the next attempt — at most `MAX_FLAGS` flags and `MAX_QUEUED` events wait
//! (beyond, new flags are not counted and the oldest events go), so an unreachable server
//! cannot make either grow without bound; one the server refuses (another 4xx) is dropped,
//! so it cannot block what comes after it. `track` drops events whose key the server would
//! refuse.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use vexil_core::Context;

use crate::client::system_now_ms as now_ms;
use crate::store::Shared;
use crate::sync::http::Http;

/// Most events one request carries (the server's limit), and most bytes of events (the
/// server takes bodies of up to 1 MiB).
const BATCH: usize = 1000;
const BATCH_BYTES: usize = 900 * 1024;
/// Most events waiting; beyond, the oldest are dropped.
const MAX_QUEUED: usize = 10_000;
/// Most flags one report names (the server's limit).
const REPORT_FLAGS: usize = 1000;
/// Most flags whose counts wait to be reported.
const MAX_FLAGS: usize = 10_000;
/// How often queued events are sent.
const EVENTS_EVERY: Duration = Duration::from_secs(1);

/// Tracked events waiting to be sent, as the JSON the server takes.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    events: Mutex<VecDeque<Value>>,
}

impl Queue {
    pub(crate) fn push(&self, key: &str, context: &Context, value: Option<f64>) {
        if !vexil_core::is_valid_key(key) {
            tracing::debug!(key, "tracked event dropped: not a valid event key");
            return;
        }
        let mut event = json!({"key": key, "context": context, "timestamp": now_rfc3339()});
        if let Some(v) = value.filter(|v| v.is_finite()) {
            event["value"] = json!(v);
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= MAX_QUEUED {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// At most `n` events from the front, and no more than fit in one request body (the
    /// server takes 1 MiB; at least one event, so that one too large is refused and goes).
    fn take(&self, n: usize) -> Vec<Value> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut bytes = 0;
        let mut count = 0;
        for event in events.iter().take(n) {
            bytes += event.to_string().len() + 1;
            if count > 0 && bytes > BATCH_BYTES {
                break;
            }
            count += 1;
        }
        events.drain(..count).collect()
    }

    fn is_empty(&self) -> bool {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

fn now_rfc3339() -> String {
    vexil_core::time::format_rfc3339(now_ms())
}

/// The background reporter of one client.
pub(crate) struct Reporter {
    shared: Arc<Shared>,
    http: Http,
    every: Duration,
    /// Counts taken but not yet accepted by the server, by flag and variation.
    pending: BTreeMap<String, BTreeMap<String, u64>>,
    /// Since when `pending` counts.
    since: i64,
}

impl Reporter {
    pub(crate) fn new(shared: Arc<Shared>, http: Http, every: Duration) -> Reporter {
        Reporter {
            shared,
            http,
            every,
            pending: BTreeMap::new(),
            since: now_ms(),
        }
    }

    /// Reports until `shutdown`, then reports what is left once.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics =
            tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        metrics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events =
            tokio::time::interval_at(tokio::time::Instant::now() + EVENTS_EVERY, EVENTS_EVERY);
        events.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = metrics.tick() => self.report().await,
                _ = events.tick() => self.send_events().await,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        self.send_events().await;
        self.report().await;
    }

    /// Takes the counts since the last report and sends them with any that failed before.
    async fn report(&mut self) {
        let current = self.shared.snapshot.load_full();
        let pending = &mut self.pending;
        self.shared.tally.drain(
            current.as_ref().map(|l| &*l.snapshot),
            |flag, variation, n| {
                if pending.len() < MAX_FLAGS || pending.contains_key(flag) {
                    *pending
                        .entry(flag.to_owned())
                        .or_default()
                        .entry(variation.to_owned())
                        .or_default() += n;
                }
            },
        );
        let end = now_ms();
        while !self.pending.is_empty() {
            let keys: Vec<String> = self.pending.keys().take(REPORT_FLAGS).cloned().collect();
            let flags: BTreeMap<&String, &BTreeMap<String, u64>> = keys
                .iter()
                .filter_map(|k| self.pending.get_key_value(k))
                .collect();
            let body = json!({
                "start": vexil_core::time::format_rfc3339(self.since),
                "end": vexil_core::time::format_rfc3339(end.max(self.since)),
                "flags": flags,
            });
            match self.http.send_metrics(&body).await {
                Err(e) if e.transient() => {
                    tracing::debug!(error = %e, "evaluation counts not sent; kept for the next report");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, flags = keys.len(), "evaluation counts refused; dropped");
                }
                Ok(()) => {}
            }
            for k in &keys {
                self.pending.remove(k);
            }
        }
        self.since = end;
    }

    /// Sends the queued events in batches; a batch that fails goes back to the queue.
    async fn send_events(&mut self) {
        while !self.shared.events.is_empty() {
            let batch = self.shared.events.take(BATCH);
            if let Err(e) = self.http.send_events(&json!({"events": batch})).await {
                if !e.transient() {
                    tracing::debug!(error = %e, events = batch.len(), "tracked events refused; dropped");
                    continue;
                }
                tracing::debug!(error = %e, events = batch.len(), "tracked events not sent; kept");
                let mut queue = self
                    .shared
                    .events
                    .events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                for event in batch.into_iter().rev() {
                    if queue.len() < MAX_QUEUED {
                        queue.push_front(event);
                    }
                }
                return;
            }
        }
    }
}
