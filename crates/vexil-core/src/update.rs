//! Incremental updates: a new snapshot from an existing one plus a few changed or removed
//! flags and segments, compiling and validating only what changed. Unchanged flags and
//! segments are shared (`Arc`) between the two snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::compile::{
    CompiledSegment, KEY_RULE, Snapshot, compile_flag, compile_segment, is_valid_key,
};
use crate::error::{ValidationError, ValidationErrors};
use crate::model::{FlagDef, SegmentDef};

/// One change to apply to a snapshot.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    UpsertFlag { key: &'a str, def: &'a FlagDef },
    RemoveFlag { key: &'a str },
    UpsertSegment { key: &'a str, def: &'a SegmentDef },
    RemoveSegment { key: &'a str },
}

impl Snapshot {
    /// Returns a snapshot at `version` with `changes` applied (later changes to the same key
    /// win). The result is validated exactly as [`Snapshot::compile`] would validate the whole
    /// ruleset: references resolve, removed flags and segments are not referenced, and no
    /// prerequisite or segment cycle is introduced. On error `self` is unaffected.
    pub fn apply(
        &self,
        version: u64,
        changes: &[Change<'_>],
    ) -> Result<Snapshot, ValidationErrors> {
        let mut flag_changes: BTreeMap<&str, Option<&FlagDef>> = BTreeMap::new();
        let mut segment_changes: BTreeMap<&str, Option<&SegmentDef>> = BTreeMap::new();
        for change in changes {
            match *change {
                Change::UpsertFlag { key, def } => {
                    flag_changes.insert(key, Some(def));
                }
                Change::RemoveFlag { key } => {
                    flag_changes.insert(key, None);
                }
                Change::UpsertSegment { key, def } => {
                    segment_changes.insert(key, Some(def));
                }
                Change::RemoveSegment { key } => {
                    segment_changes.insert(key, None);
                }
            }
        }
        let mut errors = Vec::new();
        let mut next = Snapshot {
            version,
            flags: self.flags.clone(),
            segments: self.segments.clone(),
        };

        let segment_exists = |k: &str| match segment_changes.get(k) {
            Some(change) => change.is_some(),
            None => self.segments.contains_key(k),
        };
        for (&key, change) in &segment_changes {
            next.segments.remove(key);
            let Some(def) = change else { continue };
            let path = format!("segments.{key}");
            if !is_valid_key(key) {
                errors.push(ValidationError::new(
                    &path,
                    format!("invalid segment key: {KEY_RULE}"),
                ));
            }
            if let Some(seg) = compile_segment(def, &path, &segment_exists, &mut errors) {
                next.segments.insert(Arc::from(key), Arc::new(seg));
            }
        }

        let flag_variations = |k: &str, v: &str| match flag_changes.get(k) {
            Some(Some(def)) => Some(def.variations.iter().any(|x| x.key == v)),
            Some(None) => None,
            None => self
                .flags
                .get(k)
                .map(|f| f.variations.iter().any(|(key, _)| &**key == v)),
        };
        for (&key, change) in &flag_changes {
            next.flags.remove(key);
            let Some(def) = change else { continue };
            let path = format!("flags.{key}");
            if !is_valid_key(key) {
                errors.push(ValidationError::new(
                    &path,
                    format!("invalid flag key: {KEY_RULE}"),
                ));
            }
            if let Some(flag) = compile_flag(
                key,
                def,
                &path,
                &flag_variations,
                &segment_exists,
                &mut errors,
            ) {
                next.flags.insert(flag.key.clone(), Arc::new(flag));
            }
        }

        if errors.is_empty() {
            next.check_removed_references(&flag_changes, &segment_changes, &mut errors);
            for (&key, change) in &flag_changes {
                if change.is_some() {
                    next.check_prerequisite_cycle(key, &mut errors);
                }
            }
            for (&key, change) in &segment_changes {
                if change.is_some() {
                    next.check_segment_cycle(key, &mut errors);
                }
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Removed flags must not be prerequisites (and changed ones must keep the variations
    /// prerequisites name); removed segments must not be used by any flag or segment.
    fn check_removed_references(
        &self,
        flags: &BTreeMap<&str, Option<&FlagDef>>,
        segments: &BTreeMap<&str, Option<&SegmentDef>>,
        errors: &mut Vec<ValidationError>,
    ) {
        let removed_segment = |k: &str| matches!(segments.get(k), Some(None));
        let mut found: Vec<ValidationError> = Vec::new();
        for (key, flag) in &self.flags {
            for (i, p) in flag.prereqs.iter().enumerate() {
                match flags.get(&*p.flag) {
                    Some(None) => found.push(ValidationError::new(
                        format!("flags.{key}.prerequisites[{i}].flag"),
                        format!("unknown flag '{}'", p.flag),
                    )),
                    // A changed flag may have dropped a variation this prerequisite names.
                    Some(Some(def)) => {
                        for (vi, v) in p.variations.iter().enumerate() {
                            if !def.variations.iter().any(|x| *x.key == **v) {
                                found.push(ValidationError::new(
                                    format!("flags.{key}.prerequisites[{i}].variations[{vi}]"),
                                    format!("flag '{}' has no variation '{v}'", p.flag),
                                ));
                            }
                        }
                    }
                    None => {}
                }
            }
            for (ri, rule) in flag.rules.iter().enumerate() {
                for (ci, clause) in rule.clauses.iter().enumerate() {
                    push_segment_refs(clause.segment_refs(), &removed_segment, &mut found, || {
                        format!("flags.{key}.rules[{ri}].clauses[{ci}]")
                    });
                }
            }
        }
        for (key, seg) in &self.segments {
            for (ri, clauses) in seg.rules.iter().enumerate() {
                for (ci, clause) in clauses.iter().enumerate() {
                    push_segment_refs(clause.segment_refs(), &removed_segment, &mut found, || {
                        format!("segments.{key}.rules[{ri}].clauses[{ci}]")
                    });
                }
            }
        }
        // Hash-map order is arbitrary; sort so that messages are stable.
        found.sort_by(|a, b| a.path.cmp(&b.path));
        errors.extend(found);
    }

    fn check_prerequisite_cycle(&self, start: &str, errors: &mut Vec<ValidationError>) {
        let edges = |k: &str| -> Vec<Arc<str>> {
            self.flags
                .get(k)
                .map(|f| f.prereqs.iter().map(|p| Arc::from(&*p.flag)).collect())
                .unwrap_or_default()
        };
        if let Some(cycle) = find_path_back(start, &edges) {
            let index = self
                .flags
                .get(start)
                .and_then(|f| f.prereqs.iter().position(|p| *p.flag == *cycle[1]))
                .unwrap_or(0);
            errors.push(ValidationError::new(
                format!("flags.{start}.prerequisites[{index}].flag"),
                format!("prerequisite cycle: {}", join(&cycle)),
            ));
        }
    }

    fn check_segment_cycle(&self, start: &str, errors: &mut Vec<ValidationError>) {
        let edges = |k: &str| -> Vec<Arc<str>> {
            self.segments
                .get(k)
                .map(|s| segment_edges(s))
                .unwrap_or_default()
        };
        if let Some(cycle) = find_path_back(start, &edges) {
            errors.push(ValidationError::new(
                format!("segments.{start}.rules"),
                format!("segment cycle: {}", join(&cycle)),
            ));
        }
    }
}

fn push_segment_refs(
    refs: &[Box<str>],
    removed: &dyn Fn(&str) -> bool,
    out: &mut Vec<ValidationError>,
    path: impl Fn() -> String,
) {
    for (vi, k) in refs.iter().enumerate() {
        if removed(k) {
            out.push(ValidationError::new(
                format!("{}.values[{vi}]", path()),
                format!("unknown segment '{k}'"),
            ));
        }
    }
}

fn segment_edges(seg: &CompiledSegment) -> Vec<Arc<str>> {
    seg.rules
        .iter()
        .flat_map(|c| c.iter())
        .flat_map(|c| c.segment_refs().iter())
        .map(|k| Arc::from(&**k))
        .collect()
}

/// A path `start → … → start` through `edges`, if one exists (depth-first, each node once).
fn find_path_back(start: &str, edges: &dyn Fn(&str) -> Vec<Arc<str>>) -> Option<Vec<Arc<str>>> {
    let mut stack: Vec<(Arc<str>, Vec<Arc<str>>)> = vec![(Arc::from(start), edges(start))];
    let mut seen = std::collections::HashSet::<Arc<str>>::new();
    while let Some((_, next)) = stack.last_mut() {
        let Some(node) = next.pop() else {
            stack.pop();
            continue;
        };
        if *node == *start {
            let mut path: Vec<Arc<str>> = stack.iter().map(|(n, _)| n.clone()).collect();
            path.push(node);
            return Some(path);
        }
        if seen.insert(node.clone()) {
            let children = edges(&node);
            stack.push((node, children));
        }
    }
    None
}

fn join(path: &[Arc<str>]) -> String {
    path.iter().map(|s| &**s).collect::<Vec<_>>().join(" → ")
}
