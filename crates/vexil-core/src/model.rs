//! The flag model of docs/concepts.md as serde types: what a ruleset document, a flag configuration
//! and a segment look like on the wire. Unknown fields are rejected everywhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::clause::NOW_ATTRIBUTE;
use crate::error::{ValidationError, ValidationErrors};

/// The value type of a flag; every variation's value must be of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    Boolean,
    String,
    Number,
    Json,
}

impl FlagType {
    /// Whether `value` is acceptable as a variation value of this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            FlagType::Boolean => value.is_boolean(),
            FlagType::String => value.is_string(),
            FlagType::Number => value.is_number(),
            FlagType::Json => true,
        }
    }

    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Json => "json",
        }
    }
}

/// One possible value of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variation {
    pub key: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What to serve: exactly one of a fixed `variation` or a percentage `rollout`.
///
/// Modelled as a struct with two optional fields (rather than an untagged enum) so that a
/// malformed serve gets a precise error instead of "did not match any variant".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl Serve {
    /// A serve of one fixed variation.
    pub fn variation(key: impl Into<String>) -> Self {
        Serve {
            variation: Some(key.into()),
            rollout: None,
        }
    }
}

/// A percentage rollout: units are bucketed by an attribute and spread over variations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    #[serde(default = "default_bucket_by")]
    pub bucket_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    pub variations: Vec<WeightedVariation>,
}

fn default_bucket_by() -> String {
    "targetingKey".to_owned()
}

/// A variation's share of a rollout, in thousandths of a percent (100000 = 100 %).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedVariation {
    pub variation: String,
    pub weight: u32,
}

/// Individual targeting: these `targetingKey`s get this variation before any rule applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub variation: String,
    pub values: Vec<String>,
}

/// A targeting rule: when every clause matches, serve `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub clauses: Vec<Clause>,
    pub serve: Serve,
}

/// Clause operators (docs/concepts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    In,
    StartsWith,
    EndsWith,
    Contains,
    Matches,
    Lt,
    Lte,
    Gt,
    Gte,
    Before,
    After,
    SemverEq,
    SemverLt,
    SemverLte,
    SemverGt,
    SemverGte,
    InCidr,
    Exists,
    InSegment,
}

impl Op {
    /// Every operator, in the order docs/evaluation.md lists them.
    pub const ALL: [Op; 19] = [
        Op::In,
        Op::StartsWith,
        Op::EndsWith,
        Op::Contains,
        Op::Matches,
        Op::Lt,
        Op::Lte,
        Op::Gt,
        Op::Gte,
        Op::Before,
        Op::After,
        Op::SemverEq,
        Op::SemverLt,
        Op::SemverLte,
        Op::SemverGt,
        Op::SemverGte,
        Op::InCidr,
        Op::Exists,
        Op::InSegment,
    ];
}

/// One condition on a context attribute. A clause matches when any value matches; `negate`
/// inverts that, except that a missing or incomparable attribute never matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    #[serde(default)]
    pub attribute: String,
    pub op: Op,
    #[serde(default)]
    pub values: Vec<Value>,
    #[serde(default)]
    pub negate: bool,
    #[serde(default)]
    pub case_insensitive: bool,
}

impl Clause {
    /// Whether the clause reads the evaluation time: its attribute is `$now`, or it is a
    /// `before`/`after` clause with the value `"$now"`. A caller may skip reading its clock
    /// for definitions where no clause does.
    pub fn reads_now(&self) -> bool {
        self.attribute == NOW_ATTRIBUTE
            || (matches!(self.op, Op::Before | Op::After)
                && self
                    .values
                    .iter()
                    .any(|v| v.as_str() == Some(NOW_ATTRIBUTE)))
    }
}

/// The other flag must be enabled and serve one of `variations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    pub flag: String,
    pub variations: Vec<String>,
}

/// A segment rule: all clauses must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub clauses: Vec<Clause>,
}

/// The evaluable part of a segment, as it appears in a ruleset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    #[serde(default)]
    pub included: Vec<String>,
    #[serde(default)]
    pub excluded: Vec<String>,
    #[serde(default)]
    pub rules: Vec<SegmentRule>,
}

/// Everything needed to evaluate one flag in one environment: the flag's type and
/// variations plus that environment's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDef {
    #[serde(rename = "type")]
    pub kind: FlagType,
    pub variations: Vec<Variation>,
    #[serde(default)]
    pub enabled: bool,
    pub off_variation: String,
    pub fallthrough: Serve,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub prerequisites: Vec<Prerequisite>,
    #[serde(default)]
    pub client_side: bool,
    #[serde(default)]
    pub version: u64,
    /// Archived flags evaluate as missing. Stored rulesets keep them (marked) so that
    /// references and history stay checkable; what SDKs receive is the evaluation plane's choice.
    #[serde(default, skip_serializing_if = "is_false")]
    pub archived: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The ruleset document (docs/concepts.md): everything needed to evaluate in one environment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    #[serde(default)]
    pub version: u64,
    #[serde(default, deserialize_with = "unique_map")]
    pub flags: BTreeMap<String, FlagDef>,
    #[serde(default, deserialize_with = "unique_map")]
    pub segments: BTreeMap<String, SegmentDef>,
}

impl Ruleset {
    /// Parses a ruleset from JSON text. Structural problems (wrong types, unknown fields,
    /// duplicate keys) are reported with the path where they occur.
    pub fn from_json(text: &str) -> Result<Ruleset, ValidationErrors> {
        from_json_with_path(text)
    }
}

/// Deserializes JSON text into `T`, turning serde's error into a [`ValidationErrors`] whose
/// path points at the offending field (`flags.x.rules[0].serve`).
pub fn from_json_with_path<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, ValidationErrors> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    // Trailing characters after the document are an error too.
    de.end()
        .map_err(|e| ValidationErrors::from(ValidationError::new("", e.to_string())))?;
    Ok(value)
}

/// Deserializes an already parsed JSON value into `T` with path-precise errors.
pub fn from_value_with_path<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ValidationErrors {
    let path = e.path().to_string();
    let mut path = if path == "." { String::new() } else { path };
    // serde reports a missing field at its parent; point at the field itself.
    let message = e.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        path = crate::error::join_path(&path, field);
    }
    ValidationErrors::from(ValidationError::new(path, e.inner().to_string()))
}

/// A map deserializer that rejects duplicate keys instead of silently keeping the last.
fn unique_map<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueMap<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMap<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key '{key}'")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(UniqueMap(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reads_now(clause: Value) -> bool {
        serde_json::from_value::<Clause>(clause)
            .unwrap()
            .reads_now()
    }

    #[test]
    fn clauses_that_read_the_time() {
        assert!(reads_now(
            json!({"attribute": "$now", "op": "gt", "values": [0]})
        ));
        assert!(reads_now(
            json!({"attribute": "trial_ends_at", "op": "after", "values": ["$now"]})
        ));
        assert!(reads_now(
            json!({"attribute": "t", "op": "before", "values": [0, "$now"]})
        ));
        assert!(!reads_now(
            json!({"attribute": "t", "op": "before", "values": ["2026-01-01T00:00:00Z"]})
        ));
        assert!(!reads_now(
            json!({"attribute": "t", "op": "in", "values": ["$now"]})
        ));
    }
}
