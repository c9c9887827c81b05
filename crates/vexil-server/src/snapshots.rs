//! Compiled snapshots per environment — what the evaluation plane reads, never awaiting the
//! database. At start every environment is compiled; after each committed write (and on a
//! periodic poll, for changes made by other nodes) the change log is read and only changed
//! flags and segments are reloaded and compiled (`vexil_core::Snapshot::apply`), then the
//! environment's snapshot is swapped atomically. If the database is unreachable, the last
//! snapshots keep serving.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::Bytes;
use serde::Serialize;
use vexil_core::{Change, Detail, FlagDef, Ruleset, SegmentDef, Snapshot, Tally};

use crate::store::Conn;
use crate::store::{Store, StoreResult, environments, flags, segments};

/// One environment's evaluable state at one ruleset version.
#[derive(Debug)]
pub(crate) struct EnvSnapshot {
    pub(crate) environment_id: String,
    pub(crate) project_id: String,
    /// The environment's ruleset version (also the SSE event id and the `ETag`).
    pub(crate) version: u64,
    /// Shared with the insights tally once replaced, until its evaluation counts are taken.
    pub(crate) snapshot: Arc<Snapshot>,
    /// The tracked event keys each flag watches (flags watching none left out).
    watching: BTreeMap<String, Arc<[String]>>,
    /// `watching` by event key, built by the first tracked event of this version.
    watchers: OnceLock<HashMap<String, Vec<String>>>,
    /// Source definitions, shared between versions, for serving and for incremental updates.
    flags: BTreeMap<String, Arc<FlagDef>>,
    segments: BTreeMap<String, Arc<SegmentDef>>,
    ruleset_json: OnceLock<Arc<str>>,
    /// `ruleset_json` as `Bytes` (the same allocation), for responses that stream it.
    ruleset_bytes: OnceLock<Bytes>,
    /// The stream events that resume a subscriber from an older version, rendered once per
    /// version by the first subscriber that resumes and shared by the others.
    pub(crate) replay: OnceLock<Replay>,
    /// The most recent changes `(version, kind, key)`, oldest first, so that streams can
    /// resume from `Last-Event-ID` without the database.
    history: VecDeque<Changed>,
    /// Every change after this version is in `history` (the version loaded from the
    /// database, or the newest version some of whose entries were trimmed away).
    history_floor: u64,
}

/// One changed flag or segment at one ruleset version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed {
    pub(crate) version: u64,
    /// `flag` or `segment`.
    pub(crate) kind: String,
    pub(crate) key: String,
}

/// Published whenever an environment's snapshot advances.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    pub(crate) environment_id: String,
    pub(crate) version: u64,
    /// What changed since the previous snapshot; `None` when it was reloaded whole.
    pub(crate) changes: Option<Vec<Changed>>,
    /// The stream events of this update for server keys, rendered once by the first
    /// subscriber that needs them and shared by all the others (SSE and WebSocket alike).
    pub(crate) rendered: OnceLock<Arc<[StreamEvent]>>,
}

/// One stream event: its name, its id (the environment version it completes) and its JSON
/// data, rendered once and shared by every subscriber; each protocol frames it around the
/// shared `data` (an SSE frame, a WebSocket text message) without copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEvent {
    /// `put`, `patch`, `delete`, `refetch`, or `message` (OFREP's, SSE's unnamed event).
    pub(crate) name: &'static str,
    pub(crate) id: u64,
    /// Compact JSON: one line.
    pub(crate) data: Bytes,
}

/// Rendered stream events resuming a subscriber: every flag or segment changed in the
/// remembered history once, at the version of its latest change, oldest first. A subscriber
/// at version `v` gets the events after `v`: a suffix, shared without copying.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// One event per changed flag or segment, by ascending id.
    pub(crate) events: Vec<StreamEvent>,
}

impl Replay {
    /// The events a subscriber at version `since` has not seen.
    pub(crate) fn after(&self, since: u64) -> &[StreamEvent] {
        let first = self.events.partition_point(|e| e.id <= since);
        &self.events[first..]
    }
}

