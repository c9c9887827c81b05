//! OFREP 0.3.0 over HTTP with real API keys: value types and reasons, OFREP error shapes
//! and statuses, client-key visibility, bulk results with ETag/304, read-your-writes.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::flags::{config_path, create_flag, id};
use crate::{TestApp, both_backends, json_ok, json_status};

const SINGLE: &str = "/ofrep/v1/evaluate/flags";

/// The production environment of the default project, with one flag per type and reason:
/// `(environment id, server key, client key, flag ids by key)`.
struct Fixture {
    env: String,
    server: String,
    client: String,
    ids: std::collections::HashMap<&'static str, String>,
}

async fn setup(app: &TestApp) -> Fixture {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flags: [(&str, Value, Option<Value>); 7] = [
        (
            "banner",
            json!({"client_side": true}),
            Some(json!({"enabled": true,
            "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}}],
            "fallthrough": {"variation": "off"}})),
        ),
        (
            "colour",
            json!({"type": "string", "client_side": true,
            "variations": [{"key": "red", "value": "#f00"}, {"key": "blue", "value": "#00f"}]}),
            Some(json!({"enabled": true, "fallthrough": {"variation": "blue"}})),
        ),
        (
            "limit",
            json!({"type": "number", "variations": [{"key": "int", "value": 42}, {"key": "float", "value": 3.5}]}),
            Some(
                json!({"enabled": true, "targets": [{"variation": "float", "values": ["u-float"]}], "fallthrough": {"variation": "int"}}),
            ),
        ),
        (
            "settings",
            json!({"type": "json", "variations": [{"key": "v1", "value": {"retries": 3, "nested": {"tags": ["a", "b"]}}}]}),
            Some(json!({"enabled": true})),
        ),
        (
            "ramp",
            json!({}),
            Some(
                json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
            {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
            ),
        ),
        ("dormant", json!({"client_side": true}), None),
        (
            "secret",
            json!({"client_side": false}),
            Some(json!({"enabled": true})),
        ),
    ];
    let mut ids = std::collections::HashMap::new();
    for (key, mut body, config) in flags {
        body["key"] = json!(key);
        let flag = id(&create_flag(app, &project, body).await);
        if let Some(config) = config {
            json_ok(app.patch(&config_path(&flag, &env), config).await).await;
        }
        ids.insert(key, flag);
    }
    Fixture {
        server: app.api_key(&project, &env, "server").await,
        client: app.api_key(&project, &env, "client").await,
        env,
        ids,
    }
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> Response {
    app.anonymous(Method::POST, path)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A single-flag evaluation: (status, body).
async fn single(app: &TestApp, key: &str, flag: &str, context: Value) -> (u16, Value) {
    let r = post(
        app,
        key,
        &format!("{SINGLE}/{flag}"),
        json!({"context": context}),
    )
    .await;
    let status = r.status().as_u16();
    (status, json_status(r, status).await)
}

async fn bulk(app: &TestApp, key: &str, context: Value) -> Response {
    post(app, key, SINGLE, json!({"context": context})).await
}

/// The bulk results by flag key.
async fn bulk_by_key(r: Response) -> serde_json::Map<String, Value> {
    let body = json_ok(r).await;
    body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

both_backends! {
    async fn single_evaluations_keep_value_types_and_map_reasons(app) {
        let f = setup(&app).await;
        let user = json!({"targetingKey": "u-1", "email": "ann@example.com"});
        let staff = json!({"targetingKey": "u-2", "email": "bob@acme.com"});

        let (s, b) = single(&app, &f.server, "banner", staff).await;
        assert_eq!(s, 200);
        assert_eq!(b, json!({"key": "banner", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
            "metadata": {"flagVersion": 2, "ruleId": "staff", "ruleIndex": 0}}));
        let (_, b) = single(&app, &f.server, "banner", user.clone()).await;
        assert_eq!((b["value"].clone(), b["reason"].clone(), b["variant"].clone()), (json!(false), json!("DEFAULT"), json!("off")));
        let (_, b) = single(&app, &f.server, "colour", user.clone()).await;
        assert_eq!((b["value"].clone(), b["reason"].clone(), b["variant"].clone()), (json!("#00f"), json!("STATIC"), json!("blue")));
        let (_, b) = single(&app, &f.server, "dormant", user.clone()).await;
        assert_eq!((b["value"].clone(), b["reason"].clone(), b["variant"].clone()), (json!(false), json!("DISABLED"), json!("off")));
        assert_eq!(b["metadata"], json!({"flagVersion": 1}));
        let (_, b) = single(&app, &f.server, "settings", user.clone()).await;
        assert_eq!((b["value"].clone(), b["reason"].clone()), (json!({"retries": 3, "nested": {"tags": ["a", "b"]}}), json!("STATIC")));

        // Numbers keep their JSON kind: 42 is not sent as 42.0, 3.5 stays a float.
        let r = post(&app, &f.server, &format!("{SINGLE}/limit"), json!({"context": user})).await;
        let text = r.text().await.unwrap();
        assert!(text.contains("\"value\":42,"), "{text}");
        let r = post(&app, &f.server, &format!("{SINGLE}/limit"), json!({"context": {"targetingKey": "u-float"}})).await;
        let b = json_ok(r).await;
        assert_eq!((b["value"].as_f64(), b["reason"].clone(), b["variant"].clone()), (Some(3.5), json!("TARGETING_MATCH"), json!("float")));

        // A rollout splits; the same unit always lands on the same side.
        let (s, b) = single(&app, &f.server, "ramp", json!({"targetingKey": "u-7"})).await;
        assert_eq!((s, b["reason"].clone()), (200, json!("SPLIT")));
        let (_, again) = single(&app, &f.server, "ramp", json!({"targetingKey": "u-7"})).await;
        assert_eq!(b, again);
        let sides: std::collections::HashSet<String> = ramp_variants(&app, &f.server).await;
        assert_eq!(sides.len(), 2, "50/50 over 40 units serves both variations: {sides:?}");

        // X-API-Key is accepted as well as Bearer.
        let r = app.anonymous(Method::POST, &format!("{SINGLE}/colour")).header("x-api-key", &f.server)
            .json(&json!({"context": {}})).send().await.unwrap();
        assert_eq!(json_ok(r).await["value"], "#00f");
    }

    async fn errors_have_ofrep_shapes_and_statuses(app) {
        let f = setup(&app).await;
        let (s, b) = single(&app, &f.server, "nope", json!({"targetingKey": "u"})).await;
        assert_eq!((s, b["key"].clone(), b["errorCode"].clone()), (404, json!("nope"), json!("FLAG_NOT_FOUND")));
        assert!(b["errorDetails"].as_str().unwrap().contains("nope"), "{b}");
        // Archived flags are missing for evaluation.
        json_ok(app.patch(&format!("/api/v1/feature-flags/{}/archive", f.ids["dormant"]), json!({})).await).await;
        let (s, b) = single(&app, &f.server, "dormant", json!({})).await;
        assert_eq!((s, b["errorCode"].clone()), (404, json!("FLAG_NOT_FOUND")));

        let (s, b) = single(&app, &f.server, "ramp", json!({"email": "x@y.z"})).await;
        assert_eq!((s, b["key"].clone(), b["errorCode"].clone()), (400, json!("ramp"), json!("TARGETING_KEY_MISSING")));
        assert!(b.get("value").is_none(), "{b}");

        let raw = |path: &str, body: &'static str| app.anonymous(Method::POST, path).bearer_auth(&f.server)
            .header("content-type", "application/json").body(body).send();
        for (body, code) in [("{\"context\": ", "PARSE_ERROR"), ("", "PARSE_ERROR"), ("{}", "INVALID_CONTEXT"),
            ("{\"context\": null}", "INVALID_CONTEXT"), ("{\"context\": [1]}", "INVALID_CONTEXT"),
            ("[{\"context\": {}}]", "INVALID_CONTEXT"), ("{\"context\": {\"a\": 1, \"a\": 2}}", "INVALID_CONTEXT")] {
            let b = json_status(raw(&format!("{SINGLE}/colour"), body).await.unwrap(), 400).await;
            assert_eq!((b["key"].clone(), b["errorCode"].clone()), (json!("colour"), json!(code)), "{body}: {b}");
            let b = json_status(raw(SINGLE, body).await.unwrap(), 400).await;
            assert_eq!(b["errorCode"], code, "{body}: {b}");
            assert!(b.get("key").is_none() && b["errorDetails"].is_string(), "{b}");
        }

        // 401 without a key or with a wrong one, with no body (the spec defines none).
        for path in [format!("{SINGLE}/colour"), SINGLE.to_owned()] {
            let none = app.anonymous(Method::POST, &path).json(&json!({"context": {}})).send().await.unwrap();
            assert_eq!(none.status(), 401);
            assert_eq!(none.headers()["www-authenticate"], "Bearer");
            assert_eq!(none.text().await.unwrap(), "");
            let wrong = post(&app, "vx_srv_not-a-real-key", &path, json!({"context": {}})).await;
            assert_eq!(wrong.status(), 401);
            let mgmt = post(&app, crate::TOKEN, &path, json!({"context": {}})).await;
            assert_eq!(mgmt.status(), 401, "a management token is not an API key");
        }

        let big = json!({"context": {"targetingKey": "u", "blob": "x".repeat(1024 * 1024)}});
        let r = post(&app, &f.server, &format!("{SINGLE}/colour"), big.clone()).await;
        assert_eq!(json_status(r, 413).await["errorCode"], "GENERAL");
        let r = post(&app, &f.server, SINGLE, big).await;
        assert_eq!(r.status(), 413);
    }

    async fn client_keys_see_client_side_flags_only(app) {
        let f = setup(&app).await;
        let staff = json!({"targetingKey": "u-2", "email": "bob@acme.com"});
        let (_, missing) = single(&app, &f.client, "does-not-exist", json!({})).await;
        let (s, hidden) = single(&app, &f.client, "secret", json!({})).await;
        assert_eq!(s, 404);
        // Indistinguishable from a missing flag, apart from the key echoed back.
        assert_eq!(hidden, json!({"key": "secret", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag 'secret' was not found"}));
        assert_eq!(missing["errorDetails"], "flag 'does-not-exist' was not found");
        let (s, _) = single(&app, &f.server, "secret", json!({})).await;
        assert_eq!(s, 200);

        // Client keys never see rule details.
        let (s, b) = single(&app, &f.client, "banner", staff.clone()).await;
        assert_eq!((s, b["reason"].clone(), b["metadata"].clone()), (200, json!("TARGETING_MATCH"), json!({"flagVersion": 2})));

        let client: Vec<String> = bulk_by_key(bulk(&app, &f.client, staff.clone()).await).await.keys().cloned().collect();
        assert_eq!(client, ["banner", "colour", "dormant"]);
        let server = bulk_by_key(bulk(&app, &f.server, staff).await).await;
        assert_eq!(server.keys().cloned().collect::<Vec<_>>(), ["banner", "colour", "dormant", "limit", "ramp", "secret", "settings"]);
    }

    async fn bulk_results_carry_errors_inline_and_an_etag(app) {
        let f = setup(&app).await;
        let anonymous = json!({"email": "ann@example.com"});
        let r = bulk(&app, &f.server, anonymous.clone()).await;
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let body = json_ok(r).await;
        let keys: Vec<&str> = body["flags"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["banner", "colour", "dormant", "limit", "ramp", "secret", "settings"], "sorted by key");
        assert!(body["metadata"]["environmentVersion"].is_u64(), "{body}");
        assert_eq!(body["eventStreams"][0]["type"], "sse", "the change stream is advertised");
        let by_key: std::collections::HashMap<&str, &Value> = body["flags"].as_array().unwrap().iter()
            .map(|f| (f["key"].as_str().unwrap(), f)).collect();
        assert_eq!(*by_key["ramp"], json!({"key": "ramp", "errorCode": "TARGETING_KEY_MISSING",
            "errorDetails": "flag 'ramp' splits by an attribute the context does not have", "metadata": {"flagVersion": 2}}));
        assert_eq!(by_key["limit"]["value"], json!(42));
        assert_eq!(by_key["colour"]["reason"], "STATIC");
        assert_eq!(by_key["dormant"]["reason"], "DISABLED");

        // Same context, nothing changed: 304 without a body, same ETag.
        let again = app.anonymous(Method::POST, SINGLE).bearer_auth(&f.server).header("if-none-match", &etag)
            .json(&json!({"context": anonymous})).send().await.unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(again.text().await.unwrap(), "");
        // Another context gets its own ETag, so a client cache cannot mix them up.
        let other = bulk(&app, &f.server, json!({"targetingKey": "u-1"})).await;
        assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
        let stale = app.anonymous(Method::POST, SINGLE).bearer_auth(&f.server).header("if-none-match", &etag)
            .json(&json!({"context": {"targetingKey": "u-1"}})).send().await.unwrap();
        assert_eq!(stale.status(), 200);

        // A flag change gives a new ETag and the new result at once.
        json_ok(app.patch(&config_path(&f.ids["colour"], &f.env), json!({"fallthrough": {"variation": "red"}})).await).await;
        let changed = app.anonymous(Method::POST, SINGLE).bearer_auth(&f.server).header("if-none-match", &etag)
            .json(&json!({"context": anonymous})).send().await.unwrap();
        assert_eq!(changed.status(), 200);
        assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(bulk_by_key(changed).await["colour"]["value"], "#f00");
    }

    async fn management_writes_are_visible_to_the_next_evaluation(app) {
        let f = setup(&app).await;
        let toggle = format!("{}/toggle", config_path(&f.ids["dormant"], &f.env));
        let mut expected = false;
        for _ in 0..6 {
            json_ok(app.patch(&toggle, json!({})).await).await;
            expected = !expected;
            let (s, b) = single(&app, &f.client, "dormant", json!({"targetingKey": "u"})).await;
            assert_eq!((s, b["value"].clone()), (200, json!(expected)), "{b}");
            let flags = bulk_by_key(bulk(&app, &f.client, json!({"targetingKey": "u"})).await).await;
            assert_eq!(flags["dormant"]["value"], json!(expected));
        }
        // Making a flag server-only hides it from client keys at once.
        json_ok(app.patch(&format!("/api/v1/feature-flags/{}", f.ids["colour"]), json!({"client_side": false})).await).await;
        let (s, _) = single(&app, &f.client, "colour", json!({})).await;
        assert_eq!(s, 404);
    }
}

/// The variations `ramp` serves to 40 units.
async fn ramp_variants(app: &TestApp, key: &str) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let (s, b) = single(
            app,
            key,
            "ramp",
            json!({"targetingKey": format!("unit-{i}")}),
        )
        .await;
        assert_eq!((s, b["reason"].clone()), (200, json!("SPLIT")), "{b}");
        seen.insert(b["variant"].as_str().unwrap().to_owned());
    }
    seen
}
