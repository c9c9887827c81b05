//! Compiled snapshots per environment — what the evaluation plane reads, never awaiting the
//! database. At start every environment is compiled; after each committed write (and on a
//! periodic poll, for changes made by other nodes) the change log is read and only changed
//! flags and segments are reloaded and compiled (`vexil_core::Snapshot::apply`), then the
//! environment's snapshot is swapped atomically. If the database is unreachable, the last
//! snapshots keep serving.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;
use vexil_core::{Change, FlagDef, Ruleset, SegmentDef, Snapshot};

use crate::store::Conn;
use crate::store::{Store, StoreResult, environments, flags, segments};

/// One environment's evaluable state at one ruleset version.
#[derive(Debug)]
pub(crate) struct EnvSnapshot {
    pub(crate) environment_id: String,
    pub(crate) project_id: String,
    /// The environment's ruleset version (also the SSE event id and the `ETag`).
    pub(crate) version: u64,
    pub(crate) snapshot: Snapshot,
    /// Source definitions, shared between versions, for serving and for incremental updates.
    flags: BTreeMap<String, Arc<FlagDef>>,
    segments: BTreeMap<String, Arc<SegmentDef>>,
    ruleset_json: OnceLock<Arc<str>>,
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
    /// Stream payloads `(event name, JSON data)` for server keys, rendered once by the
    /// first subscriber that needs them and shared by all the others.
    pub(crate) rendered: OnceLock<Vec<(&'static str, String)>>,
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
        ruleset: Ruleset,
    ) -> Result<EnvSnapshot, vexil_core::ValidationErrors> {
        let snapshot = Snapshot::compile(&ruleset)?;
        Ok(EnvSnapshot {
            environment_id,
            project_id,
            version: ruleset.version,
            snapshot,
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

    /// The definition of flag `key` (archived ones included).
    pub(crate) fn flag_def(&self, key: &str) -> Option<&FlagDef> {
        self.flags.get(key).map(|f| &**f)
    }

    /// The definition of segment `key`.
    pub(crate) fn segment_def(&self, key: &str) -> Option<&SegmentDef> {
        self.segments.get(key).map(|s| &**s)
    }

    /// The distinct `(kind, key)`s changed after version `since`, if this snapshot still
    /// remembers all of them (empty when `since` is the current version).
    pub(crate) fn changes_after(&self, since: u64) -> Option<Vec<(String, String)>> {
        if since == self.version {
            return Some(Vec::new());
        }
        // History is trimmed by entry count, which may cut a version's changes in half: only
        // a client at or past the floor can be brought up to date from it.
        let covered = since < self.version && since >= self.history_floor;
        if !covered {
            return None;
        }
        let mut seen = std::collections::BTreeSet::new();
        Some(
            self.history
                .iter()
                .filter(|c| c.version > since)
                .filter(|c| seen.insert((c.kind.clone(), c.key.clone())))
                .map(|c| (c.kind.clone(), c.key.clone()))
                .collect(),
        )
    }
}

/// Every environment's current snapshot, and a broadcast of their updates.
#[derive(Debug)]
pub(crate) struct Snapshots {
    updates: tokio::sync::broadcast::Sender<Arc<Update>>,
    envs: RwLock<HashMap<String, Arc<EnvSnapshot>>>,
    /// Serializes synchronisations; held across `.await` (database reads), hence tokio's.
    sync_lock: tokio::sync::Mutex<()>,
}

impl Default for Snapshots {
    fn default() -> Self {
        // A subscriber that falls this far behind is dropped (it resumes by reconnecting).
        let (updates, _) = tokio::sync::broadcast::channel(4096);
        Snapshots {
            updates,
            envs: RwLock::default(),
            sync_lock: tokio::sync::Mutex::default(),
        }
    }
}

impl Snapshots {
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
        self.envs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(env.environment_id.clone(), Arc::new(env));
    }

    /// Brings every environment up to its stored ruleset version.
    pub(crate) async fn sync(&self, store: &Store) -> StoreResult<()> {
        let _guard = self.sync_lock.lock().await;
        let mut conn = store.read().await?;
        let versions = environments::ruleset_versions(&mut conn).await?;
        let live: std::collections::HashSet<&str> =
            versions.iter().map(|(id, _, _)| id.as_str()).collect();
        self.envs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
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
            snapshot,
            flags: flags_map,
            segments: segments_map,
            ruleset_json: OnceLock::new(),
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
        let mut snap = EnvSnapshot::new("e".into(), "p".into(), ruleset).unwrap();
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
        assert_eq!(
            snap.changes_after(5),
            Some(vec![("flag".into(), "d".into())])
        );
        assert_eq!(snap.changes_after(6), Some(vec![]));
        assert_eq!(snap.changes_after(7), None, "a version from the future");
    }
}
