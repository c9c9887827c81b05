//! Schema-only mirrors of `vexil-core`'s wire types (flag definitions, rulesets, rules,
//! clauses, contexts, evaluation results), for the OpenAPI document. The engine crate stays
//! free of utoipa; these types are never built, only described, and the test at the bottom
//! checks that they name the same fields as the engine's JSON.

#![allow(dead_code, reason = "schema-only types: described, never built")]

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// The value type of a flag; every variation's value must be of this type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlagType {
    Boolean,
    String,
    Number,
    Json,
}

/// One possible value of a flag; `value` must be of the flag's type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "on", "value": true, "name": "On"}))]
pub(crate) struct Variation {
    /// A key (`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`), unique among the flag's variations.
    #[schema(example = "on")]
    key: String,
    /// The served value: a boolean, string, number or any JSON value, by the flag's type.
    value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// What to serve: exactly one of a fixed `variation` or a percentage `rollout`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rollout": {"bucket_by": "targetingKey", "variations": [
    {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}))]
pub(crate) struct Serve {
    /// Key of the variation to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout: Option<Rollout>,
}

/// A percentage rollout: units are bucketed by an attribute and spread over variations
/// whose weights add up to 100000.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rollout {
    /// The context attribute that identifies the unit (default `targetingKey`).
    #[serde(default)]
    #[schema(default = "targetingKey")]
    bucket_by: String,
    /// Salt of the bucketing hash (default: the flag's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    variations: Vec<WeightedVariation>,
}

/// A variation's share of a rollout, in thousandths of a percent (100000 = 100 %).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WeightedVariation {
    variation: String,
    #[schema(maximum = 100000)]
    weight: u32,
}

/// Individual targeting: these `targetingKey`s get this variation before any rule applies.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"variation": "on", "values": ["user-1", "user-2"]}))]
pub(crate) struct Target {
    variation: String,
    values: Vec<String>,
}

/// A targeting rule: when every clause matches, serve `serve`. Rules are tried in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "beta testers", "clauses": [
    {"attribute": "email", "op": "ends_with", "values": ["@example.com"]}],
    "serve": {"variation": "on"}}))]
pub(crate) struct Rule {
    /// Stable id; assigned by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    clauses: Vec<Clause>,
    serve: Serve,
}

/// Clause operators.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
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

/// One condition on a context attribute. It matches when any value matches; `negate`
/// inverts that, except that a missing or incomparable attribute never matches.
/// `in_segment` takes segment keys as values and no attribute.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"attribute": "country", "op": "in", "values": ["NL", "BE"]}))]
pub(crate) struct Clause {
    /// The context attribute compared (exact name, no dotted paths).
    #[serde(default)]
    attribute: String,
    op: Op,
    /// Strings, numbers, or booleans, by the operator.
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    negate: bool,
    #[serde(default)]
    case_insensitive: bool,
}

/// The other flag must be enabled and serve one of `variations`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"flag": "new-checkout", "variations": ["on"]}))]
pub(crate) struct Prerequisite {
    /// Key of the other flag (of the same project).
    flag: String,
    variations: Vec<String>,
}

/// A segment rule: all its clauses must match.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"clauses": [{"attribute": "plan", "op": "in", "values": ["enterprise"]}]}))]
pub(crate) struct SegmentRule {
    /// Stable id; assigned by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default)]
    clauses: Vec<Clause>,
}

/// The evaluable part of a segment: `included` and `excluded` targeting keys, then rules.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"included": ["user-1"], "excluded": [], "rules": [
    {"clauses": [{"attribute": "plan", "op": "in", "values": ["enterprise"]}]}]}))]
pub(crate) struct SegmentDef {
    #[serde(default)]
    included: Vec<String>,
    #[serde(default)]
    excluded: Vec<String>,
    #[serde(default)]
    rules: Vec<SegmentRule>,
}

/// Everything needed to evaluate one flag in one environment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "boolean", "variations": [
    {"key": "on", "value": true}, {"key": "off", "value": false}],
    "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"},
    "targets": [], "rules": [], "prerequisites": [], "client_side": false, "version": 3}))]
pub(crate) struct FlagDef {
    #[serde(rename = "type")]
    kind: FlagType,
    variations: Vec<Variation>,
    #[serde(default)]
    enabled: bool,
    off_variation: String,
    fallthrough: Serve,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    prerequisites: Vec<Prerequisite>,
    #[serde(default)]
    client_side: bool,
    #[serde(default)]
    version: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    archived: bool,
}

/// The ruleset document of one environment: what SDKs evaluate locally.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 12, "flags": {"new-checkout": {"type": "boolean",
    "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
    "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"},
    "targets": [], "rules": [], "prerequisites": [], "client_side": false, "version": 3}},
    "segments": {}}))]
pub(crate) struct Ruleset {
    /// The environment's ruleset version.
    #[serde(default)]
    version: u64,
    /// Flags by key.
    #[serde(default)]
    flags: BTreeMap<String, FlagDef>,
    /// Segments by key.
    #[serde(default)]
    segments: BTreeMap<String, SegmentDef>,
}

/// The evaluation context: attributes of the unit being evaluated, any JSON values (at most
/// 1000 attributes, nested at most 16 deep); `targetingKey` is the stable unit id.
#[derive(Debug)]
pub(crate) struct EvaluationContext;

impl PartialSchema for EvaluationContext {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "Attributes of the unit being evaluated (any JSON values; at most 1000, nested at \
                 most 16 deep); `targetingKey` is the stable unit id",
            ))
            .property(
                "targetingKey",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .description(Some("The unit's stable id (user, device, account …)")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([
                json!({"targetingKey": "user-123", "email": "ada@example.com", "plan": "pro"}),
            ])
            .into()
    }
}

