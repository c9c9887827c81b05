//! The OpenFeature provider through the unmodified `open-feature` API against a real
//! server: every value type, reasons, errors, status, and the provider events (ready,
//! configuration changed, stale, ready again).

use std::time::Duration;

use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue, OpenFeature,
    StructValue,
};
use serde_json::json;
use vexil_sdk::openfeature::{ProviderEvent, ProviderEvents, VexilProvider};

use crate::helpers::{DEADLINE, TestServer, fast_client};

fn ctx(targeting_key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(targeting_key)
}

async fn next_event(events: &mut ProviderEvents) -> ProviderEvent {
    tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("a provider event in time")
        .expect("the client is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_resolves_every_type_with_reasons_and_errors() {
    let server = TestServer::start().await;
    let key = server.server_key().await;
    server
        .create_flag(
            "beta",
            json!({}),
            json!({"enabled": true, "rules": [{"id": "staff", "clauses": [
                {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                "serve": {"variation": "on"}}], "fallthrough": {"variation": "off"}}),
        )
        .await;
    server
        .create_flag(
            "colour",
            json!({"type": "string", "variations": [{"key": "blue", "value": "#00f"}]}),
            json!({"enabled": true}),
        )
        .await;
    server
        .create_flag(
            "limit",
            json!({"type": "number", "variations": [{"key": "int", "value": 42}, {"key": "float", "value": 3.5}]}),
            json!({"enabled": true, "targets": [{"variation": "float", "values": ["u-float"]}], "fallthrough": {"variation": "int"}}),
        )
        .await;
    server
        .create_flag(
            "settings",
            json!({"type": "json", "variations": [{"key": "v1", "value": {"retries": 3, "tags": ["a"]}}]}),
            json!({"enabled": true}),
        )
        .await;
    server
        .create_flag(
            "ramp",
            json!({}),
            json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
                {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
        )
        .await;
    server.create_flag("off-flag", json!({}), json!({})).await;

    let provider = VexilProvider::new(fast_client(&server.url(), &key).build().unwrap());
    assert_eq!(provider.metadata().name, "Vexil");
    let name = format!("vexil-sdk-{}", uuid::Uuid::new_v4());
    OpenFeature::singleton_mut()
        .await
        .set_named_provider(&name, provider)
        .await; // initialize() waits for the first fetch
    let client = OpenFeature::singleton().await.create_named_client(&name);

    let staff = ctx("u1").with_custom_field("email", "ann@acme.com");
    let d = client
        .get_bool_details("beta", Some(&staff), None)
        .await
        .unwrap();
    assert!(d.value);
    assert_eq!(d.variant.as_deref(), Some("on"));
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(
        d.flag_metadata.values.get("ruleId"),
        Some(&FlagMetadataValue::String("staff".into()))
    );
    let d = client
        .get_bool_details("beta", Some(&ctx("u2")), None)
        .await
        .unwrap();
    assert_eq!(
        (d.value, d.reason),
        (false, Some(EvaluationReason::Default))
    );
    let d = client
        .get_string_details("colour", Some(&ctx("u1")), None)
        .await
        .unwrap();
    assert_eq!(
        (d.value.as_str(), d.reason),
        ("#00f", Some(EvaluationReason::Static))
    );
    assert_eq!(
        client
            .get_int_value("limit", Some(&ctx("u1")), None)
            .await
            .unwrap(),
        42
    );
    assert_eq!(
        client
            .get_float_value("limit", Some(&ctx("u-float")), None)
            .await
            .unwrap(),
        3.5
    );
    let settings: StructValue = client
        .get_struct_value("settings", Some(&ctx("u1")), None)
        .await
        .unwrap();
    assert!(settings.fields.contains_key("retries"));
    let d = client
        .get_bool_details("ramp", Some(&ctx("u1")), None)
        .await
        .unwrap();
    assert_eq!(d.reason, Some(EvaluationReason::Split));
    let d = client
        .get_bool_details("off-flag", Some(&ctx("u1")), None)
        .await
        .unwrap();
    assert_eq!(
        (d.value, d.reason),
        (false, Some(EvaluationReason::Disabled))
    );

    let err = client
        .get_bool_value("nope", Some(&ctx("u1")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::FlagNotFound);
    let err = client
        .get_int_value("colour", Some(&ctx("u1")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::TypeMismatch);
    let err = client
        .get_int_value("limit", Some(&ctx("u-float")), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        EvaluationErrorCode::TypeMismatch,
        "3.5 is not an integer"
    );
    let err = client
        .get_bool_value("ramp", Some(&EvaluationContext::default()), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::TargetingKeyMissing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_reports_ready_changed_stale_and_ready_again() {
    let mut server = TestServer::start().await;
    let key = server.server_key().await;
    let flag = server.create_flag("evented", json!({}), json!({})).await;
    let mut provider = VexilProvider::new(fast_client(&server.url(), &key).build().unwrap())
        .with_init_timeout(Duration::from_secs(10));
    let mut events = provider.events();
    provider.initialize(&EvaluationContext::default()).await;
    assert_eq!(provider.status(), ProviderStatus::Ready);

    // The first fetch: the flag appears (configuration changed) and the provider is ready,
    // in whichever order the two were published. The client starts fetching when it is
    // built, so on a busy machine the change may be published before `events()`
    // subscribed: then the subscriber hears READY (the current state) alone.
    let changed = ProviderEvent::ConfigurationChanged {
        flags_changed: vec!["evented".into()],
    };
    let mut first = vec![next_event(&mut events).await];
    if first[0] == changed {
        first.push(next_event(&mut events).await);
    } else if let Ok(Some(more)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await
    {
        first.push(more);
    }
    first.sort_by_key(|e| format!("{e:?}"));
    assert!(
        first == [changed.clone(), ProviderEvent::Ready] || first == [ProviderEvent::Ready],
        "{first:?}"
    );

    server.configure(&flag, json!({"enabled": true})).await;
    assert_eq!(
        next_event(&mut events).await,
        ProviderEvent::ConfigurationChanged {
            flags_changed: vec!["evented".into()]
        }
    );
    let d = provider
        .resolve_bool_value("evented", &ctx("u1"))
        .await
        .unwrap();
    assert!(d.value);

    server.stop().await;
    assert!(matches!(
        next_event(&mut events).await,
        ProviderEvent::Stale { .. }
    ));
    assert_eq!(provider.status(), ProviderStatus::STALE);
    // Stale still resolves, from the last known data.
    let d = provider
        .resolve_bool_value("evented", &ctx("u1"))
        .await
        .unwrap();
    assert!(d.value);

    server.restart().await;
    assert_eq!(next_event(&mut events).await, ProviderEvent::Ready);
    assert_eq!(provider.status(), ProviderStatus::Ready);

    // A late subscriber hears the current state at once.
    let mut late = provider.events();
    assert_eq!(next_event(&mut late).await, ProviderEvent::Ready);
}

#[test]
fn openfeature_contexts_become_vexil_contexts() {
    let context = EvaluationContext::default()
        .with_targeting_key("u1")
        .with_custom_field("plan", "pro")
        .with_custom_field("seats", 12)
        .with_custom_field("ratio", 0.5)
        .with_custom_field("beta", true)
        .with_custom_field(
            "signup",
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        )
        .with_custom_field(
            "account",
            open_feature::EvaluationContextFieldValue::new_struct(json!({"tier": "gold"})),
        );
    let vexil = vexil_sdk::openfeature::to_context(&context);
    assert_eq!(
        serde_json::to_value(&vexil).unwrap(),
        json!({"targetingKey": "u1", "plan": "pro", "seats": 12, "ratio": 0.5, "beta": true,
            "signup": 1_700_000_000_000_i64, "account": {"tier": "gold"}})
    );
}
