//! The client's data status — `NotReady`, `Ready` or `Stale`, with a reason — published
//! through a `watch` channel so that callers can read it or wait for a change.

use std::time::SystemTime;

/// How current the client's flag data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No flag data yet: evaluations return the caller's default with `CLIENT_NOT_READY`.
    NotReady,
    /// The data is what the server has now (streaming connected, or the last poll
    /// succeeded), or the client is in offline mode with its bootstrap ruleset.
    Ready,
    /// Evaluations use the last known good data (or the bootstrap ruleset) because the
    /// server cannot be reached or the client was closed; `Status::reason` says why.
    Stale,
}

/// A snapshot of the client's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// Why the state is not `Ready` (or how `Ready` data arrives: `streaming`, `polling`,
    /// `offline`), in words fit for a log line.
    pub reason: String,
    /// The ruleset version evaluations use, if any data is loaded.
    pub version: Option<u64>,
    /// When `state` last changed.
    pub since: SystemTime,
    /// Whether the server refused the key (HTTP 401 or 403); retrying will not help until the
    /// key is fixed.
    pub key_rejected: bool,
}

impl Status {
    pub(crate) fn new(state: State, reason: impl Into<String>, version: Option<u64>) -> Status {
        Status {
            state,
            reason: reason.into(),
            version,
            since: SystemTime::now(),
            key_rejected: false,
        }
    }
}

/// The sending side, kept by the client and its background task.
#[derive(Debug)]
pub(crate) struct StatusCell {
    tx: tokio::sync::watch::Sender<Status>,
}

impl StatusCell {
    pub(crate) fn new(initial: Status) -> StatusCell {
        StatusCell {
            tx: tokio::sync::watch::Sender::new(initial),
        }
    }

    pub(crate) fn get(&self) -> Status {
        self.tx.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<Status> {
        self.tx.subscribe()
    }

    /// Sets state and reason (keeping `since` when the state is unchanged); returns the new
    /// status when anything but the version changed. A version-only change updates the
    /// status silently: status listeners hear of state changes, change listeners of data.
    pub(crate) fn set(
        &self,
        state: State,
        reason: &str,
        version: Option<u64>,
        key_rejected: bool,
    ) -> Option<Status> {
        let mut changed = None;
        self.tx.send_if_modified(|s| {
            s.version = version;
            if s.state == state && s.reason == reason && s.key_rejected == key_rejected {
                return false;
            }
            if s.state != state {
                s.since = SystemTime::now();
            }
            s.state = state;
            s.reason = reason.to_owned();
            s.key_rejected = key_rejected;
            changed = Some(s.clone());
            true
        });
        changed
    }

    /// Records the ruleset version in use, without notifying anyone.
    pub(crate) fn set_version(&self, version: u64) {
        self.tx.send_if_modified(|s| {
            s.version = Some(version);
            false
        });
    }
}
