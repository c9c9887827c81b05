//! Checks of a segment's definition before it is stored: size limits and rule ids
//! ([`check_bounds`]; rule ids come from `fields::assign_rule_ids`), then its meaning, through `vexil-core`, among
//! the project's other segments, cycles included ([`validate_in_project`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use vexil_core::{
    Op, Ruleset, SegmentDef, SegmentRule, Snapshot, ValidationError, ValidationErrors,
};

use crate::manage::Result;
use crate::store::Conn;
use crate::store::segments::{self, referenced_segments};

/// Most `included` (and, separately, `excluded`) values in a segment.
const MAX_LIST_VALUES: usize = 10_000;
/// Longest `included`/`excluded` value, in characters.
const MAX_VALUE_CHARS: usize = 256;
const MAX_RULES: usize = 100;
const MAX_CLAUSES: usize = 50;
const MAX_CLAUSE_VALUES: usize = 10_000;
/// Longest rule id, as `vexil-core` accepts for flag rules.
const MAX_RULE_ID_CHARS: usize = 100;

/// Size limits and rule ids, every problem with its path. What the rules mean is checked
/// by [`validate_in_project`].
pub(super) fn check_bounds(def: &SegmentDef) -> Result<()> {
    let mut errors = Vec::new();
    for (field, values) in [("included", &def.included), ("excluded", &def.excluded)] {
        check_list(field, values, &mut errors);
    }
    check_rules(&def.rules, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors).into())
    }
}

fn check_list(field: &str, values: &[String], errors: &mut Vec<ValidationError>) {
    if values.len() > MAX_LIST_VALUES {
        let message = format!("at most {MAX_LIST_VALUES} values");
        errors.push(ValidationError::new(field, message));
    }
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() || v.chars().count() > MAX_VALUE_CHARS {
            let message = format!("must be 1 to {MAX_VALUE_CHARS} characters");
            errors.push(ValidationError::new(format!("{field}[{i}]"), message));
        }
    }
}

fn check_rules(rules: &[SegmentRule], errors: &mut Vec<ValidationError>) {
    let mut err = |path: String, message: String| errors.push(ValidationError::new(path, message));
    if rules.len() > MAX_RULES {
        err("rules".into(), format!("at most {MAX_RULES} rules"));
    }
    let mut ids = BTreeMap::new();
    for (ri, rule) in rules.iter().enumerate() {
        if let Some(id) = &rule.id {
            if id.is_empty() || id.chars().count() > MAX_RULE_ID_CHARS {
                let message = format!("must be 1 to {MAX_RULE_ID_CHARS} characters");
                err(format!("rules[{ri}].id"), message);
            }
            if let Some(prev) = ids.insert(id.as_str(), ri) {
                let message = format!("duplicate rule id '{id}' (also rules[{prev}])");
                err(format!("rules[{ri}].id"), message);
            }
        }
        // A rule without clauses would put every context in the segment: surely a mistake.
        if rule.clauses.is_empty() || rule.clauses.len() > MAX_CLAUSES {
            let message = format!("must have 1 to {MAX_CLAUSES} clauses");
            err(format!("rules[{ri}].clauses"), message);
        }
        for (ci, clause) in rule.clauses.iter().enumerate() {
            if clause.values.len() > MAX_CLAUSE_VALUES {
                let message = format!("at most {MAX_CLAUSE_VALUES} values");
                err(format!("rules[{ri}].clauses[{ci}].values"), message);
            }
        }
    }
}

