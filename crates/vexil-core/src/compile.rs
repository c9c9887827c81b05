//! Validation and compilation: a [`Ruleset`] becomes an immutable [`Snapshot`] in one pass
//! that reports every problem with its path, then checks prerequisite and segment cycles.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::clause::{Attr, CompiledClause, compile_clause};
use crate::counts::Counters;
use crate::error::{ValidationError, ValidationErrors};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::model::{FlagDef, FlagType, Ruleset, SegmentDef, Serve};

/// The largest total a rollout's weights may (and must) reach: 100 %.
pub const TOTAL_WEIGHT: u32 = 100_000;

/// A compiled serve: a variation index, or cumulative rollout buckets.
#[derive(Debug, Clone)]
pub(crate) enum CompiledServe {
    Fixed(usize),
    Rollout {
        bucket_by: Attr,
        salt: Box<str>,
        buckets: Box<[(u32, usize)]>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub id: Option<Box<str>>,
    pub clauses: Box<[CompiledClause]>,
    pub serve: CompiledServe,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledPrereq {
    pub flag: Box<str>,
    pub variations: Box<[Box<str>]>,
}

/// A flag ready for evaluation in one environment.
#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub key: Arc<str>,
    pub kind: FlagType,
    pub variations: Box<[(Box<str>, Value)]>,
    pub enabled: bool,
    pub off: usize,
    pub fallthrough: CompiledServe,
    pub targets: FxHashMap<Box<str>, usize>,
    pub rules: Box<[CompiledRule]>,
    pub prereqs: Box<[CompiledPrereq]>,
    pub client_side: bool,
    pub archived: bool,
    pub version: u64,
    /// No targets, rules or prerequisites and a fixed fallthrough (OFREP reason `STATIC`).
    pub is_static: bool,
    /// Evaluations counted per variation since the last drain (`counts.rs`).
    pub counts: Counters,
}

/// A segment ready for membership tests.
#[derive(Debug, Clone)]
pub(crate) struct CompiledSegment {
    pub included: FxHashSet<Box<str>>,
    pub excluded: FxHashSet<Box<str>>,
    pub rules: Box<[Box<[CompiledClause]>]>,
}

/// An immutable, compiled ruleset for one environment. Cheap to share behind an `Arc`;
/// evaluation against it does no I/O and, on the boolean hot path, no allocation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) flags: FxHashMap<Arc<str>, Arc<CompiledFlag>>,
    pub(crate) segments: FxHashMap<Arc<str>, Arc<CompiledSegment>>,
}

/// Returns whether `key` is a valid flag, segment or variation key:
/// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`.
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 100
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub(crate) const KEY_RULE: &str = "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$";

