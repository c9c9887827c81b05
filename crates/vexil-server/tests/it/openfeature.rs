//! The unmodified OpenFeature Rust SDK (`open-feature` with the `open-feature-ofrep` provider)
//! against Vexil's OFREP endpoints: every value type, targeting, rollouts, disabled flags and
//! the errors, as the SDK reports them.
//!
//! `open-feature-ofrep` 0.1.2 deviates from the OFREP provider guideline in ways Vexil cannot
//! influence; the assertions pin what the SDK reports today and cross-check what Vexil sends:
//! - every successful resolution reports reason `STATIC`: the provider ignores the `reason`
//!   (and `metadata`) Vexil returns, e.g. TARGETING_MATCH, SPLIT, DISABLED;
//! - every 400 becomes INVALID_CONTEXT: the provider ignores the `errorCode` in the body, so
//!   Vexil's TARGETING_KEY_MISSING reaches the caller as INVALID_CONTEXT;
//! - a value of the wrong type (a string flag asked as a boolean) is PARSE_ERROR, not
//!   TYPE_MISMATCH; only the SDK's own struct conversion yields TYPE_MISMATCH.

use std::collections::HashSet;
use std::time::Duration;

use open_feature::{
    Client, EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature, StructValue,
    Value as OfValue,
};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::flags::{config_path, create_flag, id};
use crate::{TestApp, both_backends, json_status};

