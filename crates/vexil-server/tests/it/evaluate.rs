//! The native evaluation API and SDK delivery with real API keys: results per docs/http-api.md,
//! client-key visibility, read-your-writes, ETag/304, and serving through a database outage.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, error_of, json_ok, json_status};

/// A project's production environment with a configured flag `checkout` (server-side) and
/// a client-side flag `banner`; returns (project, environment, checkout flag id).
async fn setup(app: &TestApp) -> (String, String, String) {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "checkout"}),
        )
        .await,
        201,
    )
    .await;
    let id = flag["id"].as_str().unwrap().to_owned();
    json_ok(app.patch(&format!("/api/v1/flags/{id}/environments/{env}/config"), json!({
        "enabled": true,
        "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}}],
        "fallthrough": {"variation": "off"}
    })).await).await;
    let banner = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "banner", "type": "string", "client_side": true,
               "variations": [{"key": "a", "value": "Hello"}, {"key": "b", "value": "Welcome"}]}),
        )
        .await,
        201,
    )
    .await;
    let bid = banner["id"].as_str().unwrap();
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{bid}/environments/{env}/config"),
            json!({"enabled": true}),
        )
        .await,
    )
    .await;
    (project, env, id)
}

async fn evaluate(app: &TestApp, key: &str, flag: &str, context: Value) -> Value {
    let r = app
        .anonymous(Method::POST, "/api/v1/evaluate")
        .bearer_auth(key)
        .json(&json!({"flag_key": flag, "context": context}))
        .send()
        .await
        .unwrap();
    json_ok(r).await
}

