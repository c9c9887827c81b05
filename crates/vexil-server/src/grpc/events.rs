//! `EventStream`: `provider_ready` on connect, then a `configuration_change` naming the
//! changed flags (`data.flags`, keyed by flag key) whenever the key's environment advances,
//! and `keep_alive` after a quiet interval. flagd's providers flush what they cached for
//! the flags a change names, so whenever the exact set is unknown — a reload of the whole
//! environment, a segment change, a subscriber that fell behind the broadcast — the change
//! names every flag the key may see. The stream ends when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use prost_types::Struct;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, broadcast, watch};
use tokio::time::Instant;

use super::convert;
use crate::keys::KeyInfo;
use crate::snapshots::{Snapshots, Update};

/// One message of the stream, whichever protocol version carries it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) kind: &'static str,
    pub(crate) data: Option<Struct>,
}

/// What one subscriber holds between two messages.
struct Subscriber {
    snapshots: Arc<Snapshots>,
    key: Arc<KeyInfo>,
    updates: broadcast::Receiver<Arc<Update>>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Duration,
    ready_sent: bool,
    /// Held while the stream lives: the server's bound on open event streams.
    _permit: OwnedSemaphorePermit,
}

/// The events for `key` until shutdown (or until the caller hangs up and drops the stream).
pub(crate) fn stream(
    snapshots: Arc<Snapshots>,
    key: Arc<KeyInfo>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Duration,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Event> + Send + 'static {
    // Subscribed before `provider_ready` is sent, so that no change after it is missed.
    let subscriber = Subscriber {
        updates: snapshots.subscribe(),
        snapshots,
        key,
        shutdown,
        keep_alive,
        ready_sent: false,
        _permit: permit,
    };
    futures_util::stream::unfold(subscriber, Subscriber::next)
}

impl Subscriber {
    async fn next(mut self) -> Option<(Event, Subscriber)> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Some((event("provider_ready", None), self));
        }
        // Measured from the last message, whatever other environments' updates arrive.
        let quiet_until = Instant::now() + self.keep_alive;
        loop {
            if *self.shutdown.borrow_and_update() {
                return None;
            }
            tokio::select! {
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                update = self.updates.recv() => match update {
                    Ok(update) if update.environment_id == self.key.environment_id => {
                        if let Some(data) = self.changed(&update) {
                            return Some((event("configuration_change", Some(data)), self));
                        }
                    }
                    Ok(_) => {}
                    // Fell behind: what was missed is unknown, so every flag may have changed.
                    Err(RecvError::Lagged(_)) => {
                        let data = self.everything();
                        return Some((event("configuration_change", Some(data)), self));
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(quiet_until) => {
                    return Some((event("keep_alive", None), self));
                }
            }
        }
    }

    /// `data` naming the flags `update` changed that the key may see; `None` when it changed
    /// none of them (a client key and server-side flags only).
    fn changed(&self, update: &Update) -> Option<Struct> {
        let flags_only = update
            .changes
            .as_ref()
            .filter(|changes| changes.iter().all(|c| c.kind == "flag"));
        let Some(changes) = flags_only else {
            return Some(self.everything());
        };
        let env = self.snapshots.get(&self.key.environment_id);
        let mut flags = Map::new();
        for change in changes {
            let present = env
                .as_ref()
                .is_some_and(|e| e.visible_to(crate::keys::KeyKind::Server, &change.key));
            let visible = env
                .as_ref()
                .is_some_and(|e| e.visible_to(self.key.kind, &change.key));
            // A flag gone from the snapshot cannot tell a client key whether it was
            // client-side, so only server keys hear of deletions.
            let kind = match (visible, present, self.key.kind.is_server()) {
                (true, _, _) => "update",
                (false, false, true) => "delete",
                _ => continue,
            };
            flags.insert(change.key.clone(), json!({ "type": kind }));
        }
        (!flags.is_empty()).then(|| data(flags))
    }

    /// `data` naming every flag the key may see.
    fn everything(&self) -> Struct {
        let flags = self
            .snapshots
            .get(&self.key.environment_id)
            .map(|env| {
                env.snapshot
                    .flags()
                    .filter(|f| self.key.kind.is_server() || f.client_side)
                    .map(|f| (f.key.to_owned(), json!({ "type": "update" })))
                    .collect()
            })
            .unwrap_or_default();
        data(flags)
    }
}

fn event(kind: &'static str, data: Option<Struct>) -> Event {
    Event { kind, data }
}

/// `{"flags": {…}}`.
fn data(flags: Map<String, Value>) -> Struct {
    let mut data = Map::new();
    data.insert("flags".into(), Value::Object(flags));
    convert::object_to_struct(&data)
}
