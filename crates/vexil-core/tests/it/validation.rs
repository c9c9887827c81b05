//! Validation reports every problem, each at a path a person can act on.

use serde_json::json;
use vexil_core::{Ruleset, Snapshot};

use crate::bool_flag;

/// Every `path: message` line produced by compiling `ruleset`.
fn problems(ruleset: serde_json::Value) -> Vec<String> {
    let ruleset: Ruleset = match vexil_core::from_value_with_path(ruleset) {
        Ok(r) => r,
        Err(e) => return e.iter().map(|e| e.to_string()).collect(),
    };
    match Snapshot::compile(&ruleset) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn assert_problem(ruleset: serde_json::Value, expected: &str) {
    let found = problems(ruleset);
    assert!(
        found.iter().any(|p| p.starts_with(expected)),
        "expected a problem starting with {expected:?}, got {found:#?}"
    );
}

#[test]
fn reports_every_problem_with_its_path() {
    let found = problems(json!({"flags": {"checkout": bool_flag(json!({
        "off_variation": "nope",
        "rules": [
            {"clauses": [{"attribute": "a", "op": "in", "values": ["x"]}], "serve": {"variation": "on"}},
            {"clauses": [{"attribute": "a", "op": "in", "values": ["x"]}], "serve": {"variation": "on"}},
            {"clauses": [{"attribute": "email", "op": "matches", "values": ["ok", "(unclosed"]}],
             "serve": {"rollout": {"variations": [{"variation": "on", "weight": 60000}, {"variation": "off", "weight": 30000}]}}}
        ]
    }))}}));
    assert_eq!(found, vec![
        "flags.checkout.off_variation: unknown variation 'nope'".to_owned(),
        "flags.checkout.rules[2].clauses[0].values[1]: invalid regex: unclosed group".to_owned(),
        "flags.checkout.rules[2].serve.rollout.variations: weights must sum to 100000 (100%), got 90000".to_owned(),
    ]);
}

#[test]
fn rejects_unknown_variation_references_everywhere() {
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"fallthrough": {"variation": "blue"}}))}}),
        "flags.f.fallthrough.variation: unknown variation 'blue'",
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"targets": [{"variation": "blue", "values": ["u"]}]}))}}),
        "flags.f.targets[0].variation: unknown variation 'blue'",
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"fallthrough": {"rollout": {"variations": [{"variation": "blue", "weight": 100000}]}}}))}}),
        "flags.f.fallthrough.rollout.variations[0].variation: unknown variation 'blue'",
    );
}

#[test]
fn rejects_values_of_the_wrong_type_and_empty_or_duplicate_variations() {
    assert_problem(
        json!({"flags": {"f": {"type": "number", "variations": [{"key": "a", "value": "1"}],
        "off_variation": "a", "fallthrough": {"variation": "a"}}}}),
        "flags.f.variations[0].value: must be a number value",
    );
    assert_problem(
        json!({"flags": {"f": {"type": "string", "variations": [],
        "off_variation": "a", "fallthrough": {"variation": "a"}}}}),
        "flags.f.variations: at least one variation is required",
    );
    assert_problem(
        json!({"flags": {"f": {"type": "string", "variations": [{"key": "a", "value": "x"}, {"key": "a", "value": "y"}],
        "off_variation": "a", "fallthrough": {"variation": "a"}}}}),
        "flags.f.variations[1].key: duplicate variation key 'a'",
    );
}

#[test]
fn rejects_duplicate_keys_ids_and_targets() {
    let flag = bool_flag(json!({}));
    let text = format!(r#"{{"flags": {{"a": {flag}, "a": {flag}}}}}"#);
    let err = Ruleset::from_json(&text).unwrap_err().to_string();
    assert!(err.starts_with("flags: duplicate key 'a'"), "{err}");
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"rules": [
        {"id": "r", "clauses": [], "serve": {"variation": "on"}},
        {"id": "r", "clauses": [], "serve": {"variation": "on"}}]}))}}),
        "flags.f.rules[1].id: duplicate rule id 'r'",
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"targets": [
        {"variation": "on", "values": ["u1"]}, {"variation": "off", "values": ["u2", "u1"]}]}))}}),
        "flags.f.targets[1].values[1]: 'u1' is already targeted by targets[0]",
    );
    assert_problem(
        json!({"flags": {"bad key!": bool_flag(json!({}))}}),
        "flags.bad key!: invalid flag key",
    );
}

/// A ruleset whose one flag `f` has one rule of one clause on attribute `a`.
fn clause(op: &str, values: serde_json::Value) -> serde_json::Value {
    json!({"flags": {"f": bool_flag(json!({"rules": [
    {"clauses": [{"attribute": "a", "op": op, "values": values}], "serve": {"variation": "on"}}]}))}})
}