impl Snapshot {
    /// Validates `ruleset` and compiles it. On failure every problem found is returned.
    pub fn compile(ruleset: &Ruleset) -> Result<Snapshot, ValidationErrors> {
        let mut errors = Vec::new();
        let segment_exists = |k: &str| ruleset.segments.contains_key(k);

        let mut segments = FxHashMap::default();
        for (key, def) in &ruleset.segments {
            let path = format!("segments.{key}");
            if !is_valid_key(key) {
                errors.push(ValidationError::new(
                    &path,
                    format!("invalid segment key: {KEY_RULE}"),
                ));
            }
            if let Some(seg) = compile_segment(def, &path, &segment_exists, &mut errors) {
                segments.insert(Arc::from(key.as_str()), Arc::new(seg));
            }
        }

        let mut flags = FxHashMap::default();
        for (key, def) in &ruleset.flags {
            let path = format!("flags.{key}");
            if !is_valid_key(key) {
                errors.push(ValidationError::new(
                    &path,
                    format!("invalid flag key: {KEY_RULE}"),
                ));
            }
            let lookup = |k: &str, v: &str| {
                ruleset
                    .flags
                    .get(k)
                    .map(|f| f.variations.iter().any(|x| x.key == v))
            };
            if let Some(flag) = compile_flag(key, def, &path, &lookup, &segment_exists, &mut errors)
            {
                flags.insert(flag.key.clone(), Arc::new(flag));
            }
        }

        check_prerequisite_cycles(&ruleset.flags, &mut errors);
        check_segment_cycles(&ruleset.segments, &mut errors);

        if errors.is_empty() {
            Ok(Snapshot {
                version: ruleset.version,
                flags,
                segments,
            })
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Validates `ruleset` without keeping the compiled result.
    pub fn validate(ruleset: &Ruleset) -> Result<(), ValidationErrors> {
        Snapshot::compile(ruleset).map(|_| ())
    }

    /// The ruleset version this snapshot was compiled from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of flags (archived ones included).
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

pub(crate) fn compile_segment(
    def: &SegmentDef,
    path: &str,
    segment_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ValidationError>,
) -> Option<CompiledSegment> {
    let before = errors.len();
    let mut rules = Vec::with_capacity(def.rules.len());
    for (ri, rule) in def.rules.iter().enumerate() {
        let mut clauses = Vec::with_capacity(rule.clauses.len());
        for (ci, clause) in rule.clauses.iter().enumerate() {
            let cpath = format!("{path}.rules[{ri}].clauses[{ci}]");
            if let Some(c) = compile_clause(clause, &cpath, segment_exists, errors) {
                clauses.push(c);
            }
        }
        rules.push(clauses.into_boxed_slice());
    }
    (errors.len() == before).then(|| CompiledSegment {
        included: def.included.iter().map(|s| Box::from(s.as_str())).collect(),
        excluded: def.excluded.iter().map(|s| Box::from(s.as_str())).collect(),
        rules: rules.into(),
    })
}

/// Answers, for another flag `k` and a variation key `v`: `None` when flag `k` does not
/// exist, else whether it has variation `v`. Lets prerequisites be checked against a
/// ruleset being compiled or against an existing snapshot alike.
pub(crate) type FlagVariations<'a> = dyn Fn(&str, &str) -> Option<bool> + 'a;

/// Compiles one flag. `flag_variations` resolves other flags (for prerequisites).
pub(crate) fn compile_flag(
    key: &str,
    def: &FlagDef,
    path: &str,
    flag_variations: &FlagVariations<'_>,
    segment_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ValidationError>,
) -> Option<CompiledFlag> {
    let before = errors.len();
    let err = |errors: &mut Vec<ValidationError>, p: String, m: String| {
        errors.push(ValidationError::new(p, m));
    };

    if def.variations.is_empty() {
        err(
            errors,
            format!("{path}.variations"),
            "at least one variation is required".into(),
        );
    }
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for (i, v) in def.variations.iter().enumerate() {
        let vpath = format!("{path}.variations[{i}]");
        if !is_valid_key(&v.key) {
            err(
                errors,
                format!("{vpath}.key"),
                format!("invalid variation key: {KEY_RULE}"),
            );
        }
        if index.insert(v.key.as_str(), i).is_some() {
            err(
                errors,
                format!("{vpath}.key"),
                format!("duplicate variation key '{}'", v.key),
            );
        }
        if !def.kind.accepts(&v.value) {
            err(
                errors,
                format!("{vpath}.value"),
                format!("must be a {} value", def.kind.as_str()),
            );
        }
    }
    let values = || def.variations.iter().map(|v| &v.value);
    if def.kind == FlagType::Boolean
        && !def.variations.is_empty()
        && !(def.variations.len() == 2
            && values().any(|v| *v == Value::Bool(true))
            && values().any(|v| *v == Value::Bool(false)))
    {
        err(
            errors,
            format!("{path}.variations"),
            "a boolean flag has exactly two variations, with the values true and false".into(),
        );
    }
    let resolve = |errors: &mut Vec<ValidationError>, p: String, k: &str| -> Option<usize> {
        let found = index.get(k).copied();
        if found.is_none() {
            errors.push(ValidationError::new(p, format!("unknown variation '{k}'")));
        }
        found
    };

    let off = resolve(errors, format!("{path}.off_variation"), &def.off_variation);
    let fallthrough = compile_serve(
        key,
        &def.fallthrough,
        &format!("{path}.fallthrough"),
        &resolve,
        errors,
    );

    let mut targets = FxHashMap::default();
    let mut targeted_by: FxHashMap<&str, usize> = FxHashMap::default();
    for (ti, t) in def.targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{ti}]");
        let var = resolve(errors, format!("{tpath}.variation"), &t.variation);
        for (vi, value) in t.values.iter().enumerate() {
            if let Some(prev) = targeted_by.insert(value.as_str(), ti) {
                err(
                    errors,
                    format!("{tpath}.values[{vi}]"),
                    format!("'{value}' is already targeted by targets[{prev}]"),
                );
            }
            if let Some(var) = var {
                targets.insert(Box::from(value.as_str()), var);
            }
        }
    }

    let mut rules = Vec::with_capacity(def.rules.len());
    let mut rule_ids: FxHashMap<&str, usize> = FxHashMap::default();
    for (ri, rule) in def.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{ri}]");
        if let Some(id) = &rule.id {
            if id.is_empty() || id.len() > 100 {
                err(
                    errors,
                    format!("{rpath}.id"),
                    "rule id must be 1 to 100 characters".into(),
                );
            }
            if let Some(prev) = rule_ids.insert(id.as_str(), ri) {
                err(
                    errors,
                    format!("{rpath}.id"),
                    format!("duplicate rule id '{id}' (also rules[{prev}])"),
                );
            }
        }
        let mut clauses = Vec::with_capacity(rule.clauses.len());
        for (ci, clause) in rule.clauses.iter().enumerate() {
            let cpath = format!("{rpath}.clauses[{ci}]");
            if let Some(c) = compile_clause(clause, &cpath, segment_exists, errors) {
                clauses.push(c);
            }
        }
        let serve = compile_serve(
            key,
            &rule.serve,
            &format!("{rpath}.serve"),
            &resolve,
            errors,
        );
        if let Some(serve) = serve {
            rules.push(CompiledRule {
                id: rule.id.as_deref().map(Box::from),
                clauses: clauses.into(),
                serve,
            });
        }
    }

    let mut prereqs = Vec::with_capacity(def.prerequisites.len());
    let mut seen_prereqs: FxHashSet<&str> = FxHashSet::default();
    for (pi, p) in def.prerequisites.iter().enumerate() {
        let ppath = format!("{path}.prerequisites[{pi}]");
        if p.flag == key {
            err(
                errors,
                format!("{ppath}.flag"),
                "a flag cannot be its own prerequisite".into(),
            );
            continue;
        }
        if !seen_prereqs.insert(p.flag.as_str()) {
            err(
                errors,
                format!("{ppath}.flag"),
                format!("duplicate prerequisite '{}'", p.flag),
            );
        }
        if flag_variations(&p.flag, "").is_none() {
            err(
                errors,
                format!("{ppath}.flag"),
                format!("unknown flag '{}'", p.flag),
            );
            continue;
        }
        if p.variations.is_empty() {
            err(
                errors,
                format!("{ppath}.variations"),
                "at least one variation is required".into(),
            );
        }
        for (vi, v) in p.variations.iter().enumerate() {
            if flag_variations(&p.flag, v) != Some(true) {
                err(
                    errors,
                    format!("{ppath}.variations[{vi}]"),
                    format!("flag '{}' has no variation '{v}'", p.flag),
                );
            }
        }
        prereqs.push(CompiledPrereq {
            flag: p.flag.as_str().into(),
            variations: p.variations.iter().map(|v| Box::from(v.as_str())).collect(),
        });
    }

    if errors.len() != before {
        return None;
    }
    let (off, fallthrough) = (off?, fallthrough?);
    let is_static = def.targets.is_empty()
        && def.rules.is_empty()
        && def.prerequisites.is_empty()
        && matches!(fallthrough, CompiledServe::Fixed(_));
    Some(CompiledFlag {
        key: Arc::from(key),
        kind: def.kind,
        variations: def
            .variations
            .iter()
            .map(|v| (Box::from(v.key.as_str()), v.value.clone()))
            .collect(),
        enabled: def.enabled,
        off,
        fallthrough,
        targets,
        rules: rules.into(),
        prereqs: prereqs.into(),
        client_side: def.client_side,
        archived: def.archived,
        version: def.version,
        is_static,
        counts: Counters::new(def.variations.len()),
    })
}

