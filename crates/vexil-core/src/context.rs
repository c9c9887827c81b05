//! The evaluation context: a JSON object's attributes kept as a flat list, because looking
//! up a handful of attributes by scanning (lengths first) is several times faster than a
//! B-tree descent that calls `memcmp` at every step.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<String>()? {
                    if attrs.iter().any(|(k, _)| **k == *key) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate attribute '{key}'"
                        )));
                    }
                    let value = map.next_value()?;
                    attrs.push((key.into_boxed_str(), value));
                }
                Ok(Context { attrs })
            }
        }
        deserializer.deserialize_map(ContextVisitor)
    }
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