#[test]
fn rejects_invalid_operator_values() {
    let at = "flags.f.rules[0].clauses[0]";
    assert_problem(
        clause("semver_gt", json!(["1.0.0", "one"])),
        &format!("{at}.values[1]: invalid semver"),
    );
    assert_problem(
        clause("in_cidr", json!(["10.0.0.0/40"])),
        &format!("{at}.values[0]: invalid CIDR"),
    );
    assert_problem(
        clause("before", json!(["tomorrow"])),
        &format!("{at}.values[0]: invalid date"),
    );
    assert_problem(
        clause("lt", json!(["5"])),
        &format!("{at}.values[0]: must be a number"),
    );
    assert_problem(
        clause("starts_with", json!([5])),
        &format!("{at}.values[0]: must be a string"),
    );
    assert_problem(
        clause("in", json!([{"a": 1}])),
        &format!("{at}.values[0]: must be a string, number or boolean"),
    );
    assert_problem(
        clause("exists", json!(["x"])),
        &format!("{at}.values: exists takes no values"),
    );
    assert_problem(
        clause("in", json!([])),
        &format!("{at}.values: at least one value is required"),
    );
    assert_problem(
        clause("in_segment", json!(["ghost"])),
        &format!("{at}.values[0]: unknown segment 'ghost'"),
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"rules": [
        {"clauses": [{"attribute": "a", "op": "bogus_op", "values": [1]}], "serve": {"variation": "on"}}]}))}}),
        "flags.f.rules[0].clauses[0].op: unknown variant `bogus_op`",
    );
}

#[test]
fn accepts_now_for_dates_and_a_prefix_on_versions() {
    let at = "flags.f.rules[0].clauses[0]";
    for op in ["before", "after"] {
        assert_eq!(
            problems(clause(op, json!(["$now", "2026-01-01T00:00:00Z", 0]))),
            Vec::<String>::new()
        );
        assert_problem(
            clause(op, json!(["$NOW"])),
            &format!(
                "{at}.values[0]: invalid date: expected an RFC 3339 timestamp, integer epoch milliseconds or \"$now\""
            ),
        );
    }
    assert_problem(
        clause("gt", json!(["$now"])),
        &format!("{at}.values[0]: must be a number"),
    );
    assert_eq!(
        problems(clause("semver_gte", json!(["v1.2.3", "V2.0.0-rc.1"]))),
        Vec::<String>::new()
    );
    // A clause's version is complete: only the context's may be partial or a number.
    for partial in ["v1.2", "1.2", "vv1.2.3"] {
        assert_problem(
            clause("semver_gte", json!([partial])),
            &format!("{at}.values[0]: invalid semver"),
        );
    }
    assert_problem(
        clause("semver_gte", json!([1.2])),
        &format!("{at}.values[0]: must be a semver string"),
    );
}

#[test]
fn rejects_prerequisite_problems_and_cycles() {
    assert_problem(
        json!({"flags": {"a": bool_flag(json!({"prerequisites": [{"flag": "ghost", "variations": ["on"]}]}))}}),
        "flags.a.prerequisites[0].flag: unknown flag 'ghost'",
    );
    assert_problem(
        json!({"flags": {"a": bool_flag(json!({"prerequisites": [{"flag": "a", "variations": ["on"]}]}))}}),
        "flags.a.prerequisites[0].flag: a flag cannot be its own prerequisite",
    );
    assert_problem(
        json!({"flags": {
        "a": bool_flag(json!({"prerequisites": [{"flag": "b", "variations": ["maybe"]}]})),
        "b": bool_flag(json!({}))}}),
        "flags.a.prerequisites[0].variations[0]: flag 'b' has no variation 'maybe'",
    );
    assert_problem(
        json!({"flags": {
        "a": bool_flag(json!({"prerequisites": [{"flag": "b", "variations": ["on"]}]})),
        "b": bool_flag(json!({"prerequisites": [{"flag": "c", "variations": ["on"]}]})),
        "c": bool_flag(json!({"prerequisites": [{"flag": "a", "variations": ["on"]}]}))}}),
        "flags.c.prerequisites[0].flag: prerequisite cycle: a → b → c → a",
    );
}

#[test]
fn rejects_segment_cycles() {
    let in_seg = |k: &str| json!({"rules": [{"clauses": [{"op": "in_segment", "values": [k]}]}]});
    assert_problem(
        json!({"segments": {"s1": in_seg("s2"), "s2": in_seg("s1")}}),
        "segments.s2.rules[0].clauses[0].values[0]: segment cycle: s1 → s2 → s1",
    );
}

#[test]
fn rejects_unknown_fields_and_wrong_types_with_a_path() {
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"rules": [{"clauses": [], "serve": {"variation": "on", "weight": 1}}]}))}}),
        "flags.f.rules[0].serve.weight: unknown field `weight`, expected `variation` or `rollout`",
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"enabled": "yes"}))}}),
        "flags.f.enabled: invalid type",
    );
    assert_problem(
        json!({"flags": {"f": bool_flag(json!({"fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": -5}]}}}))}}),
        "flags.f.fallthrough.rollout.variations[0].weight: invalid value",
    );
}

#[test]
fn a_valid_ruleset_has_no_problems() {
    assert_eq!(
        problems(
            json!({"version": 1, "flags": {"f": bool_flag(json!({}))}, "segments": {"s": {}}})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn a_missing_field_is_reported_at_its_own_path() {
    let found = problems(
        json!({"flags": {"f": {"type": "boolean", "variations": [{"key": "on", "value": true}], "fallthrough": {"variation": "on"}}}}),
    );
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("flags.f.off_variation: missing field `off_variation`"),
        "{found:?}"
    );
}