/// Validates segment `key` with definition `def` through `vexil-core`, in the company of
/// the project's other segments, and rejects `in_segment` references that close a cycle.
/// Paths in the errors are relative to the segment (`rules[0].clauses[1].values[0]`).
pub(super) async fn validate_in_project(
    conn: &mut Conn,
    project_id: &str,
    key: &str,
    def: &SegmentDef,
) -> Result<()> {
    let mut others: BTreeMap<String, SegmentDef> = segments::definitions(conn, project_id)
        .await?
        .into_iter()
        .collect();
    others.remove(key);
    // Only this segment is compiled; the others take part by key (so that `in_segment`
    // can name them) and in the cycle search below, which reads their stored definitions.
    let mut segments: BTreeMap<String, SegmentDef> = others
        .keys()
        .map(|k| (k.clone(), SegmentDef::default()))
        .collect();
    segments.insert(key.to_owned(), def.clone());
    let ruleset = Ruleset {
        version: 0,
        flags: BTreeMap::new(),
        segments,
    };
    let mut problems = match Snapshot::validate(&ruleset) {
        Ok(()) => Vec::new(),
        Err(errors) => relative_to_segment(key, errors),
    };
    for cycle in cycles_through(key, def, &others) {
        if !problems.iter().any(|p| p.path == cycle.path) {
            problems.push(cycle);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(problems).into())
    }
}

/// The core's problems with paths relative to segment `key`: `segments.<key>.rules[0]`
/// becomes `rules[0]`.
fn relative_to_segment(key: &str, errors: ValidationErrors) -> Vec<ValidationError> {
    let (whole, prefix) = (format!("segments.{key}"), format!("segments.{key}."));
    let mut problems = errors.0;
    for p in &mut problems {
        if p.path == whole {
            p.path.clear();
        } else if let Some(rest) = p.path.strip_prefix(&prefix) {
            p.path = rest.to_owned();
        }
    }
    problems
}

/// Every `in_segment` value of `def` (the new definition of `key`) from which the stored
/// segments lead back to `key`, as an error at that value's path naming the cycle.
fn cycles_through(
    key: &str,
    def: &SegmentDef,
    others: &BTreeMap<String, SegmentDef>,
) -> Vec<ValidationError> {
    let mut out = Vec::new();
    for (ri, rule) in def.rules.iter().enumerate() {
        for (ci, clause) in rule.clauses.iter().enumerate() {
            if clause.op != Op::InSegment {
                continue;
            }
            for (vi, value) in clause.values.iter().enumerate() {
                let Some(start) = value.as_str() else {
                    continue;
                };
                if let Some(chain) = chain(start, key, others) {
                    out.push(ValidationError::new(
                        format!("rules[{ri}].clauses[{ci}].values[{vi}]"),
                        format!("segment cycle: {key} → {}", chain.join(" → ")),
                    ));
                }
            }
        }
    }
    out
}

/// The shortest chain of segment keys `from → … → to` along `in_segment` references.
fn chain<'a>(
    from: &'a str,
    to: &'a str,
    segments: &'a BTreeMap<String, SegmentDef>,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![node];
            while let Some(p) = parent.get(path[path.len() - 1]) {
                path.push(p);
            }
            path.reverse();
            return Some(path);
        }
        for next in segments.get(node).into_iter().flat_map(referenced_segments) {
            if seen.insert(next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manage::fields::assign_rule_ids;
    use crate::store::new_id;

    fn def(json: serde_json::Value) -> SegmentDef {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn chains_follow_in_segment_references() {
        let refs =
            |k: &str| def(json!({"rules": [{"clauses": [{"op": "in_segment", "values": [k]}]}]}));
        let others = BTreeMap::from([("b".to_owned(), refs("c")), ("c".to_owned(), refs("a"))]);
        assert_eq!(chain("b", "a", &others), Some(vec!["b", "c", "a"]));
        assert_eq!(chain("c", "b", &others), None);
        let cycles = cycles_through("a", &refs("b"), &others);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].path, "rules[0].clauses[0].values[0]");
        assert_eq!(cycles[0].message, "segment cycle: a → b → c → a");
    }

    #[test]
    fn rule_ids_are_kept_or_reused() {
        let clause = json!({"attribute": "plan", "op": "in", "values": ["pro"]});
        let previous =
            vec![def(json!({"rules": [{"id": "r1", "clauses": [clause]}]})).rules[0].clone()];
        let mut rules = def(json!({"rules": [{"clauses": [clause]}, {"clauses": [clause]}]})).rules;
        assign_rule_ids(&mut rules, &previous, new_id);
        assert_eq!(rules[0].id.as_deref(), Some("r1"));
        assert!(rules[1].id.as_deref().is_some_and(|id| id != "r1"));
    }
}