/// Each `(kind, key)` of `changes` (oldest first) once, at its latest change, oldest first.
pub(crate) fn latest_per_key<'a>(
    changes: impl DoubleEndedIterator<Item = &'a Changed>,
) -> Vec<&'a Changed> {
    let mut seen = std::collections::HashSet::new();
    let mut latest: Vec<&Changed> = changes
        .rev()
        .filter(|c| seen.insert((c.kind.as_str(), c.key.as_str())))
        .collect();
    latest.reverse();
    latest
}

/// How many recent changes each environment remembers for stream resumption.
const HISTORY: usize = 1024;

/// The ruleset document as served (`GET /api/v1/sdk/config`): archived flags left out.
#[derive(Serialize)]
struct RulesetView<'a> {
    version: u64,
    flags: BTreeMap<&'a str, &'a FlagDef>,
    segments: BTreeMap<&'a str, &'a SegmentDef>,
}

impl EnvSnapshot {
    fn new(
        environment_id: String,
        project_id: String,
        (ruleset, watching): (Ruleset, BTreeMap<String, Vec<String>>),
    ) -> Result<EnvSnapshot, vexil_core::ValidationErrors> {
        let snapshot = Snapshot::compile(&ruleset)?;
        Ok(EnvSnapshot {
            environment_id,
            project_id,
            version: ruleset.version,
            snapshot: Arc::new(snapshot),
            watching: watching
                .into_iter()
                .filter(|(_, events)| !events.is_empty())
                .map(|(k, v)| (k, Arc::from(v)))
                .collect(),
            watchers: OnceLock::new(),
            flags: ruleset
                .flags
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
            segments: ruleset
                .segments
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
            ruleset_json: OnceLock::new(),
            ruleset_bytes: OnceLock::new(),
            replay: OnceLock::new(),
            history: VecDeque::new(),
            history_floor: ruleset.version,
        })
    }

    /// The ruleset JSON served to server-side SDKs; built once per version.
    pub(crate) fn ruleset_json(&self) -> Arc<str> {
        self.ruleset_json
            .get_or_init(|| {
                let view = RulesetView {
                    version: self.version,
                    flags: self
                        .flags
                        .iter()
                        .filter(|(_, f)| !f.archived)
                        .map(|(k, f)| (k.as_str(), &**f))
                        .collect(),
                    segments: self
                        .segments
                        .iter()
                        .map(|(k, s)| (k.as_str(), &**s))
                        .collect(),
                };
                Arc::from(serde_json::to_string(&view).unwrap_or_else(|_| "{}".to_owned()))
            })
            .clone()
    }

    /// `ruleset_json` without a copy: every response and stream of this version shares it.
    pub(crate) fn ruleset_bytes(&self) -> Bytes {
        self.ruleset_bytes
            .get_or_init(|| Bytes::from_owner(SharedText(self.ruleset_json())))
            .clone()
    }

