//! Property tests: determinism, rollout distribution, monotonic ramp-ups, `negate`, and
//! that validation and evaluation never panic on arbitrary input.

use proptest::prelude::*;
use serde_json::{Value, json};
use vexil_core::{Op, ReasonKind, Ruleset, Snapshot};

use crate::{bool_flag, ctx, snapshot};

/// A flag whose fallthrough is a two-way rollout with `first` thousandths of a percent on "on".
fn rollout_snapshot(first: u32, seed: Option<&str>) -> Snapshot {
    let mut rollout = json!({"variations": [
        {"variation": "on", "weight": first}, {"variation": "off", "weight": 100_000 - first}]});
    if let Some(seed) = seed {
        rollout["seed"] = json!(seed);
    }
    snapshot(json!({"flags": {"ramp": bool_flag(json!({"fallthrough": {"rollout": rollout}}))}}))
}

/// Whether a one-clause rule matches `context`.
fn clause_matches(clause: Value, context: Value) -> bool {
    let snap = snapshot(json!({"flags": {"f": bool_flag(json!({
        "rules": [{"clauses": [clause], "serve": {"variation": "on"}}]}))}}));
    snap.evaluate("f", &ctx(context), 0).reason.kind == ReasonKind::RuleMatch
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9.@ -]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "1.2.3",
            "10.0.0.1",
            "2026-01-01T00:00:00Z",
            "on",
            "off",
            "a",
            "b",
            "targetingKey"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                "[a-z_]{1,8}|targetingKey|type|values|op|variation",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn arb_clause() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(Op::ALL.to_vec()),
        prop::sample::select(vec!["a", "b", "n.x", "$now", "targetingKey", ""]),
        prop::collection::vec(arb_json(), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(op, attr, values, negate, ci)| {
            json!({"attribute": attr, "op": op, "values": values, "negate": negate, "case_insensitive": ci})
        })
}

/// Ruleset-shaped JSON: often valid, often subtly not (dangling references, cycles).
pub(crate) fn arb_ruleset() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec!["a", "b", "c"]);
    let serve = prop_oneof![
        prop::sample::select(vec!["on", "off", "x"]).prop_map(|v| json!({"variation": v})),
        (0u32..=100_000, prop::option::of("[a-z]{0,4}")).prop_map(|(w, seed)| json!({"rollout": {
            "seed": seed, "bucket_by": "targetingKey",
            "variations": [{"variation": "on", "weight": w}, {"variation": "off", "weight": 100_000 - w}]}})),
    ];
    let flag = (
        any::<bool>(),
        serve.clone(),
        prop::collection::vec((prop::collection::vec(arb_clause(), 0..3), serve), 0..3),
        prop::collection::vec((keys.clone(), prop::sample::select(vec!["on", "off"])), 0..2),
    )
        .prop_map(|(enabled, fallthrough, rules, prereqs)| {
            let rules: Vec<Value> = rules.into_iter().map(|(c, s)| json!({"clauses": c, "serve": s})).collect();
            let prereqs: Vec<Value> = prereqs.into_iter().map(|(k, v)| json!({"flag": k, "variations": [v]})).collect();
            bool_flag(json!({"enabled": enabled, "fallthrough": fallthrough, "rules": rules, "prerequisites": prereqs,
                "targets": [{"variation": "on", "values": ["t1"]}]}))
        });
    let segment =
        prop::collection::vec(prop::collection::vec(arb_clause(), 0..3), 0..3).prop_map(|rules| {
            json!({"included": ["i1"], "excluded": ["x1"],
            "rules": rules.into_iter().map(|c| json!({"clauses": c})).collect::<Vec<_>>()})
        });
    (
        prop::collection::btree_map(keys.clone(), flag, 0..4),
        prop::collection::btree_map(prop::sample::select(vec!["s1", "s2", "a"]), segment, 0..3),
    )
        .prop_map(|(flags, segments)| json!({"version": 1, "flags": flags, "segments": segments}))
}

