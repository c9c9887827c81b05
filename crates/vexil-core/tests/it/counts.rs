//! Evaluation counts: what `Detail::count` adds is what a drain takes, per variation, once;
//! errors count nothing; a snapshot replaced by an update keeps its counts for the `Tally`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use vexil_core::{Change, Context, FlagDef, Tally};

use crate::{bool_flag, snapshot};

fn drained(tally: &Tally, current: &vexil_core::Snapshot) -> BTreeMap<(String, String), u64> {
    let mut taken = BTreeMap::new();
    tally.drain(Some(current), |flag, variation, n| {
        *taken
            .entry((flag.to_owned(), variation.to_owned()))
            .or_default() += n;
    });
    taken
}

#[test]
fn counted_evaluations_are_drained_once_per_variation() {
    let snap = snapshot(json!({"version": 1, "flags": {
        "split": bool_flag(json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
            {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}})),
        "plain": bool_flag(json!({"enabled": false, "fallthrough": {"variation": "on"}}))
    }}));
    let mut on = 0;
    for i in 0..1000 {
        let ctx: Context =
            serde_json::from_value(json!({"targetingKey": format!("u{i}")})).unwrap();
        let d = snap.evaluate("split", &ctx, 0);
        on += u64::from(d.variation == Some("on"));
        d.count();
        snap.evaluate("plain", &ctx, 0).count();
        // Errors count nothing: a missing flag, a missing targeting key.
        snap.evaluate("missing", &ctx, 0).count();
    }
    snap.evaluate("split", &Context::new(), 0).count();
    // Evaluating without counting adds nothing.
    snap.evaluate("plain", &Context::new(), 0);
    let tally = Tally::default();
    let taken = drained(&tally, &snap);
    let key = |f: &str, v: &str| (f.to_owned(), v.to_owned());
    assert_eq!(taken[&key("split", "on")], on);
    assert_eq!(taken[&key("split", "off")], 1000 - on);
    assert_eq!(taken[&key("plain", "off")], 1000);
    assert_eq!(taken.len(), 3);
    assert!(
        drained(&tally, &snap).is_empty(),
        "a second drain takes nothing"
    );
}

#[test]
fn a_replaced_snapshot_keeps_its_counts_until_drained() {
    let old = Arc::new(snapshot(json!({"version": 1, "flags": {
        "a": bool_flag(json!({"fallthrough": {"variation": "on"}})),
        "b": bool_flag(json!({"fallthrough": {"variation": "on"}}))
    }})));
    let ctx = Context::new();
    old.evaluate("a", &ctx, 0).count();
    old.evaluate("b", &ctx, 0).count();
    // "b" changes; "a" is shared by both snapshots.
    let def: FlagDef = serde_json::from_value(bool_flag(json!({"enabled": false}))).unwrap();
    let new = old
        .apply(
            2,
            &[Change::UpsertFlag {
                key: "b",
                def: &def,
            }],
        )
        .unwrap();
    let tally = Tally::default();
    tally.retire(old.clone());
    new.evaluate("a", &ctx, 0).count();
    new.evaluate("b", &ctx, 0).count();
    old.evaluate("b", &ctx, 0).count();
    let taken = drained(&tally, &new);
    let key = |f: &str, v: &str| (f.to_owned(), v.to_owned());
    assert_eq!(taken[&key("a", "on")], 2, "a shared flag is counted once");
    assert_eq!(taken[&key("b", "on")], 2, "the old b's counts");
    assert_eq!(taken[&key("b", "off")], 1, "the new b's");
    // While someone holds the old snapshot, the tally keeps it; then lets it go.
    old.evaluate("b", &ctx, 0).count();
    drop(old);
    assert_eq!(drained(&tally, &new)[&key("b", "on")], 1);
    assert!(drained(&tally, &new).is_empty());
}