    /// The flags watching tracked event `event_key` (their served variation is what an
    /// event of that key is attributed to).
    pub(crate) fn watchers_of(&self, event_key: &str) -> &[String] {
        self.watchers
            .get_or_init(|| {
                let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
                for (flag, events) in &self.watching {
                    for event in events.iter() {
                        by_event
                            .entry(event.clone())
                            .or_default()
                            .push(flag.clone());
                    }
                }
                by_event
            })
            .get(event_key)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether a key of `kind` may see flag `key`: it exists and is not archived, and for
    /// client and mobile keys it is `client_side` (anything else reads as "not found").
    pub(crate) fn visible_to(&self, kind: crate::keys::KeyKind, key: &str) -> bool {
        self.snapshot
            .flag_info(key)
            .is_some_and(|f| kind.is_server() || f.client_side)
    }

    /// The tracked event keys flag `key` watches here.
    pub(crate) fn watched_by(&self, key: &str) -> Vec<String> {
        self.watching
            .get(key)
            .map(|e| e.to_vec())
            .unwrap_or_default()
    }

    /// The definition of flag `key` (archived ones included).
    pub(crate) fn flag_def(&self, key: &str) -> Option<&FlagDef> {
        self.flags.get(key).map(|f| &**f)
    }

    /// The definition of segment `key`.
    pub(crate) fn segment_def(&self, key: &str) -> Option<&SegmentDef> {
        self.segments.get(key).map(|s| &**s)
    }

    /// Whether a client at version `since` can be brought up to date from the remembered
    /// history (trivially when `since` is the current version).
    pub(crate) fn resumable_from(&self, since: u64) -> bool {
        // History is trimmed by entry count, which may cut a version's changes in half: only
        // a client at or past the floor can be brought up to date from it.
        since == self.version || (since < self.version && since >= self.history_floor)
    }

    /// Every flag or segment in the remembered history once, at the version of its latest
    /// change, oldest first (what `Replay` renders).
    pub(crate) fn latest_changes(&self) -> Vec<&Changed> {
        latest_per_key(self.history.iter())
    }

    /// The distinct changes after version `since` (each at its latest version, oldest
    /// first), if this snapshot still remembers all of them (empty when `since` is the
    /// current version). The stream sends the same from `Replay`.
    #[cfg(test)]
    pub(crate) fn changes_after(&self, since: u64) -> Option<Vec<&Changed>> {
        if !self.resumable_from(since) {
            return None;
        }
        let mut changes = self.latest_changes();
        changes.retain(|c| c.version > since);
        Some(changes)
    }
}

/// An `Arc<str>` as the owner of `Bytes`.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Every environment's current snapshot, and a broadcast of their updates.
#[derive(Debug)]
pub(crate) struct Snapshots {
    updates: tokio::sync::broadcast::Sender<Arc<Update>>,
    envs: RwLock<HashMap<String, Arc<EnvSnapshot>>>,
    /// Whether evaluations served are counted (`--no-evaluation-counts` turns it off).
    counting: bool,
    /// Per environment, replaced snapshots whose evaluation counts are still to be taken.
    retired: Mutex<HashMap<String, Tally>>,
    /// Serializes synchronisations; held across `.await` (database reads), hence tokio's.
    sync_lock: tokio::sync::Mutex<()>,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots::new(true)
    }
}

impl Snapshots {
    /// No snapshots yet; `counting`: whether evaluations served are counted.
    pub(crate) fn new(counting: bool) -> Snapshots {
        // A subscriber that falls this far behind is dropped (it resumes by reconnecting).
        let (updates, _) = tokio::sync::broadcast::channel(4096);
        Snapshots {
            updates,
            envs: RwLock::default(),
            counting,
            retired: Mutex::default(),
            sync_lock: tokio::sync::Mutex::default(),
        }
    }

    /// Counts an evaluation served (one atomic add in the snapshot; nothing else).
    pub(crate) fn count(&self, detail: &Detail<'_>) {
        if self.counting {
            detail.count();
        }
    }

    /// Takes the evaluation counts of every environment since the last call, replaced
    /// snapshots included, as `f(environment id, flag key, variation, count)`.
    pub(crate) fn drain_counts(&self, mut f: impl FnMut(&str, &str, &str, u64)) {
        let current: Vec<Arc<EnvSnapshot>> = self
            .envs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        for env in &current {
            let id = env.environment_id.as_str();
            let tally = retired.entry(id.to_owned()).or_default();
            tally.drain(Some(&env.snapshot), |flag, variation, n| {
                f(id, flag, variation, n)
            });
        }
        // Environments deleted meanwhile: their last counts, once.
        retired.retain(|id, tally| {
            if current.iter().any(|e| e.environment_id == *id) {
                return true;
            }
            tally.drain(None, |flag, variation, n| f(id, flag, variation, n));
            false
        });
    }