pub(crate) fn arb_context() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec!["targetingKey", "a", "b", "n", "$now"]),
        arb_json(),
        0..5,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn validation_and_evaluation_never_panic(ruleset in arb_ruleset(), context in arb_context(), now in any::<i64>()) {
        let Ok(parsed) = vexil_core::from_value_with_path::<Ruleset>(ruleset) else { return Ok(()) };
        if let Ok(snap) = Snapshot::compile(&parsed) {
            let context = ctx(context);
            for key in ["a", "b", "c", "missing"] {
                let d = snap.evaluate(key, &context, now);
                // Deterministic: the same inputs give the same result.
                prop_assert_eq!(d, snap.evaluate(key, &context, now));
            }
            prop_assert_eq!(snap.evaluate_all(&context, now).count(), snap.len());
        }
    }

    #[test]
    fn parsing_arbitrary_json_never_panics(doc in arb_json()) {
        let text = doc.to_string();
        if let Ok(r) = Ruleset::from_json(&text) {
            let _ = Snapshot::compile(&r);
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Ruleset::from_json(&text);
    }

    #[test]
    fn ramping_up_never_moves_a_unit_out(key in "\\PC{0,40}", low in 0u32..=100_000, raise in 0u32..=100_000,
                                         seed in prop::option::of("[a-z]{1,6}")) {
        let high = (low + raise).min(100_000);
        let context = ctx(json!({"targetingKey": key}));
        let before = rollout_snapshot(low, seed.as_deref());
        let after = rollout_snapshot(high, seed.as_deref());
        if before.evaluate("ramp", &context, 0).variation == Some("on") {
            prop_assert_eq!(after.evaluate("ramp", &context, 0).variation, Some("on"));
        }
    }

    #[test]
    fn negate_inverts_exactly_when_the_attribute_is_present(
        (op, values, attr) in prop_oneof![
            (prop::sample::select(vec!["in", "starts_with", "ends_with", "contains"]),
             prop::collection::vec("[ab]{0,3}", 1..3).prop_map(|v| json!(v)),
             "[ab]{0,4}".prop_map(Value::from)),
            (prop::sample::select(vec!["lt", "lte", "gt", "gte", "in"]),
             prop::collection::vec(-5i64..5, 1..3).prop_map(|v| json!(v)),
             (-5i64..5).prop_map(Value::from)),
            (prop::sample::select(vec!["semver_lt", "semver_eq", "semver_gte"]),
             prop::collection::vec((0u8..3, 0u8..3).prop_map(|(a, b)| format!("{a}.{b}.0")), 1..3).prop_map(|v| json!(v)),
             (0u8..3, 0u8..3).prop_map(|(a, b)| Value::from(format!("{a}.{b}.0")))),
        ],
        ci in any::<bool>(), present in any::<bool>()
    ) {
        let clause = |negate: bool| json!({"attribute": "x", "op": op, "values": values, "negate": negate, "case_insensitive": ci});
        let context = if present { json!({"x": attr}) } else { json!({"other": attr}) };
        let plain = clause_matches(clause(false), context.clone());
        let negated = clause_matches(clause(true), context);
        if present {
            prop_assert_ne!(plain, negated);
        } else {
            prop_assert!(!plain && !negated);
        }
    }
}

proptest! {
    // Each case evaluates 100,000 units, so fewer cases.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn rollouts_distribute_within_half_a_point(weight in 0u32..=100_000, seed in prop::option::of("[a-z]{1,8}"), prefix in "[a-z]{0,6}") {
        let snap = rollout_snapshot(weight, seed.as_deref());
        let mut context = ctx(json!({}));
        let mut on = 0u32;
        const UNITS: u32 = 100_000;
        for i in 0..UNITS {
            context.insert("targetingKey", Value::from(format!("{prefix}user-{i}")));
            if snap.evaluate("ramp", &context, 0).variation == Some("on") {
                on += 1;
            }
        }
        let share = f64::from(on) / f64::from(UNITS) * 100.0;
        let expected = f64::from(weight) / 1000.0;
        prop_assert!((share - expected).abs() <= 0.5, "weight {}%: got {}%", expected, share);
    }
}

#[test]
fn integer_and_string_bucketing_keys_agree() {
    let snap = rollout_snapshot(50_000, None);
    for i in [-12i64, 0, 7, 123_456_789] {
        let as_int = snap.evaluate("ramp", &ctx(json!({"targetingKey": i})), 0);
        let as_str = snap.evaluate("ramp", &ctx(json!({"targetingKey": i.to_string()})), 0);
        assert_eq!(as_int.variation, as_str.variation, "{i}");
        assert!(as_int.reason.in_rollout);
    }
    let float = snap.evaluate("ramp", &ctx(json!({"targetingKey": 1.5})), 0);
    assert_eq!(
        float.reason.error_code,
        Some(vexil_core::ErrorCode::TargetingKeyMissing)
    );
}
