//! Turning the server's `put`/`patch`/`delete` events into snapshot updates, and knowing
//! where to resume.
//!
//! The server sends one event per changed flag or segment, and every event of one update
//! carries the same `id` (the environment version after the update). So an id is only known
//! to be complete once an event with a higher id arrives: the cursor resumes (`Last-Event-ID`)
//! from the last *complete* version, never from one whose events may have been cut off. The
//! server then repeats the changes after it; definitions already applied are recognised by
//! the store (same fingerprint) and do not notify listeners twice.
//!
//! Within an update, events are applied as they arrive (for latency). One that does not
//! validate on its own — a flag removed before the flag that referenced it is updated —
//! waits for the rest of its update; if the update ends (or goes quiet) with changes that
//! still do not validate, the cursor asks for a full resync.

use serde::Deserialize;
use serde_json::Value;
use vexil_core::{FlagDef, Ruleset, SegmentDef, from_value_with_path};

use crate::sse::SseEvent;
use crate::store::{OwnedChange, Store};

/// Most changes one update may hold before the cursor gives up and resyncs.
const MAX_PENDING: usize = 50_000;

/// Why the stream's state cannot be trusted: fetch the whole ruleset again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resync(pub String);

/// The position in the server's change sequence.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Every change up to this version has been received and applied: where to resume.
    pub confirmed: Option<u64>,
    /// The version whose events are arriving (complete only once a later one arrives).
    group: Option<u64>,
    /// Changes of `group` that do not validate yet.
    pending: Vec<OwnedChange>,
}

#[derive(Deserialize)]
struct PatchData {
    kind: String,
    key: String,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    value: Option<Value>,
}

impl Cursor {
    /// A (re)connection: events of an unfinished update will be sent again.
    pub(crate) fn reconnected(&mut self) {
        self.group = None;
        self.pending.clear();
    }

    /// A whole ruleset was loaded at `version` (a fetch or a `put`).
    pub(crate) fn loaded(&mut self, version: u64) {
        self.confirmed = Some(version);
        self.group = None;
        self.pending.clear();
    }

    /// Whether an update is waiting for more of its events.
    pub(crate) fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Handles one event from the stream.
    pub(crate) fn handle(&mut self, store: &mut Store, event: SseEvent) -> Result<(), Resync> {
        let id = event
            .id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok());
        match event.event.as_str() {
            "put" => {
                let ruleset = Ruleset::from_json(&event.data)
                    .map_err(|e| Resync(format!("put does not parse: {e}")))?;
                // A node of a cluster that has not caught up yet: never step back to its
                // older data; the fetch that follows decides (see `SyncTask::fetch`).
                if let Some(held) = store.version()
                    && ruleset.version < held
                {
                    return Err(Resync(format!(
                        "put of version {} is older than the {held} held",
                        ruleset.version
                    )));
                }
                store
                    .replace(&ruleset)
                    .map_err(|e| Resync(format!("put does not validate: {e}")))?;
                self.loaded(ruleset.version);
                tracing::debug!(version = ruleset.version, "stream: put");
                Ok(())
            }
            "patch" | "delete" => {
                let data: PatchData = serde_json::from_str(&event.data)
                    .map_err(|e| Resync(format!("{} does not parse: {e}", event.event)))?;
                let Some(version) = id.or(data.version) else {
                    return Err(Resync(format!("{} without a version", event.event)));
                };
                let change = change_of(&event.event, data)?;
                match change {
                    Some(change) => self.change(store, version, change),
                    None => Ok(()),
                }
            }
            // Client keys' event; a server key should not get it, but it means "refetch".
            "refetch" => Err(Resync("server asked for a refetch".into())),
            // Unknown events are skipped, so a newer server can add kinds of events.
            other => {
                tracing::debug!(event = other, "stream: unknown event skipped");
                Ok(())
            }
        }
    }

    fn change(
        &mut self,
        store: &mut Store,
        version: u64,
        change: OwnedChange,
    ) -> Result<(), Resync> {
        match self.group {
            Some(g) if version == g => {}
            Some(g) if version < g => {
                return Err(Resync(format!("event id {version} after {g}")));
            }
            _ => {
                if let Some(c) = self.confirmed
                    && version <= c
                {
                    return Err(Resync(format!("event id {version} not after {c}")));
                }
                if self.waiting() {
                    return Err(Resync(format!(
                        "update {} did not validate once complete",
                        self.group.unwrap_or_default()
                    )));
                }
                // A later update begins: the previous one is complete.
                if let Some(g) = self.group {
                    self.confirmed = Some(g);
                }
                self.group = Some(version);
            }
        }
        self.pending.push(change);
        match store.apply(version, &self.pending) {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(_) if self.pending.len() < MAX_PENDING => {
                tracing::debug!(
                    version,
                    pending = self.pending.len(),
                    "stream: change waits for the rest of its update"
                );
                Ok(())
            }
            Err(e) => Err(Resync(format!("update {version} does not validate: {e}"))),
        }
    }
}

