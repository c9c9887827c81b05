//! `EventStream`: `provider_ready` on connect, then a `configuration_change` naming the
//! changed flags (`data.flags`, keyed by flag key, each `{"type": "update"}` or
//! `{"type": "delete"}`) whenever the key's environment advances, and `keep_alive` after a
//! quiet interval. flagd's providers flush what they cached for the flags a change names,
//! and only those, so each subscriber remembers which flags its key could see as of its
//! last message: whenever the exact set of changes is unknown — a reload of the whole
//! environment, a segment change, a subscriber that fell behind the broadcast — the change
//! names every flag the key may see now and every flag it could see before (gone since:
//! `delete`); a flag a client key no longer sees (deleted, or no longer client-side) is
//! named `delete`, as the key already knew its name. The stream ends when the server shuts
//! down, and before its next message (a keep-alive at the latest) once its key is revoked or
//! expired.

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use prost_types::Struct;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::{StreamSlot, convert};
use crate::keys::{KeyInfo, KeyRing};
use crate::snapshots::{EnvSnapshot, Snapshots, Update};

/// One message of the stream, whichever protocol version carries it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) kind: &'static str,
    pub(crate) data: Option<Struct>,
}

/// What one subscriber holds between two messages.
struct Subscriber {
    snapshots: Arc<Snapshots>,
    keys: Arc<KeyRing>,
    key: Arc<KeyInfo>,
    updates: broadcast::Receiver<Arc<Update>>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Duration,
    ready_sent: bool,
    /// The snapshot as of the last update this stream handled: what the key could see then.
    /// A shared reference (not a copy of the flag names), so that ten thousand streams of a
    /// ten-thousand-flag environment hold one snapshot, not a hundred million strings.
    seen: Option<Arc<EnvSnapshot>>,
    /// Held while the stream lives: the bounds on open event streams.
    _slot: StreamSlot,
}

/// The events for `key` until shutdown (or until the caller hangs up and drops the stream).
pub(crate) fn stream(
    snapshots: Arc<Snapshots>,
    keys: Arc<KeyRing>,
    key: Arc<KeyInfo>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Duration,
    slot: StreamSlot,
) -> impl Stream<Item = Event> + Send + 'static {
    // Subscribed before `provider_ready` is sent, so that no change after it is missed.
    let updates = snapshots.subscribe();
    let mut subscriber = Subscriber {
        updates,
        snapshots,
        keys,
        key,
        shutdown,
        keep_alive,
        ready_sent: false,
        seen: None,
        _slot: slot,
    };
    subscriber.seen = subscriber.snapshots.get(&subscriber.key.environment_id);
    futures_util::stream::unfold(subscriber, Subscriber::next)
}

impl Subscriber {
    async fn next(mut self) -> Option<(Event, Subscriber)> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Some((event("provider_ready", None), self));
        }
        let event = self.wait().await?;
        // A revoked or expired key's stream ends before its next message (new calls are
        // refused at once); its provider reconnects and is refused.
        if !self.key_is_active() {
            return None;
        }
        Some((event, self))
    }

    /// The next message; `None` at shutdown.
    async fn wait(&mut self) -> Option<Event> {
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
                            return Some(event("configuration_change", Some(data)));
                        }
                    }
                    Ok(_) => {}
                    // Fell behind: what was missed is unknown, so every flag may have changed.
                    Err(RecvError::Lagged(_)) => {
                        let data = self.everything();
                        return Some(event("configuration_change", Some(data)));
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(quiet_until) => {
                    return Some(event("keep_alive", None));
                }
            }
        }
    }

    /// `data` naming the flags `update` changed that the key may see now or could see at
    /// the last update; `None` when it changed none of them (a client key and server-side
    /// flags only).
    fn changed(&mut self, update: &Update) -> Option<Struct> {
        let flags_only = update
            .changes
            .as_ref()
            .filter(|changes| changes.iter().all(|c| c.kind == "flag"));
        let Some(changes) = flags_only else {
            return Some(self.everything());
        };
        let env = self.snapshots.get(&self.key.environment_id);
        let kind_of_key = self.key.kind;
        let could_see = |env: &Option<Arc<EnvSnapshot>>, flag: &str| {
            env.as_ref()
                .is_some_and(|e| e.visible_to(kind_of_key, flag))
        };
        let mut flags = Map::new();
        for change in changes {
            let kind = if could_see(&env, &change.key) {
                "update"
            } else if could_see(&self.seen, &change.key) || kind_of_key.is_server() {
                // Gone for this key: deleted, archived, or (client keys) no longer
                // client-side. A server key hears of every deletion; a client key only of
                // flags it could see, whose names it already knew.
                "delete"
            } else {
                continue;
            };
            flags.insert(change.key.clone(), json!({ "type": kind }));
        }
        self.seen = env;
        (!flags.is_empty()).then(|| data(flags))
    }

    /// `data` naming every flag the key may see now (`update`) and every flag it could see
    /// at the last update but no longer does (`delete`).
    fn everything(&mut self) -> Struct {
        let now = self.snapshots.get(&self.key.environment_id);
        let kind = self.key.kind;
        let visible = |env: &Option<Arc<EnvSnapshot>>| -> Vec<String> {
            env.as_ref()
                .map(|env| {
                    env.snapshot
                        .flags()
                        .filter(|f| env.visible_to(kind, f.key))
                        .map(|f| f.key.to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut flags: Map<String, Value> = visible(&self.seen)
            .into_iter()
            .filter(|k| !now.as_ref().is_some_and(|e| e.visible_to(kind, k)))
            .map(|k| (k, json!({ "type": "delete" })))
            .collect();
        for key in visible(&now) {
            flags.insert(key, json!({ "type": "update" }));
        }
        self.seen = now;
        data(flags)
    }

    /// Whether the stream's key is still active and unexpired.
    fn key_is_active(&self) -> bool {
        self.keys
            .by_stream_token(&self.key.stream_token)
            .is_some_and(|k| k.id == self.key.id)
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