impl ToSchema for EvaluationContext {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EvaluationContext")
    }
}

/// Why a value was served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ReasonKind {
    Off,
    PrerequisiteFailed,
    TargetMatch,
    RuleMatch,
    Fallthrough,
    Error,
}

/// Evaluation errors: results (with `value: null`), not failures; the caller serves its
/// default.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum EvaluationErrorCode {
    FlagNotFound,
    TargetingKeyMissing,
}

/// Why a value was served; absent parts are left out.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reason {
    kind: ReasonKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<u64>,
    in_rollout: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<EvaluationErrorCode>,
    /// The prerequisite that failed (`PREREQUISITE_FAILED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    prerequisite_key: Option<String>,
}

/// One evaluation result. On an evaluation error `value`, `variation` are null and
/// `reason.error_code` says why.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flag_key": "new-checkout", "value": true, "variation": "on",
    "reason": {"kind": "RULE_MATCH", "rule_id": "r1", "rule_index": 0, "in_rollout": false},
    "flag_version": 3}))]
pub(crate) struct Evaluation {
    flag_key: String,
    value: Option<Value>,
    variation: Option<String>,
    reason: Reason,
    /// The flag configuration's version; null when the flag was not found.
    flag_version: Option<u64>,
}

/// The fields of a flag's configuration as `FlagConfig` shows them, next to its own: the
/// same as `Config`, which (as a request) also rejects unknown fields.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigFields {
    enabled: bool,
    /// The variation served while disabled.
    off_variation: String,
    /// What is served when no target or rule matches.
    fallthrough: Serve,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    prerequisites: Vec<Prerequisite>,
    /// Tracked event keys (`POST /api/v1/track`) attributed to the variation this
    /// configuration serves, for insights; at most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    watch_events: Vec<String>,
}

#[cfg(test)]
mod tests {
    //! The mirrors describe the engine's JSON: every field the engine writes for a fully
    //! populated value is a property of the mirror's schema, and vice versa.

    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use utoipa::PartialSchema;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        let RefOr::T(Schema::Object(object)) = T::schema() else {
            panic!("not an object schema");
        };
        object.properties.keys().cloned().collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn mirrors_name_the_engine_fields() {
        let def: vexil_core::FlagDef = serde_json::from_value(json!({
            "type": "string",
            "variations": [{"key": "a", "value": "A", "name": "A", "description": "the a"}],
            "enabled": true, "off_variation": "a",
            "fallthrough": {"rollout": {"bucket_by": "id", "seed": "s",
                "variations": [{"variation": "a", "weight": 100000}]}},
            "targets": [{"variation": "a", "values": ["u"]}],
            "rules": [{"id": "r", "description": "d", "clauses": [{"attribute": "x", "op": "in",
                "values": ["y"], "negate": true, "case_insensitive": true}],
                "serve": {"variation": "a"}}],
            "prerequisites": [{"flag": "f", "variations": ["on"]}],
            "client_side": true, "version": 2, "archived": true
        }))
        .expect("a flag definition");
        let json = serde_json::to_value(&def).expect("serializes");
        assert_eq!(keys(&json), properties::<super::FlagDef>());
        assert_eq!(
            keys(&json["variations"][0]),
            properties::<super::Variation>()
        );
        assert_eq!(
            keys(&json["fallthrough"]["rollout"]),
            properties::<super::Rollout>()
        );
        let weighted = &json["fallthrough"]["rollout"]["variations"][0];
        assert_eq!(keys(weighted), properties::<super::WeightedVariation>());
        assert_eq!(keys(&json["targets"][0]), properties::<super::Target>());
        assert_eq!(keys(&json["rules"][0]), properties::<super::Rule>());
        let clause = &json["rules"][0]["clauses"][0];
        assert_eq!(keys(clause), properties::<super::Clause>());
        assert_eq!(
            keys(&json["prerequisites"][0]),
            properties::<super::Prerequisite>()
        );
        let serve = json!({"variation": "a", "rollout": json["fallthrough"]["rollout"]});
        assert!(serde_json::from_value::<vexil_core::Serve>(serve.clone()).is_ok());
        assert_eq!(keys(&serve), properties::<super::Serve>());

        let segment: vexil_core::SegmentDef = serde_json::from_value(json!({
            "included": ["a"], "excluded": ["b"], "rules": [{"id": "r", "clauses": []}]
        }))
        .expect("a segment");
        let json = serde_json::to_value(&segment).expect("serializes");
        assert_eq!(keys(&json), properties::<super::SegmentDef>());
        assert_eq!(keys(&json["rules"][0]), properties::<super::SegmentRule>());

        let ruleset = serde_json::to_value(vexil_core::Ruleset::default()).expect("serializes");
        assert_eq!(keys(&ruleset), properties::<super::Ruleset>());

        let reason = vexil_core::Reason {
            kind: vexil_core::ReasonKind::Error,
            rule_id: Some("r"),
            rule_index: Some(0),
            in_rollout: false,
            error_code: Some(vexil_core::ErrorCode::TargetingKeyMissing),
            prerequisite_key: Some("p"),
        };
        let evaluation = vexil_core::Evaluation {
            flag_key: "f",
            value: None,
            variation: None,
            reason,
            flag_version: Some(1),
        };
        let json = serde_json::to_value(evaluation).expect("serializes");
        assert_eq!(keys(&json), properties::<super::Evaluation>());
        assert_eq!(keys(&json["reason"]), properties::<super::Reason>());
    }

    #[test]
    fn config_fields_are_those_of_config() {
        assert_eq!(
            properties::<super::ConfigFields>(),
            properties::<crate::store::flags::Config>()
        );
    }
}
