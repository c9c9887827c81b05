//! API keys: the secret is shown once and never again (lists, audit trail), prefixes by
//! type, validation, and keys that authenticate evaluation requests until the moment they
//! are revoked, deleted or expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

fn keys_path(project: &str) -> String {
    format!("/api/v1/projects/{project}/api-keys")
}

/// Creates a key; returns its JSON (with the secret).
async fn create(app: &TestApp, project: &str, body: Value) -> Value {
    json_status(app.post(&keys_path(project), body).await, 201).await
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Whether `secret` authenticates an evaluation request (`GET /api/v1/sdk/config` for
/// server keys, `POST /api/v1/evaluate` for the others). Anything but 200 or 401 fails.
async fn accepted(app: &TestApp, secret: &str) -> bool {
    let r = if secret.starts_with("vx_srv_") {
        app.anonymous(Method::GET, "/api/v1/sdk/config")
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
    } else {
        app.anonymous(Method::POST, "/api/v1/evaluate")
            .header("x-api-key", secret)
            .json(&json!({"flag_key": "x", "context": {}}))
            .send()
            .await
            .unwrap()
    };
    match r.status().as_u16() {
        401 => false,
        200 => {
            let body: Value = r.json().await.unwrap();
            if secret.starts_with("vx_srv_") {
                assert!(
                    body["version"].is_i64()
                        && body["flags"].is_object()
                        && body["segments"].is_object(),
                    "{body}"
                );
            } else {
                assert_eq!(body["flag_key"], "x", "{body}");
            }
            true
        }
        other => panic!("unexpected status {other}: {}", r.text().await.unwrap()),
    }
}

fn rfc3339_in(offset: Duration) -> String {
    let ms = (SystemTime::now() + offset)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    vexil_core::time::format_rfc3339(ms)
}

both_backends! {
    async fn api_key_lifecycle(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let path = keys_path(&project);
        let r = app.post(&path, json!({"name": "backend", "type": "server",
            "environment_id": production, "comment": "for the API"})).await;
        let created = json_status(r, 201).await;
        let secret = str_of(&created, "key").to_owned();
        let id = str_of(&created, "id").to_owned();
        let hex = secret.strip_prefix("vx_srv_").expect("server prefix");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
        assert_eq!(created["prefix"], secret[..12]);
        assert_eq!((created["type"].clone(), created["name"].clone()), (json!("server"), json!("backend")));
        assert_eq!((created["project_id"].clone(), created["environment_id"].clone()), (json!(project), json!(production)));
        assert!(created["created_at"].is_string() && created["created_by"].is_string(), "{created}");
        assert!(created["expires_at"].is_null() && created["revoked_at"].is_null(), "{created}");
        assert!(created.get("key_hash").is_none() && created.get("kind").is_none(), "{created}");

        // Every type has its prefix.
        let client = create(&app, &project, json!({"name": "web", "type": "client", "environment_id": production})).await;
        let mobile = create(&app, &project, json!({"name": "app", "type": "mobile", "environment_id": production})).await;
        let client_secret = str_of(&client, "key").to_owned();
        assert!(client_secret.starts_with("vx_cli_") && client_secret.len() == 71, "{client_secret}");
        assert!(str_of(&mobile, "key").starts_with("vx_mob_"), "{mobile}");
        assert_eq!(mobile["prefix"], str_of(&mobile, "key")[..12]);
        assert_ne!(client_secret, str_of(&mobile, "key"));

        // The secret is never shown again, in no field.
        let listed = app.get(&path).await.text().await.unwrap();
        for s in [secret.as_str(), client_secret.as_str(), str_of(&mobile, "key")] {
            assert!(!listed.contains(s), "{listed}");
            assert!(!listed.contains(&s[12..]), "{listed}");
        }
        let listed: Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed["total"], 3);
        let mut record = created.clone();
        record.as_object_mut().unwrap().remove("key");
        let item = listed["items"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).expect("listed");
        assert_eq!(item, &record);
        let page = json_ok(app.get(&format!("{path}?limit=1&offset=1")).await).await;
        assert_eq!((page["total"].clone(), page["limit"].clone(), page["items"].as_array().unwrap().len()), (json!(3), json!(1), 1));

        // Keys authenticate evaluation requests, as Bearer or X-API-Key.
        assert!(accepted(&app, &secret).await);
        assert!(accepted(&app, &client_secret).await);
        let r = app.anonymous(Method::GET, "/api/v1/sdk/config").header("x-api-key", &secret).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!accepted(&app, &format!("{secret}0")).await);

        // Revoked: refused at once; revoking again changes nothing.
        let revoked = json_ok(app.patch(&format!("/api/v1/api-keys/{id}/revoke"), json!({"comment": "leaked"})).await).await;
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        assert!(revoked.get("key").is_none(), "{revoked}");
        assert!(!accepted(&app, &secret).await);
        let again = app.request(Method::PATCH, &format!("/api/v1/api-keys/{id}/revoke")).send().await.unwrap();
        assert_eq!(json_ok(again).await, revoked);
        let listed = json_ok(app.get(&path).await).await;
        let item = listed["items"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).expect("still listed");
        assert_eq!(item, &revoked);

        // Deleted: refused at once, and gone.
        let client_id = str_of(&client, "id");
        assert_eq!(app.delete(&format!("/api/v1/api-keys/{client_id}")).await.status(), 204);
        assert!(!accepted(&app, &client_secret).await);
        error_of(app.delete(&format!("/api/v1/api-keys/{client_id}")).await, 404, "not_found").await;
        assert_eq!(json_ok(app.get(&path).await).await["total"], 2);
        assert!(accepted(&app, str_of(&mobile, "key")).await, "other keys keep working");

        // The audit trail has every change, and no secret anywhere.
        let text = app.get("/api/v1/audit-logs?resource_type=api_key&limit=500").await.text().await.unwrap();
        for s in [secret.as_str(), client_secret.as_str(), str_of(&mobile, "key")] {
            assert!(!text.contains(&s[12..]), "{text}");
        }
        let audit: Value = serde_json::from_str(&text).unwrap();
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["api_key.delete", "api_key.revoke", "api_key.create", "api_key.create", "api_key.create"]);
        let items = audit["items"].as_array().unwrap();
        assert_eq!((items[1]["comment"].clone(), items[1]["resource_id"].clone()), (json!("leaked"), json!(id)));
        assert!(items[1]["before"]["revoked_at"].is_null() && items[1]["after"]["revoked_at"].is_string(), "{}", items[1]);
        let create_entry = items.iter().find(|e| e["resource_id"] == id.as_str() && e["action"] == "api_key.create").unwrap();
        assert_eq!(create_entry["after"], record);
        assert_eq!(create_entry["comment"], "for the API");
        assert!(items[0]["after"].is_null() && items[0]["before"]["id"] == client_id, "{}", items[0]);
        let verify = json_ok(app.get("/api/v1/audit-logs/verify").await).await;
        assert_eq!(verify["valid"], true);
    }

    async fn keys_survive_a_restart(app) {
        let project = app.default_project().await;
        let development = app.environment(&project, "development").await;
        let key = create(&app, &project, json!({"name": "k", "type": "server", "environment_id": development})).await;
        let secret = str_of(&key, "key").to_owned();
        app.restart().await;
        assert!(accepted(&app, &secret).await);
        let id = str_of(&key, "id");
        json_ok(app.patch(&format!("/api/v1/api-keys/{id}/revoke"), json!({})).await).await;
        app.restart().await;
        assert!(!accepted(&app, &secret).await);
    }

    async fn expired_keys_are_refused(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let expires_at = rfc3339_in(Duration::from_secs(2));
        let key = create(&app, &project, json!({"name": "short-lived", "type": "server",
            "environment_id": production, "expires_at": expires_at})).await;
        assert_eq!(key["expires_at"], expires_at);
        let secret = str_of(&key, "key");
        assert!(accepted(&app, secret).await);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!accepted(&app, secret).await);
        // Other offsets are accepted and stored in UTC.
        let key = create(&app, &project, json!({"name": "k", "type": "client",
            "environment_id": production, "expires_at": "2999-01-01T02:00:00+02:00"})).await;
        assert_eq!(key["expires_at"], "2999-01-01T00:00:00.000Z");
    }

    async fn invalid_requests_are_rejected(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let path = keys_path(&project);
        let base = json!({"name": "k", "type": "server", "environment_id": production});
        let with = |field: &str, value: Value| {
            let mut body = base.clone();
            body[field] = value;
            body
        };
        let cases = [
            (with("type", json!("admin")), "type"),
            (with("type", json!(7)), "type"),
            (with("environment_id", json!("no-such-environment")), "environment_id"),
            (with("expires_at", json!("2020-01-01T00:00:00Z")), "expires_at"),
            (with("expires_at", json!("tomorrow")), "expires_at"),
            (with("name", json!("")), "name"),
            (with("comment", json!("x".repeat(1001))), "comment"),
        ];
        for (body, field) in cases {
            let e = error_of(app.post(&path, body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"][field].is_string(), "{body} -> {e}");
        }
        // Several problems at once are all named.
        let e = error_of(app.post(&path, json!({"name": "k", "type": "root", "environment_id": production,
            "expires_at": "2001-01-01T00:00:00Z"})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["type"].is_string() && e["details"]["fields"]["expires_at"].is_string(), "{e}");
        for body in [json!({"type": "server", "environment_id": production}), with("secret", json!("mine"))] {
            let e = error_of(app.post(&path, body).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].as_object().is_some_and(|f| !f.is_empty()), "{e}");
        }

        // An environment of another project is refused.
        let org = json_ok(app.get("/api/v1/organizations").await).await["items"][0]["id"].clone();
        let other = json_status(app.post("/api/v1/projects", json!({"organization_id": org, "key": "other"})).await, 201).await;
        let other_id = str_of(&other, "id");
        let env = json_status(app.post(&format!("/api/v1/projects/{other_id}/environments"), json!({"key": "staging"})).await, 201).await;
        let e = error_of(app.post(&path, with("environment_id", env["id"].clone())).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["environment_id"].is_string(), "{e}");
        // ... but works in its own project, which can still be deleted with its keys.
        let key = create(&app, other_id, with("environment_id", env["id"].clone())).await;
        assert!(accepted(&app, str_of(&key, "key")).await);
        assert_eq!(app.delete(&format!("/api/v1/projects/{other_id}")).await.status(), 204);
        assert!(!accepted(&app, str_of(&key, "key")).await);

        // Unknown project and ids.
        error_of(app.post(&keys_path("no-such-project"), base.clone()).await, 404, "not_found").await;
        error_of(app.get(&keys_path("no-such-project")).await, 404, "not_found").await;
        error_of(app.delete("/api/v1/api-keys/no-such-key").await, 404, "not_found").await;
        error_of(app.patch("/api/v1/api-keys/no-such-key/revoke", json!({})).await, 404, "not_found").await;
        let e = error_of(app.get(&format!("{path}?limit=0")).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["limit"].is_string(), "{e}");
        let id = str_of(&create(&app, &project, base.clone()).await, "id").to_owned();
        let e = error_of(app.patch(&format!("/api/v1/api-keys/{id}/revoke"), json!({"reason": "x"})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].is_object(), "{e}");

        // Management routes: the admin token is required.
        let anonymous = [
            app.anonymous(Method::GET, &path),
            app.anonymous(Method::POST, &path).json(&base),
            app.anonymous(Method::DELETE, &format!("/api/v1/api-keys/{id}")),
            app.anonymous(Method::PATCH, &format!("/api/v1/api-keys/{id}/revoke")),
        ];
        for request in anonymous {
            error_of(request.send().await.unwrap(), 401, "unauthorized").await;
        }
        // An API key is not a management credential.
        let secret = str_of(&create(&app, &project, base.clone()).await, "key").to_owned();
        let r = app.anonymous(Method::GET, &path).bearer_auth(&secret).send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
        // Nothing was revoked by the refused requests.
        let listed = json_ok(app.get(&path).await).await;
        assert!(listed["items"].as_array().unwrap().iter().all(|k| k["revoked_at"].is_null()), "{listed}");
    }
}