    /// Keeps a replaced snapshot's counts for the next drain.
    fn retire(&self, old: &EnvSnapshot) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(old.environment_id.clone())
            .or_default()
            .retire(old.snapshot.clone());
    }

    /// Updates from now on (subscribe before reading a snapshot, so none is missed).
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Update>> {
        self.updates.subscribe()
    }

    fn publish(&self, update: Update) {
        // No subscribers is fine.
        let _ = self.updates.send(Arc::new(update));
    }
    /// The current snapshot of an environment. Never touches the database.
    pub(crate) fn get(&self, environment_id: &str) -> Option<Arc<EnvSnapshot>> {
        self.envs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(environment_id)
            .cloned()
    }

    /// Whether every environment has been loaded at least once.
    pub(crate) fn is_loaded(&self) -> bool {
        !self
            .envs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn put(&self, env: EnvSnapshot) {
        let old = self
            .envs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(env.environment_id.clone(), Arc::new(env));
        if let Some(old) = old {
            self.retire(&old);
        }
    }

    /// Brings every environment up to its stored ruleset version.
    pub(crate) async fn sync(&self, store: &Store) -> StoreResult<()> {
        let _guard = self.sync_lock.lock().await;
        let mut conn = store.read().await?;
        let versions = environments::ruleset_versions(&mut conn).await?;
        let live: std::collections::HashSet<&str> =
            versions.iter().map(|(id, _, _)| id.as_str()).collect();
        let mut gone = Vec::new();
        self.envs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, env| {
                let keep = live.contains(id.as_str());
                if !keep {
                    gone.push(env.clone());
                }
                keep
            });
        for env in gone {
            self.retire(&env);
        }
        for (env_id, project_id, version) in &versions {
            let version = u64::try_from(*version).unwrap_or(0);
            match self.get(env_id) {
                Some(current) if current.version == version => {}
                Some(current) if current.version < version => {
                    match self.advance(&mut conn, &current, version).await? {
                        Some((next, changes)) => {
                            let update = Update {
                                environment_id: env_id.clone(),
                                version: next.version,
                                changes: Some(changes),
                                rendered: OnceLock::new(),
                            };
                            self.put(next);
                            self.publish(update);
                        }
                        None => self.load(&mut conn, env_id, project_id).await?,
                    }
                }
                _ => self.load(&mut conn, env_id, project_id).await?,
            }
        }
        Ok(())
    }

    /// Compiles an environment from scratch.
    async fn load(&self, conn: &mut Conn, env_id: &str, project_id: &str) -> StoreResult<()> {
        let Some(ruleset) = flags::load_ruleset(conn, env_id).await? else {
            return Ok(());
        };
        match EnvSnapshot::new(env_id.to_owned(), project_id.to_owned(), ruleset) {
            Ok(env) => {
                tracing::debug!(environment_id = %env_id, version = env.version, flags = env.flags.len(), "snapshot loaded");
                let update = Update {
                    environment_id: env_id.to_owned(),
                    version: env.version,
                    changes: None,
                    rendered: OnceLock::new(),
                };
                self.put(env);
                self.publish(update);
            }
            // Every write is validated, so this means data written outside the API; keep
            // serving the previous snapshot rather than none.
            Err(e) => {
                tracing::error!(environment_id = %env_id, errors = %e, "stored ruleset does not validate; snapshot kept")
            }
        }
        Ok(())
    }

    /// Applies the change log from `current.version` to `target`; `None` when the log has
    /// a gap (then the caller reloads the environment whole).
    async fn advance(
        &self,
        conn: &mut Conn,
        current: &EnvSnapshot,
        target: u64,
    ) -> StoreResult<Option<(EnvSnapshot, Vec<Changed>)>> {
        let log =
            environments::changes_since(conn, &current.environment_id, current.version as i64)
                .await?;
        let contiguous = log
            .first()
            .is_some_and(|c| c.version == current.version as i64 + 1)
            && log.last().is_some_and(|c| c.version >= target as i64);
        if !contiguous {
            return Ok(None);
        }
        let mut flag_keys: BTreeMap<String, Option<FlagDef>> = BTreeMap::new();
        let mut watching = current.watching.clone();
        let mut segment_keys: BTreeMap<String, Option<SegmentDef>> = BTreeMap::new();
        for c in &log {
            if c.kind == "segment" {
                segment_keys.insert(c.key.clone(), None);
            } else {
                flag_keys.insert(c.key.clone(), None);
            }
        }
        for (key, slot) in flag_keys.iter_mut() {
            if let Some(flag) = flags::get_by_key(conn, &current.project_id, key).await?
                && let Some(config) =
                    flags::configs::get(conn, &flag.id, &current.environment_id).await?
            {
                *slot = Some(config.config.to_def(&flag, config.version));
                if config.config.watch_events.is_empty() {
                    watching.remove(key);
                } else {
                    watching.insert(key.clone(), Arc::from(config.config.watch_events.clone()));
                }
            } else {
                watching.remove(key);
            }
        }
        for (key, slot) in segment_keys.iter_mut() {
            *slot = segments::get_by_key(conn, &current.project_id, key)
                .await?
                .map(|s| s.definition);
        }
        let version = log.last().map_or(target, |c| c.version as u64);
        let changes: Vec<Change<'_>> = flag_keys
            .iter()
            .map(|(key, def)| match def {
                Some(def) => Change::UpsertFlag { key, def },
                None => Change::RemoveFlag { key },
            })
            .chain(segment_keys.iter().map(|(key, def)| match def {
                Some(def) => Change::UpsertSegment { key, def },
                None => Change::RemoveSegment { key },
            }))
            .collect();
        let snapshot = match current.snapshot.apply(version, &changes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(environment_id = %current.environment_id, errors = %e, "incremental update failed; reloading");
                return Ok(None);
            }
        };
        let mut flags_map = current.flags.clone();
        for (key, def) in flag_keys {
            match def {
                Some(def) => flags_map.insert(key, Arc::new(def)),
                None => flags_map.remove(&key),
            };
        }
        let mut segments_map = current.segments.clone();
        for (key, def) in segment_keys {
            match def {
                Some(def) => segments_map.insert(key, Arc::new(def)),
                None => segments_map.remove(&key),
            };
        }
        let changed: Vec<Changed> = log
            .into_iter()
            .map(|c| Changed {
                version: u64::try_from(c.version).unwrap_or(0),
                kind: c.kind,
                key: c.key,
            })
            .collect();
        let mut history = current.history.clone();
        history.extend(changed.iter().cloned());
        let history_floor = trim_history(&mut history, current.history_floor, HISTORY);
        let next = EnvSnapshot {
            environment_id: current.environment_id.clone(),
            project_id: current.project_id.clone(),
            version,
            snapshot: Arc::new(snapshot),
            watching,
            watchers: OnceLock::new(),
            flags: flags_map,
            segments: segments_map,
            ruleset_json: OnceLock::new(),
            ruleset_bytes: OnceLock::new(),
            replay: OnceLock::new(),
            history,
            history_floor,
        };
        Ok(Some((next, changed)))
    }
}

