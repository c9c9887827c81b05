//! What a security tester and a new user found, each as a test: oversized contexts, slow
//! clients, control characters in queries, security headers, the bootstrap token, wrong
//! methods and unknown paths, the short toggle path, service-token prefixes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::flags::{config_path, create_flag, id};
use crate::{Backend, TOKEN, TestApp, both_backends, error_of, json_ok, json_status};

/// A context of `n` attributes, as a request body's text.
fn huge_context(n: usize) -> String {
    let attrs: Vec<String> = (0..n).map(|i| format!("\"{i}\":0")).collect();
    format!(
        "{{\"context\":{{\"targetingKey\":\"u\",{}}}}}",
        attrs.join(",")
    )
}

both_backends! {
    async fn a_huge_context_is_refused_quickly_and_health_stays_fast(app) {
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        create_flag(&app, &project, json!({"key": "banner", "client_side": true})).await;
        let client = app.api_key(&project, &env, "client").await;
        let body = huge_context(100_000);
        let send = |path: &'static str| {
            app.anonymous(Method::POST, path)
                .bearer_auth(&client)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        };
        let started = Instant::now();
        let (single, bulk, health) = tokio::join!(
            send("/ofrep/v1/evaluate/flags/banner"),
            send("/ofrep/v1/evaluate/flags"),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let t = Instant::now();
                let r = app.anonymous(Method::GET, "/health").send().await.unwrap();
                (r.status(), t.elapsed())
            },
        );
        // Debug build under a loaded test run: the bound is generous; a quadratic scan of
        // 100,000 attributes took tens of seconds.
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(health.0, 200);
        assert!(health.1 < Duration::from_secs(1), "{:?}", health.1);
        let single = json_status(single.unwrap(), 400).await;
        assert_eq!(single["errorCode"], "INVALID_CONTEXT", "{single}");
        assert!(single["errorDetails"].as_str().unwrap().contains("more than 1000 attributes"), "{single}");
        let bulk = json_status(bulk.unwrap(), 400).await;
        assert_eq!(bulk["errorCode"], "INVALID_CONTEXT", "{bulk}");
        let native = app
            .anonymous(Method::POST, "/api/v1/evaluate")
            .bearer_auth(&client)
            .header("content-type", "application/json")
            .body(body.replacen("{\"context\"", "{\"flag_key\":\"banner\",\"context\"", 1))
            .send()
            .await
            .unwrap();
        error_of(native, 400, "invalid_request").await;
    }

    async fn control_characters_in_queries_are_400_in_one_place(app) {
        for path in [
            "/api/v1/projects?organization_id=a%00b",
            "/api/v1/audit-logs?resource_type=%00",
            "/api/v1/audit-logs?actor_id=x%1F",
            "/v1/feature-flags/?project=%00",
            "/v1/feature-flags/?environment=prod%00",
        ] {
            let err = error_of(app.get(path).await, 400, "invalid_request").await;
            assert!(err["message"].as_str().unwrap().contains("control characters"), "{path}: {err}");
        }
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        let err = error_of(app.get(&format!("/api/v1/projects/{project}/feature-flags?environment_id={env}%00")).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["environment_id"].is_string(), "{err}");

        // OFREP keeps its own shapes: 400 PARSE_ERROR for a query, 404 for a key path.
        let key = app.api_key(&project, &env, "server").await;
        let ofrep = |path: String| app.anonymous(Method::POST, &path).bearer_auth(&key).json(&json!({"context": {}})).send();
        let bad = json_status(ofrep("/ofrep/v1/evaluate/flags?flagConfigEtag=%00".into()).await.unwrap(), 400).await;
        assert_eq!(bad["errorCode"], "PARSE_ERROR", "{bad}");
        let missing = json_status(ofrep("/ofrep/v1/evaluate/flags/a%00b".into()).await.unwrap(), 404).await;
        assert_eq!(missing["errorCode"], "FLAG_NOT_FOUND", "{missing}");
    }

    async fn wrong_methods_are_405_with_allow_and_unknown_paths_json_404(app) {
        let project = app.default_project().await;
        let r = app.request(Method::PUT, &format!("/api/v1/projects/{project}")).json(&json!({})).send().await.unwrap();
        assert_eq!(r.headers()["allow"], "GET, HEAD, PATCH, DELETE");
        let err = error_of(r, 405, "method_not_allowed").await;
        assert!(err["message"].as_str().unwrap().contains("PUT"), "{err}");
        let r = app.request(Method::DELETE, "/api/v1/organizations").send().await.unwrap();
        assert_eq!(r.headers()["allow"], "GET, HEAD, POST");
        error_of(r, 405, "method_not_allowed").await;

        let err = error_of(app.get("/api/v1/no-such-thing").await, 404, "not_found").await;
        assert!(err["message"].as_str().unwrap().contains("/api/v1/no-such-thing"), "{err}");
        error_of(app.anonymous(Method::GET, "/nothing/here").send().await.unwrap(), 404, "not_found").await;

        // The evaluation and operations planes too; OFREP in its own shape.
        let r = app.anonymous(Method::POST, "/health").send().await.unwrap();
        assert_eq!(r.headers()["allow"], "GET,HEAD");
        error_of(r, 405, "method_not_allowed").await;
        let r = app.anonymous(Method::GET, "/ofrep/v1/evaluate/flags/x").send().await.unwrap();
        assert_eq!(r.headers()["allow"], "POST");
        let body = json_status(r, 405).await;
        assert!(body["errorDetails"].is_string(), "{body}");
        let body = json_status(app.anonymous(Method::POST, "/ofrep/v2/whatever").send().await.unwrap(), 404).await;
        assert!(body["errorDetails"].is_string(), "{body}");
    }

    async fn the_design_toggle_path_toggles(app) {
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        let flag = id(&create_flag(&app, &project, json!({"key": "short-toggle"})).await);
        let before = json_ok(app.get(&config_path(&flag, &env)).await).await;
        let after = json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/toggle"), json!({})).await).await;
        assert_eq!(after["enabled"], !before["enabled"].as_bool().unwrap());
        let same = json_ok(app.patch(&format!("{}/toggle", config_path(&flag, &env)), json!({})).await).await;
        assert_eq!(same["enabled"], before["enabled"]);
    }

    async fn service_tokens_say_so_in_their_prefix(app) {
        let orgs = json_ok(app.get("/api/v1/organizations").await).await;
        let org = orgs["items"][0]["id"].as_str().unwrap().to_owned();
        let svc = json_status(app.post("/api/v1/tokens", json!({"name": "ci", "kind": "service", "organization_id": org, "role": "viewer"})).await, 201).await;
        let secret = svc["token"].as_str().unwrap();
        assert!(secret.starts_with("vx_svc_"), "{svc}");
        assert_eq!(svc["prefix"].as_str().unwrap(), &secret[..12]);
        let r = app.anonymous(Method::GET, "/api/v1/organizations").bearer_auth(secret).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // The bootstrap token's record shows no part of the operator's secret.
        let tokens = json_ok(app.get("/api/v1/tokens").await).await;
        let bootstrap = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "bootstrap").expect("bootstrap token listed");
        assert_eq!(bootstrap["prefix"], "(bootstrap)", "{bootstrap}");
        assert!(!tokens.to_string().contains(&TOKEN[..12]));
    }

    async fn every_response_carries_security_headers(app) {
        for path in ["/health", "/api/v1/organizations", "/api-docs/openapi.json", "/nothing"] {
            let r = app.get(path).await;
            let h = r.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
            assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
            assert!(h.get("strict-transport-security").is_none(), "no HSTS without --secure-cookies");
        }
        let docs = app.anonymous(Method::GET, "/docs/").send().await.unwrap();
        let csp = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'self'") && !csp.contains("script-src 'unsafe"), "{csp}");
        // Responses that carry a secret are never stored by a cache.
        let created = app.post("/api/v1/tokens", json!({"name": "cache-check", "kind": "service",
            "organization_id": json_ok(app.get("/api/v1/organizations").await).await["items"][0]["id"], "role": "viewer"})).await;
        assert_eq!(created.headers()["cache-control"], "no-store");
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        let key = app.post(&format!("/api/v1/projects/{project}/api-keys"), json!({"name": "k", "environment_id": env, "type": "server"})).await;
        assert_eq!(key.status(), 201);
        assert_eq!(key.headers()["cache-control"], "no-store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_with_secure_cookies_and_metrics_behind_a_token() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.secure_cookies = true;
        c.metrics_token = Some("metrics-secret-0123456789".to_owned().into());
    })
    .await
    .unwrap();
    let r = app.anonymous(Method::GET, "/health").send().await.unwrap();
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let r = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    error_of(r, 401, "unauthorized").await;
    let r = app
        .anonymous(Method::GET, "/metrics")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .anonymous(Method::GET, "/metrics")
        .bearer_auth("metrics-secret-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("vexil_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_bootstrap_token_is_refused_at_start() {
    let path = std::env::temp_dir().join(format!("vexil-test-{}.db", uuid::Uuid::new_v4()));
    let mut config = vexil_server::Config::for_tests(format!("sqlite://{}", path.display()));
    config.bootstrap_token = Some("x".to_owned().into());
    let err = vexil_server::App::build(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("at least 32 characters"),
        "{err:#}"
    );
    let _ = std::fs::remove_file(&path);
}

/// Opens a connection that sends part of a request's headers and then nothing.
async fn trickle(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_connections_are_limited() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.header_read_timeout = 1;
        c.max_connections = 8;
    })
    .await
    .unwrap();
    let mut slow = Vec::new();
    for _ in 0..8 {
        slow.push(trickle(&app).await);
    }
    // Every slot is held by a trickler: the next request waits until they are cut off
    // (one header-read timeout), then is answered.
    let started = Instant::now();
    let r = app.anonymous(Method::GET, "/health").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // The tricklers were closed by the server (a 408 or EOF, not a hang).
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a trickling connection stayed open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_ready_answer_503_within_a_second_while_the_database_is_away() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flag = id(&create_flag(&app, &project, json!({"key": "outage"})).await);
    app.set_database_reachable(false).await;
    for attempt in 0..3 {
        let started = Instant::now();
        let r = app
            .patch(&config_path(&flag, &env), json!({"enabled": true}))
            .await;
        assert_eq!(r.status(), 503, "attempt {attempt}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "attempt {attempt}: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let r = app.anonymous(Method::GET, "/ready").send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    app.set_database_reachable(true).await;
    // Recovery needs nothing from the operator: the next request gets through.
    let mut recovered = Value::Null;
    for _ in 0..20 {
        let r = app
            .patch(&config_path(&flag, &env), json!({"enabled": true}))
            .await;
        if r.status() == 200 {
            recovered = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(recovered["enabled"], true, "{recovered}");
}

both_backends! {
    async fn input_rules_duplicate_keys_boolean_values_cycles(app) {
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        let flag = id(&create_flag(&app, &project, json!({"key": "dupes"})).await);
        // A repeated key is refused wherever it is, with its path.
        let r = app.request(Method::PATCH, &config_path(&flag, &env))
            .header("content-type", "application/json")
            .body(r#"{"enabled": true, "enabled": false}"#).send().await.unwrap();
        let err = error_of(r, 400, "invalid_request").await;
        assert_eq!(err["details"]["fields"]["enabled"], "duplicate key 'enabled'", "{err}");
        let r = app.request(Method::POST, &format!("/api/v1/projects/{project}/feature-flags"))
            .header("content-type", "application/json")
            .body(r#"{"key": "x", "variations": [{"key": "on", "value": true, "key": "off"}]}"#).send().await.unwrap();
        let err = error_of(r, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["variations[0].key"].is_string(), "{err}");
        assert_eq!(json_ok(app.get(&config_path(&flag, &env)).await).await["version"], 1);

        // A boolean flag has exactly the values true and false.
        let r = app.post(&format!("/api/v1/projects/{project}/feature-flags"), json!({"key": "three",
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}, {"key": "maybe", "value": true}]})).await;
        let err = error_of(r, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["variations"].as_str().unwrap().contains("exactly two"), "{err}");

        // A prerequisite cycle is reported at the field that was sent.
        let a = id(&create_flag(&app, &project, json!({"key": "cycle-a"})).await);
        let b = id(&create_flag(&app, &project, json!({"key": "cycle-b"})).await);
        // b → a exists; sending a → b closes the cycle, which the search from 'a' (the
        // first key) meets at b's prerequisite: it must still be reported at a's.
        json_ok(app.patch(&config_path(&b, &env), json!({"prerequisites": [{"flag": "cycle-a", "variations": ["on"]}]})).await).await;
        let r = app.patch(&config_path(&a, &env), json!({"prerequisites": [{"flag": "cycle-b", "variations": ["on"]}]})).await;
        let err = error_of(r, 400, "invalid_request").await;
        let fields = err["details"]["fields"].as_object().unwrap();
        assert!(fields.contains_key("prerequisites[0].flag"), "{err}");
        assert!(fields.keys().all(|k| !k.starts_with("flags.")), "{err}");
    }

    async fn no_op_changes_change_nothing_and_rule_ids_stay(app) {
        let project = app.default_project().await;
        let env = app.environment(&project, "production").await;
        let flag = id(&create_flag(&app, &project, json!({"key": "noop"})).await);
        let path = config_path(&flag, &env);
        let on = json_ok(app.patch(&format!("{path}/toggle"), json!({"enabled": true})).await).await;
        let again = json_ok(app.patch(&format!("{path}/toggle"), json!({"enabled": true})).await).await;
        assert_eq!(again["version"], on["version"], "a toggle to the current state is a no-op");
        let revisions = json_ok(app.get(&format!("{path}/revisions")).await).await;
        assert_eq!(revisions["total"], on["version"]);

        // Rules resent without ids keep theirs: the same rules are no change at all.
        let rules = json!([{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "serve": {"variation": "on"}}]);
        let first = json_ok(app.patch(&path, json!({"rules": rules})).await).await;
        let second = json_ok(app.patch(&path, json!({"rules": rules})).await).await;
        assert_eq!(first["rules"][0]["id"], second["rules"][0]["id"]);
        assert_eq!(first["version"], second["version"]);

        // The same for a flag's definition and a segment.
        let f = json_ok(app.get(&format!("/api/v1/feature-flags/{flag}")).await).await;
        let same = json_ok(app.patch(&format!("/api/v1/feature-flags/{flag}"), json!({"name": f["name"]})).await).await;
        assert_eq!(same["version"], f["version"]);
        let seg = json_status(app.post(&format!("/api/v1/projects/{project}/segments"), json!({"key": "beta",
            "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}]}]})).await, 201).await;
        let sid = seg["id"].as_str().unwrap();
        let renamed = json_ok(app.patch(&format!("/api/v1/segments/{sid}"), json!({"name": "Beta testers",
            "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}]}]})).await).await;
        assert_eq!(renamed["rules"][0]["id"], seg["rules"][0]["id"], "{renamed}");
        let again = json_ok(app.patch(&format!("/api/v1/segments/{sid}"), json!({"name": "Beta testers"})).await).await;
        assert_eq!(again["version"], renamed["version"]);
        let audit = json_ok(app.get(&format!("/api/v1/audit-logs?resource_id={sid}")).await).await;
        assert_eq!(audit["total"], 2, "created and renamed, nothing for the no-op");
    }
}

both_backends! {
    async fn the_simple_api_reads_with_api_keys(app) {
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let dev = app.environment(&project, "development").await;
        let public = id(&create_flag(&app, &project, json!({"key": "public-banner", "client_side": true})).await);
        create_flag(&app, &project, json!({"key": "internal-switch"})).await;
        json_ok(app.patch(&format!("{}/toggle", config_path(&public, &prod)), json!({"enabled": true})).await).await;
        let server = app.api_key(&project, &prod, "server").await;
        let client = app.api_key(&project, &prod, "client").await;
        let dev_key = app.api_key(&project, &dev, "server").await;

        let read = |key: &str, path: &str| app.anonymous(Method::GET, path).header("x-api-key", key.to_owned()).send();
        let all = json_ok(read(&server, "/v1/feature-flags/").await.unwrap()).await;
        assert_eq!(all["environment"], "production");
        assert_eq!(all["flags"]["public-banner"], true);
        assert_eq!(all["flags"]["internal-switch"], false);
        // A client key sees client-side flags only; the others read as missing.
        let visible = json_ok(read(&client, "/v1/feature-flags").await.unwrap()).await;
        assert_eq!(visible["flags"].as_object().unwrap().len(), 1, "{visible}");
        error_of(read(&client, "/v1/feature-flags/internal-switch").await.unwrap(), 404, "not_found").await;
        let one = json_ok(app.anonymous(Method::GET, "/v1/feature-flags/public-banner").bearer_auth(&client).send().await.unwrap()).await;
        assert_eq!(one["enabled"], true);
        // A key reads its own environment: by default, and refused for another.
        let dev_view = json_ok(read(&dev_key, "/v1/feature-flags/public-banner").await.unwrap()).await;
        assert_eq!(dev_view["enabled"], false);
        error_of(read(&dev_key, "/v1/feature-flags/?environment=production").await.unwrap(), 403, "forbidden").await;
        json_ok(read(&dev_key, "/v1/feature-flags/?environment=development&project=default").await.unwrap()).await;
        // Writes still need management credentials.
        let r = app.anonymous(Method::PUT, "/v1/feature-flags/public-banner").bearer_auth(&server).json(&json!({"enabled": false})).send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
        // Browsers may call the reads cross-origin.
        let r = app.anonymous(Method::GET, "/v1/feature-flags/").header("x-api-key", client.clone()).header("origin", "https://app.example").send().await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        // Management tokens keep working as before.
        json_ok(app.get("/v1/feature-flags/").await).await;
    }
}

both_backends! {
    async fn audit_verification_is_scoped_to_the_callers_organizations(app) {
        let org = json_status(app.post("/api/v1/organizations", json!({"key": "mallory"})).await, 201).await;
        let org_id = org["id"].as_str().unwrap().to_owned();
        let token = json_status(app.post("/api/v1/tokens", json!({"name": "m", "kind": "service", "organization_id": org_id, "role": "admin"})).await, 201).await;
        let mallory = token["token"].as_str().unwrap().to_owned();
        let app = &app;
        let verify = |cred: String, query: &'static str| async move {
            app.anonymous(Method::GET, &format!("/api/v1/audit-logs/verify{query}")).bearer_auth(cred).send().await.unwrap()
        };
        let whole = json_ok(verify(TOKEN.into(), "").await).await;
        let own = json_ok(verify(mallory.clone(), "").await).await;
        assert_eq!(own["valid"], true);
        // Mallory's organization has its creation and its token's: not the instance's entries.
        let listed = json_ok(app.get(&format!("/api/v1/audit-logs?organization_id={org_id}")).await).await;
        assert_eq!(own["entries"], listed["total"], "{own}");
        assert!(whole["entries"].as_i64().unwrap() > own["entries"].as_i64().unwrap());
        // Changes elsewhere move the instance's head, not the organization's.
        json_status(app.post(&format!("/api/v1/projects/{}/segments", app.default_project().await), json!({"key": "elsewhere"})).await, 201).await;
        assert_eq!(json_ok(verify(mallory.clone(), "").await).await["head_hash"], own["head_hash"]);
        assert_ne!(json_ok(verify(TOKEN.into(), "").await).await["head_hash"], whole["head_hash"]);
        // Another organization's scope is refused.
        let default_org = json_ok(app.get("/api/v1/organizations").await).await["items"].as_array().unwrap()
            .iter().find(|o| o["key"] == "default").unwrap()["id"].as_str().unwrap().to_owned();
        let r = app.anonymous(Method::GET, &format!("/api/v1/audit-logs/verify?organization_id={default_org}")).bearer_auth(&mallory).send().await.unwrap();
        error_of(r, 403, "forbidden").await;
        // A break in someone else's entries makes the chain invalid without naming it.
        app.raw_sql("UPDATE audit_log SET comment = 'forged' WHERE seq = 1").await;
        let own = json_ok(verify(mallory.clone(), "").await).await;
        assert_eq!((own["valid"].clone(), own["first_broken"].clone()), (json!(false), Value::Null), "{own}");
        let whole = json_ok(verify(TOKEN.into(), "").await).await;
        assert!(whole["first_broken"].is_string(), "{whole}");
    }
}

both_backends! {
    async fn editors_cannot_change_what_a_protected_environment_serves_sideways(app) {
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let orgs = json_ok(app.get("/api/v1/organizations").await).await;
        let org = orgs["items"][0]["id"].as_str().unwrap().to_owned();
        let token = json_status(app.post("/api/v1/tokens", json!({"name": "ed", "kind": "service", "organization_id": org, "role": "editor"})).await, 201).await;
        let editor = token["token"].as_str().unwrap().to_owned();
        let as_editor = |method: Method, path: String, body: Value| app.anonymous(method, &path).bearer_auth(&editor).json(&body).send();

        let colour = id(&create_flag(&app, &project, json!({"key": "colour", "type": "string",
            "variations": [{"key": "a", "value": "red"}, {"key": "b", "value": "blue"}]})).await);
        json_ok(app.patch(&config_path(&colour, &prod), json!({"enabled": true, "fallthrough": {"variation": "a"}})).await).await;
        let segment = json_status(app.post(&format!("/api/v1/projects/{project}/segments"), json!({"key": "vips", "included": ["u1"]})).await, 201).await;
        let sid = segment["id"].as_str().unwrap().to_owned();
        let wrapper = json_status(app.post(&format!("/api/v1/projects/{project}/segments"), json!({"key": "wrapper",
            "rules": [{"clauses": [{"attribute": "key", "op": "in_segment", "values": ["vips"]}]}]})).await, 201).await;
        let gated = id(&create_flag(&app, &project, json!({"key": "gated"})).await);

        // Through the flag's definition: a new value for a variation served in production.
        let r = as_editor(Method::PATCH, format!("/api/v1/feature-flags/{colour}"), json!({"variations": [{"key": "a", "value": "green"}, {"key": "b", "value": "blue"}]})).await.unwrap();
        let err = error_of(r, 403, "forbidden").await;
        assert!(err["message"].as_str().unwrap().contains("production"), "{err}");
        // What does not change what is served stays the editor's.
        json_ok(as_editor(Method::PATCH, format!("/api/v1/feature-flags/{colour}"), json!({"description": "brand colour",
            "variations": [{"key": "a", "value": "red"}, {"key": "b", "value": "blue"}, {"key": "c", "value": "lime"}]})).await.unwrap()).await;

        // Through a segment, even one used only through another segment.
        let r = as_editor(Method::PATCH, format!("/api/v1/segments/{sid}"), json!({"included": ["u1", "u2"]})).await.unwrap();
        json_ok(r).await; // not used by anything enabled yet
        json_ok(app.patch(&config_path(&gated, &prod), json!({"enabled": true,
            "rules": [{"clauses": [{"attribute": "key", "op": "in_segment", "values": ["wrapper"]}], "serve": {"variation": "on"}}]})).await).await;
        let r = as_editor(Method::PATCH, format!("/api/v1/segments/{sid}"), json!({"included": ["u1", "u2", "u3"]})).await.unwrap();
        let err = error_of(r, 403, "forbidden").await;
        assert!(err["message"].as_str().unwrap().contains("gated"), "{err}");
        json_ok(as_editor(Method::PATCH, format!("/api/v1/segments/{sid}"), json!({"name": "Very important"})).await.unwrap()).await;
        let _ = wrapper;
        // Admins may.
        json_ok(app.patch(&format!("/api/v1/segments/{sid}"), json!({"included": ["u1", "u2", "u3"]})).await).await;
        json_ok(app.patch(&format!("/api/v1/feature-flags/{colour}"), json!({"variations": [{"key": "a", "value": "green"}, {"key": "b", "value": "blue"}, {"key": "c", "value": "lime"}]})).await).await;
    }
}

both_backends! {
    async fn ids_in_bodies_never_reach_the_database_unchecked(app) {
        let project = app.default_project().await;
        for body in [json!({"action": "disable", "flag_ids": ["a\u{0}b"]}),
                     json!({"action": "disable", "flag_ids": ["x"], "environment_id": "e\u{0}"})] {
            error_of(app.post(&format!("/api/v1/projects/{project}/feature-flags/bulk"), body).await, 400, "invalid_request").await;
        }
        let flag = id(&create_flag(&app, &project, json!({"key": "nul-kill"})).await);
        let r = app.post(&format!("/api/v1/feature-flags/{flag}/kill-switch"), json!({"reason": "x", "environment_id": "\u{0}"})).await;
        error_of(r, 400, "invalid_request").await;
        // A service token for an organization that does not exist: 404, not a server error.
        let r = app.post("/api/v1/tokens", json!({"name": "bot", "kind": "service", "organization_id": "0190e0a4-0000-7000-8000-000000000001", "role": "editor"})).await;
        error_of(r, 404, "not_found").await;
    }
}
