//! The evaluation context: a JSON object's attributes kept as a flat list, because looking
//! up a handful of attributes by scanning (lengths first) is several times faster than a
//! B-tree descent that calls `memcmp` at every step.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The most attributes a deserialized context may have: more is an error, so that one
/// request cannot make a server build (and scan) an arbitrarily large context.
pub const MAX_CONTEXT_ATTRIBUTES: usize = 1_000;

/// The deepest an attribute's value may nest arrays and objects (`{"a": [1]}` is depth 1).
pub const MAX_CONTEXT_DEPTH: usize = 16;

/// Attributes of the unit being evaluated; `targetingKey` is the stable unit id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    attrs: Vec<(Box<str>, Value)>,
}

impl Context {
    pub fn new() -> Self {
        Context::default()
    }

    /// The attribute `key`, exactly as given (no dotted-path walking).
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        let k = key.as_bytes();
        self.attrs
            .iter()
            .find(|(name, _)| short_eq(name.as_bytes(), k))
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an existing value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.attrs.iter_mut().find(|(k, _)| **k == *key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key.into_boxed_str(), value)),
        }
    }

    /// The `targetingKey` attribute when it is a string.
    pub fn targeting_key(&self) -> Option<&str> {
        self.get("targetingKey").and_then(Value::as_str)
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.attrs.iter().map(|(k, v)| (&**k, v))
    }
}

/// Byte equality that stays inline for short strings (attribute names, countries, plans)
/// instead of calling the C library's `memcmp`.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        let mut x = 0u8;
        for i in 0..a.len() {
            x |= a[i] ^ b[i];
        }
        x == 0
    } else {
        a == b
    }
}

impl From<Map<String, Value>> for Context {
    fn from(map: Map<String, Value>) -> Self {
        Context {
            attrs: map
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
        }
    }
}

impl TryFrom<Value> for Context {
    type Error = Value;
    /// Succeeds for JSON objects; anything else is handed back.
    fn try_from(value: Value) -> Result<Self, Value> {
        match value {
            Value::Object(map) => Ok(map.into()),
            other => Err(other),
        }
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut ctx = Context::new();
        for (k, v) in iter {
            ctx.insert(k, v);
        }
        ctx
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Context {
    /// Deserializes a JSON object; a repeated attribute is an error, as nothing a client
    /// sends on purpose has one.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContextVisitor;
        impl<'de> Visitor<'de> for ContextVisitor {
            type Value = Context;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Context, A::Error> {
                let mut attrs: Vec<(Box<str>, Value)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(key) = map.next_key::<String>()? {
                    if attrs.len() == MAX_CONTEXT_ATTRIBUTES {
                        return Err(de::Error::custom(format_args!(
                            "the context has more than {MAX_CONTEXT_ATTRIBUTES} attributes"
                        )));
                    }
                    let value: Value = map.next_value()?;
                    if nesting(&value) > MAX_CONTEXT_DEPTH {
                        return Err(de::Error::custom(format_args!(
                            "attribute '{key}' nests deeper than {MAX_CONTEXT_DEPTH} levels"
                        )));
                    }
                    attrs.push((key.into_boxed_str(), value));
                }
                if let Some(key) = first_duplicate(&attrs) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate attribute '{key}'"
                    )));
                }
                Ok(Context { attrs })
            }
        }
        deserializer.deserialize_map(ContextVisitor)
    }
}

/// A repeated attribute name, found by sorting (n log n; a scan per attribute would be
/// quadratic in what a client controls).
fn first_duplicate(attrs: &[(Box<str>, Value)]) -> Option<&str> {
    if attrs.len() <= 16 {
        return attrs
            .iter()
            .enumerate()
            .find(|(i, (k, _))| attrs[..*i].iter().any(|(seen, _)| seen == k))
            .map(|(_, (k, _))| &**k);
    }
    let mut names: Vec<&str> = attrs.iter().map(|(k, _)| &**k).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// How deeply `value` nests arrays and objects (a scalar is 0), without recursion.
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_insert_and_round_trip() {
        let mut ctx: Context =
            serde_json::from_value(json!({"targetingKey": "u1", "plan": "pro"})).unwrap();
        assert_eq!(ctx.targeting_key(), Some("u1"));
        assert_eq!(ctx.get("plan"), Some(&json!("pro")));
        assert_eq!(ctx.get("pla"), None);
        ctx.insert("plan", json!("free"));
        assert_eq!(ctx.len(), 2);
        assert_eq!(
            serde_json::to_value(&ctx).unwrap(),
            json!({"targetingKey": "u1", "plan": "free"})
        );
        assert!(serde_json::from_str::<Context>(r#"{"a": 1, "a": 2}"#).is_err());
        assert!(serde_json::from_str::<Context>("[1]").is_err());
    }

    #[test]
    fn large_contexts_are_refused_quickly() {
        let body = |n: usize| {
            let attrs: Vec<String> = (0..n).map(|i| format!("\"a{i}\":{i}")).collect();
            format!("{{{}}}", attrs.join(","))
        };
        let err = serde_json::from_str::<Context>(&body(100_000)).unwrap_err();
        assert!(
            err.to_string().contains("more than 1000 attributes"),
            "{err}"
        );
        assert_eq!(
            serde_json::from_str::<Context>(&body(MAX_CONTEXT_ATTRIBUTES))
                .unwrap()
                .len(),
            MAX_CONTEXT_ATTRIBUTES
        );
        let mut dup = body(500);
        dup.insert_str(1, "\"a499\":0,");
        let err = serde_json::from_str::<Context>(&dup).unwrap_err();
        assert!(
            err.to_string().contains("duplicate attribute 'a499'"),
            "{err}"
        );
    }

    #[test]
    fn deep_values_are_refused() {
        let nested =
            |depth: usize| format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<Context>(&nested(MAX_CONTEXT_DEPTH)).is_ok());
        let err = serde_json::from_str::<Context>(&nested(MAX_CONTEXT_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("nests deeper than 16"), "{err}");
    }

    #[test]
    fn short_eq_matches_slice_equality() {
        let words: [&[u8]; 6] = [
            b"",
            b"a",
            b"ab",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnopr",
        ];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a, b), a == b);
            }
        }
    }
}
