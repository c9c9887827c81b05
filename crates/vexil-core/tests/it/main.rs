//! Integration tests of `vexil-core` through its public API: the shared JSON vectors,
//! validation messages, evaluation counts, and property tests.

mod counts;
mod properties;
mod update;
mod validation;
mod vectors;

use serde_json::{Value, json};
use vexil_core::{Context, Ruleset, Snapshot};

/// Compiles a ruleset given as a JSON value, panicking with every message if it is invalid.
pub(crate) fn snapshot(ruleset: Value) -> Snapshot {
    let ruleset: Ruleset = vexil_core::from_value_with_path(ruleset).unwrap();
    Snapshot::compile(&ruleset).unwrap_or_else(|e| panic!("invalid ruleset:\n{e}"))
}

/// A boolean flag (variations on/off) with the given extra fields merged in.
pub(crate) fn bool_flag(extra: Value) -> Value {
    let mut flag = json!({
        "type": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "enabled": true,
        "off_variation": "off",
        "fallthrough": {"variation": "off"}
    });
    if let (Some(base), Value::Object(extra)) = (flag.as_object_mut(), extra) {
        base.extend(extra);
    }
    flag
}

pub(crate) fn ctx(v: Value) -> Context {
    Context::try_from(v).unwrap_or_else(|other| panic!("context must be an object, got {other}"))
}