/// Resolves a variation key to its index, recording an error at the given path if unknown.
type Resolve<'a> = dyn Fn(&mut Vec<ValidationError>, String, &str) -> Option<usize> + 'a;

fn compile_serve(
    flag_key: &str,
    serve: &Serve,
    path: &str,
    resolve: &Resolve<'_>,
    errors: &mut Vec<ValidationError>,
) -> Option<CompiledServe> {
    match (&serve.variation, &serve.rollout) {
        (Some(v), None) => {
            resolve(errors, format!("{path}.variation"), v).map(CompiledServe::Fixed)
        }
        (None, Some(r)) => {
            let before = errors.len();
            let rpath = format!("{path}.rollout");
            if r.bucket_by.is_empty() {
                errors.push(ValidationError::new(
                    format!("{rpath}.bucket_by"),
                    "must not be empty",
                ));
            }
            if r.variations.is_empty() {
                errors.push(ValidationError::new(
                    format!("{rpath}.variations"),
                    "at least one variation is required",
                ));
            }
            let mut buckets = Vec::with_capacity(r.variations.len());
            let mut total: u64 = 0;
            let mut seen = FxHashSet::default();
            for (i, wv) in r.variations.iter().enumerate() {
                let vpath = format!("{rpath}.variations[{i}]");
                let idx = resolve(errors, format!("{vpath}.variation"), &wv.variation);
                if !seen.insert(wv.variation.as_str()) {
                    errors.push(ValidationError::new(
                        format!("{vpath}.variation"),
                        format!("variation '{}' appears twice in the rollout", wv.variation),
                    ));
                }
                total += u64::from(wv.weight);
                if let Some(idx) = idx {
                    buckets.push((total.min(u64::from(u32::MAX)) as u32, idx));
                }
            }
            if !r.variations.is_empty() && total != u64::from(TOTAL_WEIGHT) {
                errors.push(ValidationError::new(
                    format!("{rpath}.variations"),
                    format!("weights must sum to {TOTAL_WEIGHT} (100%), got {total}"),
                ));
            }
            (errors.len() == before).then(|| CompiledServe::Rollout {
                bucket_by: Attr::new(&r.bucket_by),
                salt: r.seed.as_deref().unwrap_or(flag_key).into(),
                buckets: buckets.into(),
            })
        }
        _ => {
            errors.push(ValidationError::new(
                path,
                "must have exactly one of 'variation' or 'rollout'",
            ));
            None
        }
    }
}