both_backends! {
    async fn evaluate_returns_designs_result_shape(app) {
        let (project, env, _) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let hit = evaluate(&app, &key, "checkout", json!({"targetingKey": "u1", "email": "ann@acme.com"})).await;
        assert_eq!(hit, json!({"flag_key": "checkout", "value": true, "variation": "on",
            "reason": {"kind": "RULE_MATCH", "rule_id": "staff", "rule_index": 0, "in_rollout": false}, "flag_version": 2}));
        let miss = evaluate(&app, &key, "checkout", json!({"targetingKey": "u2"})).await;
        assert_eq!((miss["value"].clone(), miss["reason"]["kind"].clone()), (json!(false), json!("FALLTHROUGH")));
        let missing = evaluate(&app, &key, "nope", json!({})).await;
        assert_eq!(missing, json!({"flag_key": "nope", "value": null, "variation": null,
            "reason": {"kind": "ERROR", "in_rollout": false, "error_code": "FLAG_NOT_FOUND"}, "flag_version": null}));
        // X-API-Key works as well as a bearer token.
        let r = app.anonymous(Method::POST, "/api/v1/evaluate").header("x-api-key", &key)
            .json(&json!({"flag_key": "banner", "context": {}})).send().await.unwrap();
        assert_eq!(json_ok(r).await["value"], "Hello");
        let r = app.anonymous(Method::POST, "/api/v1/evaluate").json(&json!({"flag_key": "x"})).send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
        // The admin token is not an evaluation key.
        let r = app.request(Method::POST, "/api/v1/evaluate").json(&json!({"flag_key": "x"})).send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
        let r = app.anonymous(Method::POST, "/api/v1/evaluate").bearer_auth(&key)
            .json(&json!({"flag_key": "x", "context": [1]})).send().await.unwrap();
        error_of(r, 400, "invalid_request").await;
    }

    async fn a_change_is_visible_to_the_next_evaluation(app) {
        let (project, env, id) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let ctx = json!({"targetingKey": "u9"});
        assert_eq!(evaluate(&app, &key, "checkout", ctx.clone()).await["value"], false);
        json_ok(app.patch(&format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"fallthrough": {"variation": "on"}})).await).await;
        assert_eq!(evaluate(&app, &key, "checkout", ctx.clone()).await["value"], true);
        json_ok(app.request(Method::POST, &format!("/api/v1/feature-flags/{id}/kill-switch"))
            .json(&json!({"reason": "incident"})).send().await.unwrap()).await;
        let killed = evaluate(&app, &key, "checkout", ctx).await;
        assert_eq!((killed["value"].clone(), killed["reason"]["kind"].clone()), (json!(false), json!("OFF")));
        // Archived flags evaluate as missing.
        json_ok(app.request(Method::PATCH, &format!("/api/v1/feature-flags/{id}/archive")).send().await.unwrap()).await;
        assert_eq!(evaluate(&app, &key, "checkout", json!({})).await["reason"]["error_code"], "FLAG_NOT_FOUND");
        // Survives a restart: snapshots are rebuilt from the store.
        app.restart().await;
        assert_eq!(evaluate(&app, &key, "banner", json!({})).await["value"], "Hello");
    }

    async fn client_keys_see_client_side_flags_only(app) {
        let (project, env, _) = setup(&app).await;
        let client = app.api_key(&project, &env, "client").await;
        assert!(client.starts_with("vx_cli_"));
        assert_eq!(evaluate(&app, &client, "banner", json!({})).await["value"], "Hello");
        assert_eq!(evaluate(&app, &client, "checkout", json!({})).await["reason"]["error_code"], "FLAG_NOT_FOUND");
        let bulk = app.anonymous(Method::POST, "/api/v1/evaluate/bulk").bearer_auth(&client)
            .json(&json!({"context": {"targetingKey": "u1"}})).send().await.unwrap();
        let flags = json_ok(bulk).await["flags"].clone();
        assert_eq!(flags.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["banner"]);
        let r = app.anonymous(Method::GET, "/api/v1/sdk/config").bearer_auth(&client).send().await.unwrap();
        error_of(r, 403, "forbidden").await;
    }

    async fn bulk_evaluates_all_or_named_flags(app) {
        let (project, env, _) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let bulk = |body: Value| app.anonymous(Method::POST, "/api/v1/evaluate/bulk").bearer_auth(&key).json(&body).send();
        let all = json_ok(bulk(json!({"context": {"email": "x@acme.com"}})).await.unwrap()).await;
        assert_eq!(all["flags"]["checkout"]["value"], true);
        assert_eq!(all["flags"]["banner"]["value"], "Hello");
        let some = json_ok(bulk(json!({"context": {}, "flag_keys": ["banner", "ghost"]})).await.unwrap()).await;
        assert_eq!(some["flags"]["ghost"]["reason"]["error_code"], "FLAG_NOT_FOUND");
        assert!(some["flags"].get("checkout").is_none());
        let many: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
        error_of(bulk(json!({"context": {}, "flag_keys": many})).await.unwrap(), 400, "invalid_request").await;
    }

    async fn sdk_config_serves_the_ruleset_with_etags(app) {
        let (project, env, id) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let get = |etag: Option<String>| {
            let mut r = app.anonymous(Method::GET, "/api/v1/sdk/config").bearer_auth(&key);
            if let Some(e) = etag { r = r.header("if-none-match", e); }
            r.send()
        };
        let first = get(None).await.unwrap();
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let ruleset = json_ok(first).await;
        assert_eq!(format!("\"{}\"", ruleset["version"]), etag);
        assert_eq!(ruleset["flags"]["checkout"]["rules"][0]["id"], "staff");
        assert!(ruleset["segments"].is_object());
        // The document is a valid ruleset for local evaluation.
        let parsed: vexil_core::Ruleset = serde_json::from_value(ruleset.clone()).unwrap();
        vexil_core::Snapshot::compile(&parsed).unwrap();
        assert_eq!(get(Some(etag.clone())).await.unwrap().status(), 304);
        json_ok(app.request(Method::PATCH, &format!("/api/v1/flags/{id}/environments/{env}/config/toggle")).json(&json!({})).send().await.unwrap()).await;
        let changed = get(Some(etag.clone())).await.unwrap();
        assert_eq!(changed.status(), 200);
        assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(json_ok(changed).await["flags"]["checkout"]["enabled"], false);
        error_of(app.anonymous(Method::GET, "/api/v1/sdk/config").send().await.unwrap(), 401, "unauthorized").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_keeps_serving_while_the_database_is_unreachable() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let (project, env, id) = setup(&app).await;
    let key = app.api_key(&project, &env, "server").await;
    let ctx = json!({"email": "ann@acme.com"});
    assert_eq!(
        evaluate(&app, &key, "checkout", ctx.clone()).await["value"],
        true
    );

    app.set_database_reachable(false).await;
    for _ in 0..3 {
        assert_eq!(
            evaluate(&app, &key, "checkout", ctx.clone()).await["value"],
            true
        );
    }
    let config = app
        .anonymous(Method::GET, "/api/v1/sdk/config")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    // Writes (and management reads) answer 503 with Retry-After, not 500.
    let write = app
        .patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        write
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("1".to_owned())
    );
    error_of(write, 503, "unavailable").await;
    assert_eq!(
        app.anonymous(Method::GET, "/ready")
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    app.set_database_reachable(true).await;
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"enabled": false}),
        )
        .await,
    )
    .await;
    assert_eq!(
        evaluate(&app, &key, "checkout", ctx).await["reason"]["kind"],
        "OFF"
    );
}
