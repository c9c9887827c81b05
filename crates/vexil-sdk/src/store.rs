//! Where the flag data lives. Evaluations read the current compiled `Snapshot` from an
//! `ArcSwapOption` (a lock-free load, never blocked by an update); the background task,
//! the only writer, replaces or incrementally updates it and works out which flags changed.
//!
//! To tell listeners which flags changed — and to ignore a definition received twice, as
//! happens when a stream resumes — the writer keeps, per flag and segment, a fingerprint of
//! its definition and the flags and segments it uses (prerequisites, `in_segment`).
//!
//! It also notes whether any definition reads the evaluation time — the `$now` attribute or
//! a `before`/`after` value `"$now"` (`Clause::reads_now`), the only ways `vexil-core` uses
//! `now` — so that evaluations skip the system clock (a quarter of a simple evaluation's
//! cost) when nothing needs it.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use vexil_core::{
    Change, Clause, FlagDef, NOW_ATTRIBUTE, Op, Ruleset, SegmentDef, Serve, Snapshot, Tally,
    ValidationErrors,
};

use crate::events::{ClientEvent, FlagChange, Listeners, Notifier};
use crate::status::StatusCell;

/// What evaluations read: the compiled ruleset and whether it reads the time.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Shared with `Shared::tally` once replaced, until its evaluation counts are taken.
    pub snapshot: Arc<Snapshot>,
    /// Some clause or rollout reads `$now`.
    pub uses_now: bool,
}

/// State shared by the client handle(s) and the background task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// `None` until the first ruleset (bootstrap or server) is loaded.
    pub snapshot: ArcSwapOption<Loaded>,
    pub status: StatusCell,
    pub notifier: Notifier,
    pub listeners: Arc<Listeners>,
    /// Whether evaluations are counted (for the metrics reports).
    pub count: bool,
    /// Replaced snapshots whose counts the next report still takes.
    pub tally: Tally,
    /// Tracked events waiting to be sent.
    pub events: crate::report::Queue,
}

/// One change received from the server: a new definition, or `None` for a removal.
#[derive(Debug, Clone)]
pub(crate) enum OwnedChange {
    Flag(String, Option<FlagDef>),
    Segment(String, Option<SegmentDef>),
}

#[derive(Debug, Default)]
struct Meta {
    fingerprint: u64,
    uses_now: bool,
    /// Prerequisite flags.
    flags: Box<[Box<str>]>,
    /// Segments named by `in_segment` clauses.
    segments: Box<[Box<str>]>,
}

#[derive(Debug, Default)]
struct Index {
    flags: HashMap<Box<str>, Meta>,
    segments: HashMap<Box<str>, Meta>,
}

/// The writer's side: publishes snapshots and computes what changed.
#[derive(Debug)]
pub(crate) struct Store {
    shared: Arc<Shared>,
    index: Index,
}