/// Depth-first search for cycles in a key → referenced keys graph; reports each cycle once,
/// at the edge that closes it.
fn find_cycles<'a>(
    nodes: impl Iterator<Item = &'a str>,
    edges: &dyn Fn(&str) -> Vec<(&'a str, String)>,
    describe: &str,
    errors: &mut Vec<ValidationError>,
) {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        stack: &mut Vec<&'a str>,
        state: &mut BTreeMap<&'a str, u8>,
        edges: &dyn Fn(&str) -> Vec<(&'a str, String)>,
        describe: &str,
        errors: &mut Vec<ValidationError>,
    ) {
        state.insert(node, 1);
        stack.push(node);
        for (next, path) in edges(node) {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, stack, state, edges, describe, errors),
                1 => {
                    let start = stack.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[start..].to_vec();
                    cycle.push(next);
                    errors.push(ValidationError::new(
                        path,
                        format!("{describe} cycle: {}", cycle.join(" → ")),
                    ));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
    for node in nodes {
        if state.get(node).copied().unwrap_or(0) == 0 {
            visit(node, &mut Vec::new(), &mut state, edges, describe, errors);
        }
    }
}

fn check_prerequisite_cycles(flags: &BTreeMap<String, FlagDef>, errors: &mut Vec<ValidationError>) {
    let edges = |k: &str| -> Vec<(&str, String)> {
        let Some(f) = flags.get(k) else {
            return Vec::new();
        };
        f.prerequisites
            .iter()
            .enumerate()
            .filter(|(_, p)| p.flag != k)
            .filter_map(|(i, p)| {
                let (key, _) = flags.get_key_value(&p.flag)?;
                Some((key.as_str(), format!("flags.{k}.prerequisites[{i}].flag")))
            })
            .collect()
    };
    find_cycles(
        flags.keys().map(String::as_str),
        &edges,
        "prerequisite",
        errors,
    );
}

fn check_segment_cycles(
    segments: &BTreeMap<String, SegmentDef>,
    errors: &mut Vec<ValidationError>,
) {
    let edges = |k: &str| -> Vec<(&str, String)> {
        let Some(s) = segments.get(k) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (ri, rule) in s.rules.iter().enumerate() {
            for (ci, clause) in rule.clauses.iter().enumerate() {
                if clause.op != crate::model::Op::InSegment {
                    continue;
                }
                for (vi, v) in clause.values.iter().enumerate() {
                    if let Some((key, _)) = v.as_str().and_then(|v| segments.get_key_value(v)) {
                        out.push((
                            key.as_str(),
                            format!("segments.{k}.rules[{ri}].clauses[{ci}].values[{vi}]"),
                        ));
                    }
                }
            }
        }
        out
    };
    find_cycles(
        segments.keys().map(String::as_str),
        &edges,
        "segment",
        errors,
    );
}
