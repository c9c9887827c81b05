//! `Snapshot::apply` (incremental updates) agrees with compiling the changed ruleset whole:
//! same acceptance, same evaluations, and the same kind of errors for broken references.

use proptest::prelude::*;
use serde_json::{Value, json};
use vexil_core::{Change, FlagDef, Ruleset, SegmentDef, Snapshot};

use crate::properties::{arb_context, arb_ruleset};
use crate::{bool_flag, ctx, snapshot};

fn parse(v: Value) -> Option<Ruleset> {
    vexil_core::from_value_with_path(v).ok()
}

/// Evaluations of every flag key that appears in either ruleset, as JSON, for comparison.
fn outcomes(s: &Snapshot, keys: &[String], context: &Value) -> Vec<Value> {
    let context = ctx(context.clone());
    keys.iter()
        .map(|k| serde_json::to_value(s.evaluate(k, &context, 1_000).record(k)).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_changes_equals_compiling_the_result(
        base in arb_ruleset(), other in arb_ruleset(), contexts in prop::collection::vec(arb_context(), 1..4),
        remove_flag in any::<bool>(), remove_segment in any::<bool>(),
    ) {
        let (Some(base), Some(other)) = (parse(base), parse(other)) else { return Ok(()) };
        let Ok(before) = Snapshot::compile(&base) else { return Ok(()) };

        // Change: take flag "a" and segment "s1" from `other` (or remove them), keep the rest.
        let mut target = base.clone();
        let mut changes = Vec::new();
        let flag: Option<FlagDef> = other.flags.get("a").cloned();
        let seg: Option<SegmentDef> = other.segments.get("s1").cloned();
        match (&flag, remove_flag) {
            (_, true) => { target.flags.remove("a"); changes.push(Change::RemoveFlag { key: "a" }); }
            (Some(def), false) => { target.flags.insert("a".into(), def.clone()); changes.push(Change::UpsertFlag { key: "a", def }); }
            (None, false) => {}
        }
        match (&seg, remove_segment) {
            (_, true) => { target.segments.remove("s1"); changes.push(Change::RemoveSegment { key: "s1" }); }
            (Some(def), false) => { target.segments.insert("s1".into(), def.clone()); changes.push(Change::UpsertSegment { key: "s1", def }); }
            (None, false) => {}
        }

        let whole = Snapshot::compile(&target);
        let incremental = before.apply(2, &changes);
        prop_assert_eq!(whole.is_ok(), incremental.is_ok(), "whole: {:?}\nincremental: {:?}", whole.as_ref().err(), incremental.as_ref().err());
        if let (Ok(whole), Ok(incremental)) = (whole, incremental) {
            prop_assert_eq!(incremental.version(), 2);
            prop_assert_eq!(incremental.len(), whole.len());
            let keys: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
            for c in &contexts {
                prop_assert_eq!(outcomes(&whole, &keys, c), outcomes(&incremental, &keys, c));
            }
        }
    }
}

#[test]
fn removing_a_prerequisite_or_used_segment_is_rejected_with_the_referrer() {
    let base = snapshot(json!({
        "flags": {
            "parent": bool_flag(json!({"prerequisites": [{"flag": "child", "variations": ["on"]}]})),
            "child": bool_flag(json!({"rules": [{"clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}]}))
        },
        "segments": {"beta": {"included": ["u1"]}}
    }));
    let err = base
        .apply(2, &[Change::RemoveFlag { key: "child" }])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flags.parent.prerequisites[0].flag: unknown flag 'child'"
    );
    let err = base
        .apply(2, &[Change::RemoveSegment { key: "beta" }])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flags.child.rules[0].clauses[0].values[0]: unknown segment 'beta'"
    );
    // Removing both the referrer and the referenced flag together is fine.
    let ok = base
        .apply(
            2,
            &[
                Change::RemoveFlag { key: "child" },
                Change::RemoveFlag { key: "parent" },
            ],
        )
        .unwrap();
    assert_eq!(ok.len(), 0);
    assert_eq!(base.len(), 2, "the original snapshot is unchanged");
}

#[test]
fn an_upsert_that_closes_a_cycle_is_rejected() {
    let base = snapshot(json!({"flags": {
        "a": bool_flag(json!({"prerequisites": [{"flag": "b", "variations": ["on"]}]})),
        "b": bool_flag(json!({}))
    }}));
    let def: FlagDef = serde_json::from_value(bool_flag(
        json!({"prerequisites": [{"flag": "a", "variations": ["on"]}]}),
    ))
    .unwrap();
    let err = base
        .apply(
            2,
            &[Change::UpsertFlag {
                key: "b",
                def: &def,
            }],
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flags.b.prerequisites[0].flag: prerequisite cycle: b → a → b"
    );
}

#[test]
fn an_upsert_is_visible_in_evaluation_and_versioned() {
    let base = snapshot(json!({"version": 1, "flags": {"f": bool_flag(json!({}))}}));
    let def: FlagDef = serde_json::from_value(bool_flag(
        json!({"fallthrough": {"variation": "on"}, "version": 9}),
    ))
    .unwrap();
    let next = base
        .apply(
            2,
            &[Change::UpsertFlag {
                key: "f",
                def: &def,
            }],
        )
        .unwrap();
    let context = ctx(json!({}));
    assert_eq!(base.evaluate("f", &context, 0).variation, Some("off"));
    assert_eq!(next.evaluate("f", &context, 0).variation, Some("on"));
    assert_eq!(next.evaluate("f", &context, 0).flag_version, Some(9));
    assert_eq!(next.version(), 2);
}

#[test]
fn dropping_a_variation_a_prerequisite_names_is_rejected() {
    let base = snapshot(json!({"flags": {
        "parent": bool_flag(json!({"prerequisites": [{"flag": "child", "variations": ["on"]}]})),
        "child": bool_flag(json!({}))
    }}));
    let def: FlagDef = serde_json::from_value(
        json!({"type": "string", "variations": [{"key": "off", "value": "off"}],
        "off_variation": "off", "fallthrough": {"variation": "off"}}),
    )
    .unwrap();
    let err = base
        .apply(
            2,
            &[Change::UpsertFlag {
                key: "child",
                def: &def,
            }],
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flags.parent.prerequisites[0].variations[0]: flag 'child' has no variation 'on'"
    );
}