impl Store {
    pub(crate) fn new(shared: Arc<Shared>) -> Store {
        Store {
            shared,
            index: Index::default(),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The version of the data in use, if any.
    pub(crate) fn version(&self) -> Option<u64> {
        self.shared
            .snapshot
            .load()
            .as_ref()
            .map(|l| l.snapshot.version())
    }

    /// Loads the bootstrap ruleset at build time, before anyone can listen: no notification.
    pub(crate) fn bootstrap(&mut self, ruleset: &Ruleset) -> Result<(), ValidationErrors> {
        self.load(ruleset, false)
    }

    /// Replaces everything with `ruleset` (a `put` or a fetched config). On a validation
    /// error nothing changes.
    pub(crate) fn replace(&mut self, ruleset: &Ruleset) -> Result<(), ValidationErrors> {
        self.load(ruleset, true)
    }

    fn load(&mut self, ruleset: &Ruleset, notify: bool) -> Result<(), ValidationErrors> {
        let snapshot = Snapshot::compile(ruleset)?;
        let mut next = Index::default();
        for (key, def) in &ruleset.flags {
            next.flags.insert(key.as_str().into(), flag_meta(def));
        }
        for (key, def) in &ruleset.segments {
            next.segments.insert(key.as_str().into(), segment_meta(def));
        }
        let flags = diff(&self.index.flags, &next.flags);
        let segments = diff(&self.index.segments, &next.segments);
        self.index = next;
        if notify {
            self.publish(snapshot, flags, segments);
        } else {
            self.publish(snapshot, BTreeSet::new(), BTreeSet::new());
        }
        Ok(())
    }

    /// Applies incremental changes at `version`. On a validation error nothing changes.
    pub(crate) fn apply(
        &mut self,
        version: u64,
        changes: &[OwnedChange],
    ) -> Result<(), ValidationErrors> {
        let current = self.shared.snapshot.load_full().unwrap_or_default();
        let current = &current.snapshot;
        let borrowed: Vec<Change<'_>> = changes
            .iter()
            .map(|c| match c {
                OwnedChange::Flag(key, Some(def)) => Change::UpsertFlag { key, def },
                OwnedChange::Flag(key, None) => Change::RemoveFlag { key },
                OwnedChange::Segment(key, Some(def)) => Change::UpsertSegment { key, def },
                OwnedChange::Segment(key, None) => Change::RemoveSegment { key },
            })
            .collect();
        let snapshot = current.apply(version, &borrowed)?;
        let mut flags = BTreeSet::new();
        let mut segments = BTreeSet::new();
        for change in changes {
            let (map, key, meta, changed) = match change {
                OwnedChange::Flag(key, def) => (
                    &mut self.index.flags,
                    key,
                    def.as_ref().map(flag_meta),
                    &mut flags,
                ),
                OwnedChange::Segment(key, def) => (
                    &mut self.index.segments,
                    key,
                    def.as_ref().map(segment_meta),
                    &mut segments,
                ),
            };
            let before = map.get(key.as_str()).map(|m| m.fingerprint);
            let after = meta.as_ref().map(|m| m.fingerprint);
            if before != after {
                changed.insert(key.clone());
            }
            match meta {
                Some(meta) => map.insert(key.as_str().into(), meta),
                None => map.remove(key.as_str()),
            };
        }
        self.publish(snapshot, flags, segments);
        Ok(())
    }

    fn publish(&self, snapshot: Snapshot, flags: BTreeSet<String>, segments: BTreeSet<String>) {
        let version = snapshot.version();
        let uses_now = self.index.flags.values().any(|m| m.uses_now)
            || self.index.segments.values().any(|m| m.uses_now);
        let previous = self.shared.snapshot.swap(Some(Arc::new(Loaded {
            snapshot: Arc::new(snapshot),
            uses_now,
        })));
        if let Some(previous) = previous
            && self.shared.count
        {
            self.shared.tally.retire(previous.snapshot.clone());
        }
        self.shared.status.set_version(version);
        let keys = self.affected(flags, &segments);
        if !keys.is_empty() {
            tracing::debug!(version, flags = keys.len(), "flags changed");
            self.shared
                .notifier
                .emit(ClientEvent::FlagsChanged(Arc::new(FlagChange {
                    keys: keys.into_iter().collect(),
                    version,
                })));
        }
    }

    /// The changed flags plus every flag that depends on a changed flag or segment.
    fn affected(
        &self,
        mut flags: BTreeSet<String>,
        segments: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut segments: BTreeSet<&str> = segments.iter().map(String::as_str).collect();
        if !segments.is_empty() {
            // Segments that use changed segments, transitively.
            loop {
                let more: Vec<&str> = self
                    .index
                    .segments
                    .iter()
                    .filter(|(k, m)| {
                        !segments.contains(&***k)
                            && m.segments.iter().any(|s| segments.contains(&**s))
                    })
                    .map(|(k, _)| &**k)
                    .collect();
                if more.is_empty() {
                    break;
                }
                segments.extend(more);
            }
            for (key, meta) in &self.index.flags {
                if meta.segments.iter().any(|s| segments.contains(&**s)) {
                    flags.insert(key.to_string());
                }
            }
        }
        if flags.is_empty() {
            return flags;
        }
        // Flags whose prerequisites changed, transitively.
        loop {
            let more: Vec<String> = self
                .index
                .flags
                .iter()
                .filter(|(k, m)| {
                    !flags.contains(&***k) && m.flags.iter().any(|f| flags.contains(&**f))
                })
                .map(|(k, _)| k.to_string())
                .collect();
            if more.is_empty() {
                return flags;
            }
            flags.extend(more);
        }
    }
}

fn diff(before: &HashMap<Box<str>, Meta>, after: &HashMap<Box<str>, Meta>) -> BTreeSet<String> {
    let changed = after.iter().filter(|(k, m)| {
        before
            .get(&***k)
            .is_none_or(|b| b.fingerprint != m.fingerprint)
    });
    let removed = before.iter().filter(|(k, _)| !after.contains_key(&***k));
    changed.chain(removed).map(|(k, _)| k.to_string()).collect()
}

/// A hash of a definition's JSON form: equal definitions, equal fingerprints.
fn fingerprint<T: serde::Serialize>(def: &T) -> u64 {
    struct HashWriter(DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // `DefaultHasher::new()` has fixed keys, so fingerprints are stable within the process.
    let mut w = HashWriter(DefaultHasher::new());
    // Serializing a model type into a writer that cannot fail does not fail; if it ever
    // did, the fingerprint would only make a change look new (a spurious notification).
    let _ = serde_json::to_writer(&mut w, def);
    w.0.finish()
}

fn reads_now<'a>(mut clauses: impl Iterator<Item = &'a Clause>) -> bool {
    clauses.any(Clause::reads_now)
}

fn serve_reads_now(serve: &Serve) -> bool {
    serve
        .rollout
        .as_ref()
        .is_some_and(|r| r.bucket_by == NOW_ATTRIBUTE)
}

fn segment_refs<'a>(clauses: impl Iterator<Item = &'a Clause>) -> Box<[Box<str>]> {
    let mut refs: Vec<Box<str>> = clauses
        .filter(|c| c.op == Op::InSegment)
        .flat_map(|c| c.values.iter().filter_map(|v| v.as_str()).map(Box::from))
        .collect();
    refs.sort();
    refs.dedup();
    refs.into()
}

fn flag_meta(def: &FlagDef) -> Meta {
    Meta {
        fingerprint: fingerprint(def),
        uses_now: reads_now(def.rules.iter().flat_map(|r| r.clauses.iter()))
            || serve_reads_now(&def.fallthrough)
            || def.rules.iter().any(|r| serve_reads_now(&r.serve)),
        flags: def
            .prerequisites
            .iter()
            .map(|p| Box::from(p.flag.as_str()))
            .collect(),
        segments: segment_refs(def.rules.iter().flat_map(|r| r.clauses.iter())),
    }
}

fn segment_meta(def: &SegmentDef) -> Meta {
    Meta {
        fingerprint: fingerprint(def),
        uses_now: reads_now(def.rules.iter().flat_map(|r| r.clauses.iter())),
        flags: Box::default(),
        segments: segment_refs(def.rules.iter().flat_map(|r| r.clauses.iter())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::status::{State, Status};
    use serde_json::json;

    /// A store with no data and its event receiver (also used by `sync::stream`'s tests).
    pub(crate) fn store() -> (Store, tokio::sync::broadcast::Receiver<ClientEvent>) {
        let listeners = Arc::new(Listeners::default());
        let shared = Arc::new(Shared {
            snapshot: ArcSwapOption::empty(),
            status: StatusCell::new(Status::new(State::NotReady, "test", None)),
            notifier: Notifier::new(listeners.clone(), None),
            listeners,
            count: false,
            tally: vexil_core::Tally::default(),
            events: crate::report::Queue::default(),
        });
        let rx = shared.notifier.subscribe();
        (Store::new(shared), rx)
    }

    fn flag(extra: serde_json::Value) -> FlagDef {
        let mut v = json!({"type": "boolean",
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}});
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        serde_json::from_value(v).unwrap()
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
    fn changes_reach_dependents_and_repeats_are_silent() {
        let (mut store, mut rx) = store();
        let ruleset: Ruleset = serde_json::from_value(json!({"version": 1,
            "flags": {
                "base": flag(json!({})),
                "child": flag(json!({"prerequisites": [{"flag": "base", "variations": ["on"]}]})),
                "grandchild": flag(json!({"prerequisites": [{"flag": "child", "variations": ["on"]}]})),
                "seg-user": flag(json!({"rules": [{"clauses": [{"op": "in_segment", "values": ["outer"]}], "serve": {"variation": "on"}}]})),
                "loner": flag(json!({}))},
            "segments": {"inner": {"included": ["a"]},
                "outer": {"rules": [{"clauses": [{"op": "in_segment", "values": ["inner"]}]}]}}}))
        .unwrap();
        store.replace(&ruleset).unwrap();
        assert_eq!(changed(&mut rx).len(), 5, "first load: every flag is new");
        store.replace(&ruleset).unwrap();
        assert!(changed(&mut rx).is_empty(), "same ruleset: nothing changed");

        let base_off = flag(json!({"enabled": false}));
        let change = [OwnedChange::Flag("base".into(), Some(base_off.clone()))];
        store.apply(2, &change).unwrap();
        assert_eq!(changed(&mut rx), ["base", "child", "grandchild"]);
        store.apply(2, &change).unwrap();
        assert!(
            changed(&mut rx).is_empty(),
            "a repeated patch is not a change"
        );

        let inner = SegmentDef {
            included: vec!["b".into()],
            ..SegmentDef::default()
        };
        store
            .apply(3, &[OwnedChange::Segment("inner".into(), Some(inner))])
            .unwrap();
        assert_eq!(changed(&mut rx), ["seg-user"]);

        store
            .apply(4, &[OwnedChange::Flag("loner".into(), None)])
            .unwrap();
        assert_eq!(changed(&mut rx), ["loner"]);
        assert_eq!(store.version(), Some(4));

        // A change that does not validate leaves everything as it was.
        assert!(
            store
                .apply(5, &[OwnedChange::Flag("base".into(), None)])
                .is_err()
        );
        assert_eq!(store.version(), Some(4));
        assert!(changed(&mut rx).is_empty());
    }

    #[test]
    fn notes_whether_any_definition_reads_the_time() {
        let (mut store, _rx) = store();
        let uses_now = |store: &Store| store.shared.snapshot.load().as_ref().unwrap().uses_now;
        let plain: Ruleset = serde_json::from_value(json!({"version": 1,
            "flags": {"a": flag(json!({"rules": [{"clauses": [{"attribute": "signup", "op": "before", "values": ["2026-01-01T00:00:00Z"]}], "serve": {"variation": "on"}}]}))}}))
        .unwrap();
        store.replace(&plain).unwrap();
        assert!(
            !uses_now(&store),
            "before/after on an attribute do not read the time"
        );
        let scheduled = flag(
            json!({"rules": [{"clauses": [{"attribute": "$now", "op": "after", "values": [0]}], "serve": {"variation": "on"}}]}),
        );
        store
            .apply(2, &[OwnedChange::Flag("b".into(), Some(scheduled))])
            .unwrap();
        assert!(uses_now(&store));
        store
            .apply(3, &[OwnedChange::Flag("b".into(), None)])
            .unwrap();
        assert!(!uses_now(&store));
        let by_now = SegmentDef {
            rules: vec![
                serde_json::from_value(
                    json!({"clauses": [{"attribute": "$now", "op": "gt", "values": [0]}]}),
                )
                .unwrap(),
            ],
            ..SegmentDef::default()
        };
        store
            .apply(4, &[OwnedChange::Segment("s".into(), Some(by_now))])
            .unwrap();
        assert!(uses_now(&store), "segments count too");
        store
            .apply(5, &[OwnedChange::Segment("s".into(), None)])
            .unwrap();
        assert!(!uses_now(&store));
        let trial = flag(
            json!({"rules": [{"clauses": [{"attribute": "trial_ends_at", "op": "after", "values": ["$now"]}], "serve": {"variation": "on"}}]}),
        );
        store
            .apply(6, &[OwnedChange::Flag("c".into(), Some(trial))])
            .unwrap();
        assert!(uses_now(&store), "a \"$now\" value reads the time");
    }
}