/// Creates the flags in the default project's production environment and returns a server
/// API key for it.
///
/// - `beta` (boolean): on for staff emails or 100+ seats, otherwise off;
/// - `colour` (string): always `blue` (`#00f`);
/// - `limit` (number): 42, or 3.5 for the target `u-float`;
/// - `ratio` (number): 0.25;
/// - `settings` (json): `{"retries": 3, "nested": {"tags": ["a", "b"]}, "factor": 1.5}`;
/// - `ramp` (boolean): a 50/50 rollout on the targeting key;
/// - `theme` (string): disabled, off variation `legacy`.
async fn setup(app: &TestApp) -> String {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flags: [(&str, Value, Value); 7] = [
        (
            "beta",
            json!({}),
            json!({"enabled": true, "rules": [
                {"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}},
                {"id": "big", "clauses": [{"attribute": "seats", "op": "gte", "values": [100]}], "serve": {"variation": "on"}}],
            "fallthrough": {"variation": "off"}}),
        ),
        (
            "colour",
            json!({"type": "string", "variations": [{"key": "red", "value": "#f00"}, {"key": "blue", "value": "#00f"}]}),
            json!({"enabled": true, "fallthrough": {"variation": "blue"}}),
        ),
        (
            "limit",
            json!({"type": "number", "variations": [{"key": "int", "value": 42}, {"key": "float", "value": 3.5}]}),
            json!({"enabled": true, "targets": [{"variation": "float", "values": ["u-float"]}], "fallthrough": {"variation": "int"}}),
        ),
        (
            "ratio",
            json!({"type": "number", "variations": [{"key": "quarter", "value": 0.25}]}),
            json!({"enabled": true}),
        ),
        (
            "settings",
            json!({"type": "json", "variations": [{"key": "v1", "value": {"retries": 3, "nested": {"tags": ["a", "b"]}, "factor": 1.5}}]}),
            json!({"enabled": true}),
        ),
        (
            "ramp",
            json!({}),
            json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
                {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
        ),
        (
            "theme",
            json!({"type": "string", "variations": [{"key": "light", "value": "light"},
                {"key": "dark", "value": "dark"}, {"key": "legacy", "value": "legacy"}]}),
            json!({"enabled": false, "off_variation": "legacy", "fallthrough": {"variation": "dark"}}),
        ),
    ];
    for (key, mut body, config) in flags {
        body["key"] = json!(key);
        let flag = id(&create_flag(app, &project, body).await);
        json_status(app.patch(&config_path(&flag, &env), config).await, 200).await;
    }
    app.api_key(&project, &env, "server").await
}

/// An OpenFeature client whose provider is an `OfrepProvider` for this server sending
/// `header: value`. Each client gets its own named provider: the OpenFeature API is a
/// process-wide singleton and the tests run in parallel.
async fn client(app: &TestApp, header: HeaderName, value: &str) -> Client {
    let mut headers = HeaderMap::new();
    headers.insert(header, HeaderValue::from_str(value).expect("header value"));
    let provider = OfrepProvider::new(OfrepOptions {
        base_url: format!("http://{}", app.addr),
        headers,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .expect("provider");
    let name = format!("vexil-{}", uuid::Uuid::new_v4());
    OpenFeature::singleton_mut()
        .await
        .set_named_provider(&name, provider)
        .await;
    OpenFeature::singleton().await.create_named_client(&name)
}

/// A client authenticated with `Authorization: Bearer <key>`.
async fn bearer_client(app: &TestApp, key: &str) -> Client {
    client(app, AUTHORIZATION, &format!("Bearer {key}")).await
}

/// A client authenticated with `X-API-Key: <key>`.
async fn client_with_x_api_key(app: &TestApp, key: &str) -> Client {
    client(app, HeaderName::from_static("x-api-key"), key).await
}

/// What Vexil itself sends for a flag (bypassing the SDK): (status, body).
async fn wire(app: &TestApp, key: &str, flag: &str, context: Value) -> (u16, Value) {
    let r = app
        .anonymous(Method::POST, &format!("/ofrep/v1/evaluate/flags/{flag}"))
        .bearer_auth(key)
        .json(&json!({"context": context}))
        .send()
        .await
        .expect("request sent");
    let status = r.status().as_u16();
    (status, json_status(r, status).await)
}

fn ctx(targeting_key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(targeting_key)
}

/// The `settings` value, typed; converting anything else is the SDK's TYPE_MISMATCH.
#[derive(Debug, PartialEq)]
struct Settings {
    retries: i64,
    tags: Vec<String>,
}

impl TryFrom<StructValue> for Settings {
    type Error = String;

    fn try_from(value: StructValue) -> Result<Self, Self::Error> {
        let retries = value.fields.get("retries").and_then(OfValue::as_i64);
        let tags = value
            .fields
            .get("nested")
            .and_then(OfValue::as_struct)
            .and_then(|nested| nested.fields.get("tags"))
            .and_then(OfValue::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|t| t.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            });
        match (retries, tags) {
            (Some(retries), Some(Some(tags))) => Ok(Settings { retries, tags }),
            _ => Err(format!("not settings: {value:?}")),
        }
    }
}

/// A type that needs a `strict` field, which `settings` lacks.
#[derive(Debug)]
struct Strict;

impl TryFrom<StructValue> for Strict {
    type Error = ();

    fn try_from(value: StructValue) -> Result<Self, Self::Error> {
        value.fields.get("strict").map(|_| Strict).ok_or(())
    }
}

both_backends! {
    async fn the_sdk_resolves_every_value_type(app) {
        let key = setup(&app).await;
        let client = bearer_client(&app, &key).await;
        let user = ctx("u-1").with_custom_field("email", "ann@example.com");

        // Boolean.
        let d = client.get_bool_details("beta", Some(&user), None).await.unwrap();
        assert_eq!((d.flag_key.as_str(), d.value, d.variant.as_deref()), ("beta", false, Some("off")));
        assert_eq!(client.get_bool_value("beta", Some(&user), None).await, Ok(false));

        // String.
        let d = client.get_string_details("colour", Some(&user), None).await.unwrap();
        assert_eq!((d.value.as_str(), d.variant.as_deref(), d.reason), ("#00f", Some("blue"), Some(EvaluationReason::Static)));
        assert_eq!(wire(&app, &key, "colour", json!({"targetingKey": "u-1"})).await.1["reason"], "STATIC");

        // Integer, and a float from the same number flag.
        let d = client.get_int_details("limit", Some(&user), None).await.unwrap();
        assert_eq!((d.value, d.variant.as_deref()), (42, Some("int")));
        let d = client.get_float_details("limit", Some(&ctx("u-float")), None).await.unwrap();
        assert_eq!((d.value, d.variant.as_deref()), (3.5, Some("float")));
        // An integer is a valid float (OFREP numbers are JSON numbers).
        assert_eq!(client.get_float_value("limit", Some(&user), None).await, Ok(42.0));

        // Float.
        let d = client.get_float_details("ratio", None, None).await.unwrap();
        assert_eq!((d.value, d.variant.as_deref()), (0.25, Some("quarter")));

        // Object (json), raw and typed.
        let d = client.get_struct_details::<StructValue>("settings", Some(&user), None).await.unwrap();
        let expected = OfValue::try_from(json!({"retries": 3, "nested": {"tags": ["a", "b"]}, "factor": 1.5})).unwrap();
        assert_eq!((OfValue::Struct(d.value), d.variant.as_deref()), (expected, Some("v1")));
        let typed: Settings = client.get_struct_value("settings", Some(&user), None).await.unwrap();
        assert_eq!(typed, Settings { retries: 3, tags: vec!["a".into(), "b".into()] });

        // X-API-Key works as the provider's header too.
        let by_header = client_with_x_api_key(&app, &key).await;
        assert_eq!(by_header.get_string_value("colour", None, None).await, Ok("#00f".to_owned()));
    }

    async fn the_sdk_sees_targeting_rollouts_and_disabled_flags(app) {
        let key = setup(&app).await;
        let client = bearer_client(&app, &key).await;

        // Targeting by a string attribute, and by a numeric one.
        let staff = ctx("u-2").with_custom_field("email", "bob@acme.com");
        let d = client.get_bool_details("beta", Some(&staff), None).await.unwrap();
        assert_eq!((d.value, d.variant.as_deref()), (true, Some("on")));
        let big = ctx("u-3").with_custom_field("seats", 250_i64);
        assert_eq!(client.get_bool_value("beta", Some(&big), None).await, Ok(true));
        let small = ctx("u-3").with_custom_field("seats", 99_i64);
        assert_eq!(client.get_bool_value("beta", Some(&small), None).await, Ok(false));
        // Vexil says TARGETING_MATCH with the rule; the provider drops both and says STATIC.
        let (_, b) = wire(&app, &key, "beta", json!({"targetingKey": "u-2", "email": "bob@acme.com"})).await;
        assert_eq!((b["reason"].clone(), b["metadata"]["ruleId"].clone()), (json!("TARGETING_MATCH"), json!("staff")));
        assert_eq!(d.reason, Some(EvaluationReason::Static), "open-feature-ofrep ignores OFREP reasons");
        assert!(d.flag_metadata.values.is_empty(), "open-feature-ofrep ignores OFREP metadata");
        let (_, b) = wire(&app, &key, "beta", json!({"targetingKey": "u-3", "seats": 250})).await;
        assert_eq!(b["metadata"]["ruleId"], "big");

        // A rollout: sticky per targeting key, both sides served over 40 keys.
        let mut sides = HashSet::new();
        for i in 0..40 {
            let unit = ctx(&format!("unit-{i}"));
            let d = client.get_bool_details("ramp", Some(&unit), None).await.unwrap();
            let again = client.get_bool_details("ramp", Some(&unit), None).await.unwrap();
            assert_eq!((d.value, d.variant.as_deref()), (again.value, again.variant.as_deref()));
            assert_eq!(d.variant.as_deref(), Some(if d.value { "on" } else { "off" }));
            assert_eq!(d.reason, Some(EvaluationReason::Static), "open-feature-ofrep ignores OFREP reasons");
            sides.insert(d.value);
        }
        assert_eq!(sides.len(), 2, "a 50/50 rollout over 40 keys serves both variations");
        let (_, b) = wire(&app, &key, "ramp", json!({"targetingKey": "unit-0"})).await;
        assert_eq!(b["reason"], "SPLIT");

        // A disabled flag serves its off variation.
        let d = client.get_string_details("theme", Some(&ctx("u-1")), None).await.unwrap();
        assert_eq!((d.value.as_str(), d.variant.as_deref(), d.reason), ("legacy", Some("legacy"), Some(EvaluationReason::Static)));
        let (_, b) = wire(&app, &key, "theme", json!({"targetingKey": "u-1"})).await;
        assert_eq!((b["value"].clone(), b["reason"].clone(), b["variant"].clone()), (json!("legacy"), json!("DISABLED"), json!("legacy")));
    }

    async fn the_sdk_reports_errors_and_callers_get_their_default(app) {
        let key = setup(&app).await;
        let client = bearer_client(&app, &key).await;
        let user = ctx("u-1");

        // FLAG_NOT_FOUND: the caller falls back to its default.
        let e = client.get_bool_details("nope", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::FlagNotFound, "{e:?}");
        assert!(client.get_bool_value("nope", Some(&user), None).await.unwrap_or(true));
        let e = client.get_string_value("nope", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::FlagNotFound);
        assert_eq!(client.get_int_value("nope", Some(&user), None).await.unwrap_or(7), 7);
        let (s, b) = wire(&app, &key, "nope", json!({"targetingKey": "u-1"})).await;
        assert_eq!((s, b["errorCode"].clone()), (404, json!("FLAG_NOT_FOUND")));

        // A string flag asked as a boolean: the provider checks the type (Vexil's OFREP
        // request carries none) but reports PARSE_ERROR where the guideline says TYPE_MISMATCH.
        let e = client.get_bool_details("colour", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::ParseError, "{e:?}");
        assert!(!client.get_bool_value("colour", Some(&user), None).await.unwrap_or(false));
        let e = client.get_int_value("ratio", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::ParseError, "0.25 is not an integer: {e:?}");
        let e = client.get_struct_value::<StructValue>("colour", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::ParseError, "{e:?}");
        assert_eq!(wire(&app, &key, "colour", json!({})).await.1["value"], "#00f");
        // The SDK's own conversion of an object to the caller's type does say TYPE_MISMATCH.
        let e = client.get_struct_value::<Strict>("settings", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::TypeMismatch, "{e:?}");

        // A rollout without a targeting key: Vexil answers 400 TARGETING_KEY_MISSING, which
        // the provider turns into INVALID_CONTEXT.
        let anonymous = EvaluationContext::default().with_custom_field("email", "ann@example.com");
        let e = client.get_bool_details("ramp", Some(&anonymous), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::InvalidContext, "{e:?}");
        assert!(client.get_bool_value("ramp", Some(&anonymous), None).await.unwrap_or(true));
        let (s, b) = wire(&app, &key, "ramp", json!({"email": "ann@example.com"})).await;
        assert_eq!((s, b["errorCode"].clone()), (400, json!("TARGETING_KEY_MISSING")));
        // Flags that do not split still evaluate without a targeting key.
        assert_eq!(client.get_string_value("colour", Some(&anonymous), None).await, Ok("#00f".to_owned()));

        // A wrong API key is a GENERAL error.
        let wrong = bearer_client(&app, "vx_srv_not-a-real-key").await;
        let e = wrong.get_bool_value("beta", Some(&user), None).await.unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::General("authentication/authorization error".into()), "{e:?}");
    }
}
