//! Segments: CRUD, validation through the core with segment-relative paths, cycles,
//! preconditions, persistence, and deletion blocked while something still uses a segment.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// Creates a segment in the default project; returns its JSON.
async fn create(app: &TestApp, body: Value) -> Value {
    let project = app.default_project().await;
    json_status(
        app.post(&format!("/api/v1/projects/{project}/segments"), body)
            .await,
        201,
    )
    .await
}

/// A segment rule whose only clause is `in_segment` of `keys`.
fn in_segment(keys: &[&str]) -> Value {
    json!({"clauses": [{"op": "in_segment", "values": keys}]})
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn ruleset_version(app: &TestApp, environment_id: &str) -> i64 {
    let env = json_ok(
        app.get(&format!("/api/v1/environments/{environment_id}"))
            .await,
    )
    .await;
    env["ruleset_version"].as_i64().expect("ruleset_version")
}

both_backends! {
    async fn segment_lifecycle(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let ruleset_before = ruleset_version(&app, &production).await;
        let path = format!("/api/v1/projects/{project}/segments");
        let r = app.post(&path, json!({
            "key": "beta-testers", "name": "Beta testers", "description": "Early access",
            "included": ["user-1", "user-2"], "excluded": ["user-3"],
            "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]}],
            "comment": "for the beta"
        })).await;
        assert_eq!(r.headers()["etag"], "\"1\"");
        let seg = json_status(r, 201).await;
        let id = id_of(&seg);
        assert_eq!((seg["key"].clone(), seg["name"].clone(), seg["project_id"].clone()),
            (json!("beta-testers"), json!("Beta testers"), json!(project)));
        assert_eq!((seg["included"].clone(), seg["excluded"].clone()), (json!(["user-1", "user-2"]), json!(["user-3"])));
        assert_eq!(seg["rules"][0]["clauses"][0]["op"], "ends_with");
        let rule_id = seg["rules"][0]["id"].as_str().expect("the server assigns rule ids").to_owned();
        assert_eq!(seg["version"], 1);
        // Every environment sees segments, so each one's ruleset moved on.
        assert!(ruleset_version(&app, &production).await > ruleset_before);

        // A name defaults to the key.
        let other = create(&app, json!({"key": "staff"})).await;
        assert_eq!(other["name"], "staff");
        let listed = json_ok(app.get(&format!("{path}?limit=1")).await).await;
        assert_eq!((listed["total"].clone(), listed["items"][0]["key"].clone()), (json!(2), json!("beta-testers")));
        let fetched = app.get(&format!("/api/v1/segments/{id}")).await;
        assert_eq!(fetched.headers()["etag"], "\"1\"");
        assert_eq!(json_ok(fetched).await, seg);

        let dup = error_of(app.post(&path, json!({"key": "beta-testers"})).await, 409, "conflict").await;
        assert_eq!(dup["details"]["key"], "beta-testers");

        // Merge patch: arrays are replaced whole; a rule re-sent without its id keeps it.
        let r = app.request(Method::PATCH, &format!("/api/v1/segments/{id}")).header("if-match", "\"1\"")
            .json(&json!({"name": "Beta", "included": ["user-9"],
                "rules": [{"clauses": seg["rules"][0]["clauses"].clone()}]}))
            .send().await.unwrap();
        assert_eq!(r.headers()["etag"], "\"2\"");
        let patched = json_ok(r).await;
        assert_eq!((patched["name"].clone(), patched["description"].clone(), patched["version"].clone()),
            (json!("Beta"), json!("Early access"), json!(2)));
        assert_eq!((patched["included"].clone(), patched["excluded"].clone()), (json!(["user-9"]), json!(["user-3"])));
        assert_eq!(patched["rules"][0]["id"], rule_id.as_str());
        assert_eq!(patched["created_at"], seg["created_at"]);

        let stale = app.request(Method::PATCH, &format!("/api/v1/segments/{id}")).header("if-match", "\"1\"")
            .json(&json!({"name": "Late"})).send().await.unwrap();
        assert_eq!(error_of(stale, 412, "version_mismatch").await["details"]["current_version"], 2);
        let stale = app.request(Method::DELETE, &format!("/api/v1/segments/{id}")).header("if-match", "\"1\"").send().await.unwrap();
        error_of(stale, 412, "version_mismatch").await;
        let key_change = error_of(app.patch(&format!("/api/v1/segments/{id}"), json!({"key": "other"})).await, 400, "invalid_request").await;
        assert!(key_change["details"]["fields"]["key"].is_string(), "{key_change}");
        error_of(app.patch(&format!("/api/v1/segments/{id}"), json!({"colour": "red"})).await, 400, "invalid_request").await;
        // Re-sending the current key is allowed, and changes nothing.
        let same = json_ok(app.patch(&format!("/api/v1/segments/{id}"), json!({"key": "beta-testers", "comment": "noop"})).await).await;
        assert_eq!(same["version"], 2);

        app.restart().await;
        let after_restart = json_ok(app.get(&format!("/api/v1/segments/{id}")).await).await;
        assert_eq!((after_restart["name"].clone(), after_restart["included"].clone(), after_restart["version"].clone()),
            (json!("Beta"), json!(["user-9"]), json!(2)));

        assert_eq!(app.delete(&format!("/api/v1/segments/{id}")).await.status(), 204);
        error_of(app.get(&format!("/api/v1/segments/{id}")).await, 404, "not_found").await;
        error_of(app.delete(&format!("/api/v1/segments/{id}")).await, 404, "not_found").await;
        error_of(app.patch(&format!("/api/v1/segments/{id}"), json!({"name": "x"})).await, 404, "not_found").await;
        assert_eq!(json_ok(app.get(&path).await).await["total"], 1);
    }

    async fn unknown_projects_and_missing_credentials(app) {
        error_of(app.get("/api/v1/projects/ghost/segments").await, 404, "not_found").await;
        error_of(app.post("/api/v1/projects/ghost/segments", json!({"key": "a"})).await, 404, "not_found").await;
        let project = app.default_project().await;
        let path = format!("/api/v1/projects/{project}/segments");
        error_of(app.anonymous(Method::GET, &path).send().await.unwrap(), 401, "unauthorized").await;
        let anonymous = app.anonymous(Method::POST, &path).json(&json!({"key": "a"})).send().await.unwrap();
        error_of(anonymous, 401, "unauthorized").await;
        error_of(app.anonymous(Method::DELETE, "/api/v1/segments/x").send().await.unwrap(), 401, "unauthorized").await;
        assert_eq!(json_ok(app.get(&path).await).await["total"], 0);
    }

    async fn validation_errors_point_into_the_segment(app) {
        let project = app.default_project().await;
        let path = format!("/api/v1/projects/{project}/segments");
        let err = error_of(app.post(&path, json!({"key": "bad", "rules": [
            {"clauses": [
                {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]},
                {"attribute": "email", "op": "matches", "values": ["^ok$", "(unclosed"]}
            ]},
            {"clauses": [{"op": "in_segment", "values": ["nobody-made-this"]}]},
            {"clauses": [{"attribute": "version", "op": "semver_gte", "values": ["1.x"]},
                         {"attribute": "ip", "op": "in_cidr", "values": ["10.0.0.0/33"]}]}
        ]})).await, 400, "invalid_request").await;
        let fields = err["details"]["fields"].as_object().expect("fields");
        let mut paths: Vec<&str> = fields.keys().map(String::as_str).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["rules[0].clauses[1].values[1]", "rules[1].clauses[0].values[0]",
            "rules[2].clauses[0].values[0]", "rules[2].clauses[1].values[0]"], "{err}");
        assert!(fields["rules[0].clauses[1].values[1]"].as_str().unwrap().contains("regex"), "{err}");
        assert!(fields["rules[1].clauses[0].values[0]"].as_str().unwrap().contains("nobody-made-this"), "{err}");

        // Shape errors name the field too.
        let err = error_of(app.post(&path, json!({"key": "bad", "rules": [{"clauses": [{"attribute": "a", "op": "like", "values": ["x"]}]}]})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["rules[0].clauses[0].op"].is_string(), "{err}");
        let err = error_of(app.post(&path, json!({"key": "bad", "included": ["ok", "x".repeat(257)], "rules": [{"clauses": []}]})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["included[1]"].is_string(), "{err}");
        assert!(err["details"]["fields"]["rules[0].clauses"].is_string(), "{err}");
        let err = error_of(app.post(&path, json!({"key": "bad", "rules": (0..101).map(|_| in_segment(&["x"])).collect::<Vec<_>>()})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["rules"].is_string(), "{err}");
        let err = error_of(app.post(&path, json!({"key": "-bad"})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["key"].is_string(), "{err}");
        error_of(app.post(&path, json!({"key": "ok", "colour": "red"})).await, 400, "invalid_request").await;

        // A PATCH is validated the same way, with the same paths.
        let seg = create(&app, json!({"key": "good"})).await;
        let err = error_of(app.patch(&format!("/api/v1/segments/{}", id_of(&seg)),
            json!({"rules": [{"clauses": [{"attribute": "n", "op": "lt", "values": ["ten"]}]}]})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["rules[0].clauses[0].values[0]"].is_string(), "{err}");
        assert_eq!(json_ok(app.get(&path).await).await["total"], 1);
    }

    async fn cycles_through_in_segment_are_rejected(app) {
        let a = create(&app, json!({"key": "a"})).await;
        create(&app, json!({"key": "b", "rules": [in_segment(&["a"])]})).await;
        let c = create(&app, json!({"key": "c", "rules": [in_segment(&["b"])]})).await;
        // a → c → b → a closes a cycle at the value that names c.
        let err = error_of(app.patch(&format!("/api/v1/segments/{}", id_of(&a)),
            json!({"rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}, in_segment(&["staff", "c"])]})).await,
            400, "invalid_request").await;
        let fields = &err["details"]["fields"];
        assert_eq!(fields["rules[1].clauses[0].values[1]"], "segment cycle: a → c → b → a", "{err}");
        assert!(fields["rules[1].clauses[0].values[0]"].as_str().unwrap().contains("unknown segment"), "{err}");
        // A segment cannot contain itself either.
        let err = error_of(app.patch(&format!("/api/v1/segments/{}", id_of(&c)), json!({"rules": [in_segment(&["c"])]})).await,
            400, "invalid_request").await;
        assert!(err["details"]["fields"]["rules[0].clauses[0].values[0]"].as_str().unwrap().contains("cycle"), "{err}");
        let project = app.default_project().await;
        let err = error_of(app.post(&format!("/api/v1/projects/{project}/segments"),
            json!({"key": "d", "rules": [in_segment(&["d"])]})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["rules[0].clauses[0].values[0]"].as_str().unwrap().contains("cycle"), "{err}");
        // Nothing was changed by the rejected writes.
        assert_eq!(json_ok(app.get(&format!("/api/v1/segments/{}", id_of(&a))).await).await["version"], 1);
    }

    async fn delete_is_blocked_while_another_segment_uses_it(app) {
        let base = create(&app, json!({"key": "base"})).await;
        let user = create(&app, json!({"key": "uses-base", "rules": [in_segment(&["base"])]})).await;
        let blocked = error_of(app.delete(&format!("/api/v1/segments/{}", id_of(&base))).await, 409, "conflict").await;
        assert_eq!(blocked["details"]["referrers"], json!([{"segment": "uses-base"}]), "{blocked}");
        json_ok(app.patch(&format!("/api/v1/segments/{}", id_of(&user)), json!({"rules": null})).await).await;
        assert_eq!(app.delete(&format!("/api/v1/segments/{}", id_of(&base))).await.status(), 204);
    }

    async fn delete_is_blocked_while_a_flag_rule_uses_it(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let beta = create(&app, json!({"key": "beta"})).await;
        create(&app, json!({"key": "beta-plus", "rules": [in_segment(&["beta"])]})).await;
        let flag = json_status(app.post(&format!("/api/v1/projects/{project}/feature-flags"), json!({"key": "new-ui"})).await, 201).await;
        let config = format!("/api/v1/flags/{}/environments/{production}/config", id_of(&flag));
        let rule = json!({"clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}});
        json_ok(app.patch(&config, json!({"rules": [rule]})).await).await;

        let blocked = error_of(app.delete(&format!("/api/v1/segments/{}", id_of(&beta))).await, 409, "conflict").await;
        assert_eq!(blocked["details"]["referrers"],
            json!([{"flag": "new-ui", "environment": "production"}, {"segment": "beta-plus"}]), "{blocked}");
        // The segment is still there, unchanged.
        assert_eq!(json_ok(app.get(&format!("/api/v1/segments/{}", id_of(&beta))).await).await["version"], 1);

        json_ok(app.patch(&config, json!({"rules": []})).await).await;
        let blocked = error_of(app.delete(&format!("/api/v1/segments/{}", id_of(&beta))).await, 409, "conflict").await;
        assert_eq!(blocked["details"]["referrers"], json!([{"segment": "beta-plus"}]), "{blocked}");
    }
}