/// Trims `history` to `max` entries, oldest first; returns the new floor: the newest version
/// some of whose entries are gone (a client at an older version cannot be resumed).
fn trim_history(history: &mut VecDeque<Changed>, floor: u64, max: usize) -> u64 {
    let mut floor = floor;
    while history.len() > max {
        if let Some(dropped) = history.pop_front() {
            floor = floor.max(dropped.version);
        }
    }
    floor
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn changed(version: u64, key: &str) -> Changed {
        Changed {
            version,
            kind: "flag".into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_version_cut_in_half_by_trimming_is_not_resumable() {
        let ruleset = Ruleset::from_json(r#"{"version": 4, "flags": {}}"#).unwrap();
        let mut snap =
            EnvSnapshot::new("e".into(), "p".into(), (ruleset, BTreeMap::new())).unwrap();
        // Version 5 changed a, b, c; version 6 changed d; only 3 entries are kept.
        let mut history: VecDeque<Changed> = [
            changed(5, "a"),
            changed(5, "b"),
            changed(5, "c"),
            changed(6, "d"),
        ]
        .into();
        let floor = trim_history(&mut history, snap.history_floor, 3);
        assert_eq!(floor, 5, "version 5 lost an entry");
        snap.history = history;
        snap.history_floor = floor;
        snap.version = 6;
        // A client at 4 would miss `a`: it must get a full `put`.
        assert_eq!(snap.changes_after(4), None);
        assert_eq!(snap.changes_after(5), Some(vec![&changed(6, "d")]));
        assert_eq!(snap.changes_after(6), Some(vec![]));
        assert_eq!(snap.changes_after(7), None, "a version from the future");
    }

    #[test]
    fn each_change_is_replayed_once_at_its_latest_version() {
        let ruleset = Ruleset::from_json(r#"{"version": 4, "flags": {}}"#).unwrap();
        let mut snap =
            EnvSnapshot::new("e".into(), "p".into(), (ruleset, BTreeMap::new())).unwrap();
        snap.history = [
            changed(5, "a"),
            changed(6, "b"),
            changed(7, "a"),
            changed(7, "c"),
        ]
        .into();
        snap.version = 7;
        let after = |since| {
            snap.changes_after(since)
                .unwrap()
                .iter()
                .map(|c| (c.version, c.key.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(after(4), [(6, "b"), (7, "a"), (7, "c")]);
        assert_eq!(after(5), [(6, "b"), (7, "a"), (7, "c")]);
        assert_eq!(after(6), [(7, "a"), (7, "c")]);

        let event = |key: &'static str, id| StreamEvent {
            name: "patch",
            id,
            data: Bytes::from_static(key.as_bytes()),
        };
        let replay = Replay {
            events: vec![event("b", 6), event("a", 7), event("c", 7)],
        };
        let keys = |since| {
            replay
                .after(since)
                .iter()
                .map(|e| (e.id, e.data.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(4), [(6, "b".into()), (7, "a".into()), (7, "c".into())]);
        assert_eq!(keys(6), [(7, "a".into()), (7, "c".into())]);
        assert!(keys(7).is_empty());
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;
    use vexil_core::Context;

    fn env(version: u64, on: &str) -> EnvSnapshot {
        let ruleset = Ruleset::from_json(&format!(
            r#"{{"version": {version}, "flags": {{"f": {{"type": "boolean",
            "variations": [{{"key": "on", "value": true}}, {{"key": "off", "value": false}}],
            "enabled": true, "off_variation": "off", "fallthrough": {{"variation": "{on}"}}}}}}}}"#
        ))
        .unwrap();
        EnvSnapshot::new("e".into(), "p".into(), (ruleset, BTreeMap::new())).unwrap()
    }

    #[test]
    fn counts_of_a_replaced_snapshot_held_by_a_request_are_not_lost() {
        let snapshots = Snapshots::new(true);
        snapshots.put(env(1, "on"));
        let held = snapshots.get("e").unwrap();
        let ctx = Context::new();
        snapshots.count(&held.snapshot.evaluate("f", &ctx, 0));
        // A change replaces the snapshot while a request still holds the old one.
        snapshots.put(env(2, "off"));
        snapshots.count(&held.snapshot.evaluate("f", &ctx, 0));
        let current = snapshots.get("e").unwrap();
        snapshots.count(&current.snapshot.evaluate("f", &ctx, 0));
        let mut taken = Vec::new();
        snapshots
            .drain_counts(|e, f, v, n| taken.push((e.to_owned(), f.to_owned(), v.to_owned(), n)));
        taken.sort();
        assert_eq!(
            taken,
            [
                ("e".into(), "f".into(), "off".into(), 1),
                ("e".into(), "f".into(), "on".into(), 2)
            ]
        );
        // Counted after that drain, into the old snapshot: taken by the next one, after
        // which the old snapshot is let go.
        snapshots.count(&held.snapshot.evaluate("f", &ctx, 0));
        drop(held);
        let mut later = Vec::new();
        snapshots.drain_counts(|_, _, v, n| later.push((v.to_owned(), n)));
        assert_eq!(later, [("on".to_owned(), 1)]);
        let mut none = Vec::new();
        snapshots.drain_counts(|_, _, v, n| none.push((v.to_owned(), n)));
        assert!(none.is_empty());
        // Switched off, nothing is counted.
        let off = Snapshots::new(false);
        off.put(env(1, "on"));
        off.count(&off.get("e").unwrap().snapshot.evaluate("f", &ctx, 0));
        let mut nothing = Vec::new();
        off.drain_counts(|_, _, v, n| nothing.push((v.to_owned(), n)));
        assert!(nothing.is_empty());
    }
}