fn change_of(event: &str, data: PatchData) -> Result<Option<OwnedChange>, Resync> {
    let parse_err = |e: vexil_core::ValidationErrors| {
        Resync(format!(
            "{event} of {} '{}' does not parse: {e}",
            data.kind, data.key
        ))
    };
    let value = match (event, data.value.clone()) {
        ("patch", Some(value)) => Some(value),
        ("patch", None) => return Err(Resync(format!("patch of '{}' without a value", data.key))),
        _ => None,
    };
    Ok(match data.kind.as_str() {
        "flag" => {
            let def = value
                .map(from_value_with_path::<FlagDef>)
                .transpose()
                .map_err(parse_err)?;
            Some(OwnedChange::Flag(data.key, def))
        }
        "segment" => {
            let def = value
                .map(from_value_with_path::<SegmentDef>)
                .transpose()
                .map_err(parse_err)?;
            Some(OwnedChange::Segment(data.key, def))
        }
        other => {
            tracing::debug!(kind = other, "stream: change of an unknown kind skipped");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::ClientEvent;
    use crate::store::tests::store;

    fn flag(enabled: bool, prereq: Option<&str>) -> Value {
        let prerequisites = match prereq {
            Some(p) => json!([{"flag": p, "variations": ["on"]}]),
            None => json!([]),
        };
        json!({"type": "boolean", "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": enabled, "off_variation": "off", "fallthrough": {"variation": "on"},
            "prerequisites": prerequisites})
    }

    fn ev(name: &str, id: u64, data: Value) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.to_string(),
            id: Some(id.to_string()),
        }
    }

    fn changed(rx: &mut tokio::sync::broadcast::Receiver<ClientEvent>) -> Vec<String> {
        let mut keys = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let ClientEvent::FlagsChanged(c) = ev {
                keys.extend(c.keys.iter().cloned());
            }
        }
        keys
    }

    #[test]
    fn resumes_from_the_last_complete_update_and_ignores_repeats() {
        let (mut store, mut rx) = store();
        let mut cursor = Cursor::default();
        let put = json!({"version": 5, "flags": {"a": flag(true, None), "b": flag(true, None)}, "segments": {}});
        cursor.handle(&mut store, ev("put", 5, put)).unwrap();
        assert_eq!(cursor.confirmed, Some(5));
        changed(&mut rx);

        // Update 7 changes a and b; the stream is cut after a's event.
        let patch_a = json!({"kind": "flag", "key": "a", "version": 7, "value": flag(false, None)});
        cursor
            .handle(&mut store, ev("patch", 7, patch_a.clone()))
            .unwrap();
        assert_eq!(changed(&mut rx), ["a"]);
        assert_eq!(cursor.confirmed, Some(5), "7 may be incomplete");
        cursor.reconnected();

        // The server repeats everything after 5: a (already applied, silent), then b.
        cursor.handle(&mut store, ev("patch", 7, patch_a)).unwrap();
        let patch_b = json!({"kind": "flag", "key": "b", "version": 7, "value": flag(false, None)});
        cursor.handle(&mut store, ev("patch", 7, patch_b)).unwrap();
        assert_eq!(
            changed(&mut rx),
            ["b"],
            "a is not notified twice; b is not lost"
        );
        cursor
            .handle(
                &mut store,
                ev(
                    "delete",
                    8,
                    json!({"kind": "flag", "key": "b", "version": 8}),
                ),
            )
            .unwrap();
        assert_eq!(cursor.confirmed, Some(7));
        assert_eq!(store.version(), Some(8));
    }

    #[test]
    fn a_change_that_needs_the_rest_of_its_update_waits_for_it() {
        let (mut store, mut rx) = store();
        let mut cursor = Cursor::default();
        let put =
            json!({"version": 1, "flags": {"p": flag(true, None), "c": flag(true, Some("p"))}});
        cursor.handle(&mut store, ev("put", 1, put)).unwrap();
        changed(&mut rx);
        // Update 2 deletes p and drops c's prerequisite; p's deletion arrives first.
        cursor
            .handle(
                &mut store,
                ev(
                    "delete",
                    2,
                    json!({"kind": "flag", "key": "p", "version": 2}),
                ),
            )
            .unwrap();
        assert!(cursor.waiting());
        assert_eq!(store.version(), Some(1));
        let patch_c = json!({"kind": "flag", "key": "c", "version": 2, "value": flag(true, None)});
        cursor.handle(&mut store, ev("patch", 2, patch_c)).unwrap();
        assert!(!cursor.waiting());
        assert_eq!(store.version(), Some(2));
        assert_eq!(changed(&mut rx), ["c", "p"]);
    }

    #[test]
    fn inconsistencies_ask_for_a_resync() {
        let (mut store, _rx) = store();
        let mut cursor = Cursor::default();
        let put =
            json!({"version": 1, "flags": {"p": flag(true, None), "c": flag(true, Some("p"))}});
        cursor.handle(&mut store, ev("put", 1, put)).unwrap();
        // p's deletion never becomes valid: the next update finds it pending.
        cursor
            .handle(
                &mut store,
                ev(
                    "delete",
                    2,
                    json!({"kind": "flag", "key": "p", "version": 2}),
                ),
            )
            .unwrap();
        let patch =
            json!({"kind": "flag", "key": "c", "version": 3, "value": flag(false, Some("p"))});
        assert!(cursor.handle(&mut store, ev("patch", 3, patch)).is_err());

        let mut cursor = Cursor::default();
        cursor.loaded(10);
        let stale = json!({"kind": "flag", "key": "c", "version": 9, "value": flag(false, None)});
        assert!(cursor.handle(&mut store, ev("patch", 9, stale)).is_err());
        assert!(
            cursor
                .handle(&mut store, ev("patch", 11, json!({"kind": "flag"})))
                .is_err(),
            "malformed data"
        );
        assert!(
            cursor
                .handle(&mut store, ev("put", 12, json!({"flags": 3})))
                .is_err()
        );
        assert!(
            cursor
                .handle(&mut store, ev("something-new", 12, json!({})))
                .is_ok(),
            "unknown events are skipped"
        );
    }
}
