//! `google.protobuf.Struct` ↔ JSON: requests' contexts become the engine's `Context` through
//! the same deserialization as an OFREP body (with its limits), and JSON values and
//! metadata become `Struct`s.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as ProtoValue};
use serde_json::{Map, Number, Value};
use vexil_core::Context;

/// The largest integer a double holds exactly (2^53): whole doubles up to it read as JSON
/// integers, so that `42` sent through a `Struct` (which only has doubles) matches a clause
/// of `42` and buckets like the integer a JSON body would carry.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The evaluation context of a request: its attributes, `targetingKey` among them. No
/// context is an empty one (flagd's providers send none when the caller has none).
pub(crate) fn context(context: Option<Struct>) -> Result<Context, String> {
    let Some(context) = context else {
        return Ok(Context::new());
    };
    serde_json::from_value(struct_to_json(context)).map_err(|e| format!("invalid context: {e}"))
}

/// A `Struct` as a JSON object.
pub(crate) fn struct_to_json(s: Struct) -> Value {
    Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn value_to_json(v: ProtoValue) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_to_json).collect()),
    }
}

/// A double as JSON: whole numbers within ±2^53 as integers; NaN and infinities (which
/// JSON cannot carry) as null.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        // Exact: `n` is whole and within the range where every integer is a double.
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// A JSON object as a `Struct`; `None` for any other JSON value.
pub(crate) fn json_to_struct(v: &Value) -> Option<Struct> {
    match v {
        Value::Object(map) => Some(object_to_struct(map)),
        _ => None,
    }
}

/// A JSON object's members as a `Struct`.
pub(crate) fn object_to_struct(map: &Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// Any JSON value as a protobuf `Value` (numbers become doubles: all protobuf has).
pub(crate) fn json_to_value(v: &Value) -> ProtoValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(object_to_struct(map)),
    };
    ProtoValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structs_round_trip_and_whole_doubles_read_as_integers() {
        let value = json!({"targetingKey": "u1", "age": 42, "ratio": 0.5, "tags": ["a", null],
            "nested": {"on": true}});
        let s = json_to_struct(&value).unwrap();
        assert_eq!(struct_to_json(s.clone()), value);
        let ctx = context(Some(s)).unwrap();
        assert_eq!(ctx.targeting_key(), Some("u1"));
        assert_eq!(ctx.get("age"), Some(&json!(42)));
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(f64::NAN), Value::Null);
        assert!(json_to_struct(&json!([1])).is_none());
    }

    #[test]
    fn no_context_is_empty_and_a_deep_one_is_refused() {
        assert!(context(None).unwrap().is_empty());
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!([deep]);
        }
        let err = context(json_to_struct(&json!({ "a": deep }))).unwrap_err();
        assert!(err.starts_with("invalid context"), "{err}");
    }
}
