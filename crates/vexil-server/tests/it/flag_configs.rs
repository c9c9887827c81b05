//! Flag configurations: read and merge-patch with validation against the environment's
//! ruleset (paths relative to the configuration), rule ids, toggles, revisions and restore,
//! and the per-environment list.

use reqwest::Method;
use serde_json::{Value, json};

use crate::flags::{config_path, create_flag, id};
use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// A boolean flag `key` in the default project: `(flag id, development id, production id)`.
async fn setup(app: &TestApp, key: &str) -> (String, String, String) {
    let project = app.default_project().await;
    let flag = create_flag(app, &project, json!({"key": key})).await;
    (
        id(&flag),
        app.environment(&project, "development").await,
        app.environment(&project, "production").await,
    )
}

fn fields(e: &Value) -> &Value {
    &e["error"]["details"]["fields"]
}

both_backends! {
    async fn configurations_are_merge_patched_and_versioned(app) {
        let (flag, _dev, prod) = setup(&app, "checkout").await;
        let path = config_path(&flag, &prod);
        let rules = json!([
            {"description": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}},
            {"id": "beta", "clauses": [{"attribute": "plan", "op": "in", "values": ["beta"]}], "serve": {"variation": "on"}},
        ]);
        let r = app.request(Method::PATCH, &path).header("if-match", "\"1\"")
            .json(&json!({"enabled": true, "rules": rules, "targets": [{"variation": "off", "values": ["bot-1"]}], "comment": "staff first"}))
            .send().await.unwrap();
        assert_eq!(r.headers()["etag"], "\"2\"");
        let config = json_ok(r).await;
        assert_eq!((config["enabled"].clone(), config["version"].clone(), config["off_variation"].clone()), (json!(true), json!(2), json!("off")));
        let assigned = config["rules"][0]["id"].as_str().unwrap().to_owned();
        assert!(!assigned.is_empty() && assigned.len() <= 16, "{assigned}");
        assert_eq!(config["rules"][1]["id"], "beta");
        assert_eq!(config["rules"][0]["clauses"][0]["op"], "ends_with");

        // Ids stay stable when the rules are sent back with a change.
        let mut rules = config["rules"].clone();
        rules[1]["clauses"][0]["values"] = json!(["beta", "trial"]);
        let config = json_ok(app.patch(&path, json!({"rules": rules})).await).await;
        assert_eq!((config["rules"][0]["id"].as_str().unwrap(), config["version"].clone()), (assigned.as_str(), json!(3)));
        // A serve is replaced whole, not merged.
        let rollout = json!({"rollout": {"variations": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}});
        let config = json_ok(app.patch(&path, json!({"fallthrough": rollout})).await).await;
        assert_eq!(config["fallthrough"]["rollout"]["variations"][0]["weight"], 25000);
        assert!(config["fallthrough"].get("variation").is_none(), "{config}");

        let stale = app.request(Method::PATCH, &path).header("if-match", "\"2\"").json(&json!({"enabled": false})).send().await.unwrap();
        assert_eq!(error_of(stale, 412, "version_mismatch").await["details"]["current_version"], 4);

        app.restart().await;
        let r = app.get(&path).await;
        assert_eq!(r.headers()["etag"], "\"4\"");
        let again = json_ok(r).await;
        assert_eq!(again, config);
        assert_eq!(again["targets"], json!([{"variation": "off", "values": ["bot-1"]}]));

        error_of(app.get(&config_path("nope", &prod)).await, 404, "not_found").await;
        error_of(app.get(&config_path(&flag, "nope")).await, 404, "not_found").await;
        error_of(app.patch(&config_path(&flag, "nope"), json!({"enabled": true})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::GET, &path).send().await.unwrap(), 401, "unauthorized").await;
        error_of(app.anonymous(Method::PATCH, &path).json(&json!({"enabled": true})).send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn invalid_configurations_name_the_exact_field(app) {
        let (flag, _dev, prod) = setup(&app, "checkout").await;
        let project = app.default_project().await;
        create_flag(&app, &project, json!({"key": "other"})).await;
        let path = config_path(&flag, &prod);
        let clause = |op: &str, values: Value| json!([{"clauses": [{"attribute": "email", "op": op, "values": values}], "serve": {"variation": "on"}}]);
        for (body, field) in [
            (json!({"rules": clause("matches", json!(["^a", "(unclosed"]))}), "rules[0].clauses[0].values[1]"),
            (json!({"rules": clause("lt", json!(["ten"]))}), "rules[0].clauses[0].values[0]"),
            (json!({"rules": clause("in_segment", json!(["ghost"]))}), "rules[0].clauses[0].values[0]"),
            (json!({"rules": clause("sounds_like", json!(["x"]))}), "rules[0].clauses[0].op"),
            (json!({"rules": [{"clauses": [], "serve": {"variation": "on"}, "colour": 1}]}), "rules[0].colour"),
            (json!({"rules": [{"id": "a", "serve": {"variation": "on"}}, {"id": "a", "serve": {"variation": "off"}}]}), "rules[1].id"),
            (json!({"fallthrough": {"variation": "blue"}}), "fallthrough.variation"),
            (json!({"fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 5}]}}}), "fallthrough.rollout.variations"),
            (json!({"off_variation": "nope"}), "off_variation"),
            (json!({"targets": [{"variation": "on", "values": ["u1"]}, {"variation": "off", "values": ["u1"]}]}), "targets[1].values[0]"),
            (json!({"prerequisites": [{"flag": "ghost", "variations": ["on"]}]}), "prerequisites[0].flag"),
            (json!({"prerequisites": [{"flag": "other", "variations": ["maybe"]}]}), "prerequisites[0].variations[0]"),
            (json!({"prerequisites": [{"flag": "checkout", "variations": ["on"]}]}), "prerequisites[0].flag"),
            (json!({"enabled": "yes"}), "enabled"),
            (json!({"flag_key": "renamed"}), "flag_key"),
            (json!({"version": 7}), "version"),
        ] {
            let e = json_status(app.patch(&path, body.clone()).await, 400).await;
            assert!(fields(&e).get(field).is_some(), "{body} → {e}");
        }
        error_of(app.patch(&path, json!({"comment": 1})).await, 400, "invalid_request").await;
        let malformed = app.request(Method::PATCH, &path).header("content-type", "application/json").body("{\"enabled\": tru").send().await.unwrap();
        error_of(malformed, 400, "invalid_request").await;

        // Cycles through prerequisites are rejected wherever they close.
        let other = json_ok(app.get(&format!("/api/v1/projects/{project}/feature-flags?q=other")).await).await["items"][0]["id"].as_str().unwrap().to_owned();
        json_ok(app.patch(&config_path(&other, &prod), json!({"prerequisites": [{"flag": "checkout", "variations": ["on"]}]})).await).await;
        let e = error_of(app.patch(&path, json!({"prerequisites": [{"flag": "other", "variations": ["on"]}]})).await, 400, "invalid_request").await;
        assert!(e["message"].as_str().unwrap().contains("cycle"), "{e}");

        // Nothing of the above was stored.
        let config = json_ok(app.get(&path).await).await;
        assert_eq!((config["version"].clone(), config["rules"].clone(), config["prerequisites"].clone()), (json!(1), json!([]), json!([])));
    }

    async fn toggles_flip_or_set(app) {
        let (flag, dev, prod) = setup(&app, "toggle-me").await;
        let toggle = format!("{}/toggle", config_path(&flag, &prod));
        // Without a body: flip.
        let r = app.request(Method::PATCH, &toggle).send().await.unwrap();
        assert_eq!(r.headers()["etag"], "\"2\"");
        assert_eq!(json_ok(r).await["enabled"], true);
        assert_eq!(json_ok(app.patch(&toggle, json!({})).await).await["enabled"], false);
        let set = json_ok(app.patch(&toggle, json!({"enabled": true, "comment": "go"})).await).await;
        assert_eq!((set["enabled"].clone(), set["version"].clone()), (json!(true), json!(4)));
        assert_eq!(json_ok(app.patch(&toggle, json!({"enabled": true})).await).await["enabled"], true, "setting is idempotent");
        assert_eq!(json_ok(app.get(&config_path(&flag, &dev)).await).await["enabled"], false, "other environments untouched");

        let stale = app.request(Method::PATCH, &toggle).header("if-match", "\"1\"").send().await.unwrap();
        error_of(stale, 412, "version_mismatch").await;
        error_of(app.patch(&toggle, json!({"enabled": "on"})).await, 400, "invalid_request").await;
        error_of(app.patch(&toggle, json!({"state": true})).await, 400, "invalid_request").await;
        let plain = app.request(Method::PATCH, &toggle).body("{\"enabled\": true}").send().await.unwrap();
        error_of(plain, 415, "unsupported_media_type").await;
        error_of(app.patch(&format!("{}/toggle", config_path("nope", &prod)), json!({})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::PATCH, &toggle).send().await.unwrap(), 401, "unauthorized").await;

        // An environment of another project is not found for this flag.
        let org = json_ok(app.get("/api/v1/organizations").await).await["items"][0]["id"].as_str().unwrap().to_owned();
        let other = json_status(app.post("/api/v1/projects", json!({"organization_id": org, "key": "mobile"})).await, 201).await;
        let foreign = app.environment(&id(&other), "production").await;
        error_of(app.patch(&format!("{}/toggle", config_path(&flag, &foreign)), json!({})).await, 404, "not_found").await;

        app.restart().await;
        assert_eq!(json_ok(app.get(&config_path(&flag, &prod)).await).await["enabled"], true);
    }

    async fn revisions_list_and_restore(app) {
        let (flag, _dev, prod) = setup(&app, "history").await;
        let path = config_path(&flag, &prod);
        let rule = json!([{"id": "r1", "clauses": [{"attribute": "country", "op": "in", "values": ["NZ"]}], "serve": {"variation": "on"}}]);
        json_ok(app.patch(&path, json!({"rules": rule, "comment": "NZ first"})).await).await;
        json_ok(app.patch(&path, json!({"enabled": true, "comment": "launch"})).await).await;
        json_ok(app.patch(&path, json!({"rules": [], "comment": "everyone"})).await).await;

        let page = json_ok(app.get(&format!("{path}/revisions")).await).await;
        assert_eq!(page["total"], 4);
        let versions: Vec<_> = page["items"].as_array().unwrap().iter().map(|r| r["version"].clone()).collect();
        assert_eq!(versions, [json!(4), json!(3), json!(2), json!(1)]);
        assert_eq!(page["items"][0]["comment"], "everyone");
        assert_eq!(page["items"][0]["actor"]["name"], "bootstrap");
        assert_eq!(page["items"][2]["config"]["rules"][0]["id"], "r1");
        assert_eq!(page["items"][2]["config"]["enabled"], false);
        let second = json_ok(app.get(&format!("{path}/revisions?limit=1&offset=1")).await).await;
        assert_eq!((second["items"][0]["version"].clone(), second["total"].clone()), (json!(3), json!(4)));

        let restored = json_status(app.post(&format!("{path}/revisions/2/restore"), json!({"comment": "back to NZ only"})).await, 200).await;
        assert_eq!((restored["version"].clone(), restored["rules"][0]["id"].clone(), restored["enabled"].clone()), (json!(5), json!("r1"), json!(false)));
        let page = json_ok(app.get(&format!("{path}/revisions?limit=1")).await).await;
        assert_eq!((page["items"][0]["version"].clone(), page["items"][0]["comment"].clone()), (json!(5), json!("back to NZ only")));
        // Without a body, the revision says what it restored.
        json_ok(app.request(Method::POST, &format!("{path}/revisions/1/restore")).send().await.unwrap()).await;
        let page = json_ok(app.get(&format!("{path}/revisions?limit=1")).await).await;
        assert_eq!((page["items"][0]["version"].clone(), page["items"][0]["comment"].clone()), (json!(6), json!("restored version 1")));

        error_of(app.post(&format!("{path}/revisions/99/restore"), json!({})).await, 404, "not_found").await;
        error_of(app.post(&format!("{path}/revisions/abc/restore"), json!({})).await, 404, "not_found").await;
        error_of(app.get(&format!("{}/revisions", config_path("nope", &prod))).await, 404, "not_found").await;
        error_of(app.anonymous(Method::GET, &format!("{path}/revisions")).send().await.unwrap(), 401, "unauthorized").await;

        // A revision that no longer validates (its prerequisite is gone) cannot be restored.
        let project = app.default_project().await;
        let gate = create_flag(&app, &project, json!({"key": "gate"})).await;
        json_ok(app.patch(&path, json!({"prerequisites": [{"flag": "gate", "variations": ["on"]}]})).await).await;
        json_ok(app.patch(&path, json!({"prerequisites": []})).await).await;
        assert_eq!(app.delete(&format!("/api/v1/feature-flags/{}", id(&gate))).await.status(), 204);
        let e = json_status(app.post(&format!("{path}/revisions/7/restore"), json!({})).await, 400).await;
        assert!(fields(&e).get("prerequisites[0].flag").is_some(), "{e}");

        app.restart().await;
        let page = json_ok(app.get(&format!("{path}/revisions")).await).await;
        assert_eq!(page["total"], 8);
    }

    async fn environments_list_their_configurations(app) {
        let project = app.default_project().await;
        for key in ["b-flag", "a-flag", "c-flag"] {
            create_flag(&app, &project, json!({"key": key})).await;
        }
        let prod = app.environment(&project, "production").await;
        let page = json_ok(app.get(&format!("/api/v1/environments/{prod}/flag-configs?limit=2")).await).await;
        assert_eq!((page["total"].clone(), page["limit"].clone()), (json!(3), json!(2)));
        let keys: Vec<_> = page["items"].as_array().unwrap().iter().map(|c| c["flag_key"].clone()).collect();
        assert_eq!(keys, [json!("a-flag"), json!("b-flag")]);
        assert_eq!(page["items"][0]["environment_key"], "production");
        let rest = json_ok(app.get(&format!("/api/v1/environments/{prod}/flag-configs?offset=2")).await).await;
        assert_eq!(rest["items"][0]["flag_key"], "c-flag");
        error_of(app.get("/api/v1/environments/nope/flag-configs").await, 404, "not_found").await;
        error_of(app.get(&format!("/api/v1/environments/{prod}/flag-configs?limit=501")).await, 400, "invalid_request").await;
        error_of(app.anonymous(Method::GET, &format!("/api/v1/environments/{prod}/flag-configs")).send().await.unwrap(), 401, "unauthorized").await;
    }
}

both_backends! {
    async fn restoring_checks_if_match_and_archived_flags_cannot_be_enabled(app) {
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let flag = crate::json_status(app.post(&format!("/api/v1/projects/{project}/feature-flags"),
            serde_json::json!({"key": "guarded"})).await, 201).await;
        let id = flag["id"].as_str().unwrap().to_owned();
        let config = format!("/api/v1/flags/{id}/environments/{prod}/config");
        crate::json_ok(app.patch(&config, serde_json::json!({"enabled": true})).await).await; // version 2

        // A restore based on a stale read must not silently undo version 2.
        let stale = app.request(reqwest::Method::POST, &format!("{config}/revisions/1/restore"))
            .header("if-match", "\"1\"").send().await.unwrap();
        crate::error_of(stale, 412, "version_mismatch").await;
        let restored = app.request(reqwest::Method::POST, &format!("{config}/revisions/1/restore"))
            .header("if-match", "\"2\"").send().await.unwrap();
        assert_eq!(crate::json_ok(restored).await["enabled"], false);

        // Archived flags stay off until restored.
        crate::json_ok(app.request(reqwest::Method::PATCH, &format!("/api/v1/feature-flags/{id}/archive")).send().await.unwrap()).await;
        crate::error_of(app.patch(&format!("{config}/toggle"), serde_json::json!({})).await, 409, "conflict").await;
        crate::error_of(app.patch(&config, serde_json::json!({"enabled": true})).await, 409, "conflict").await;
        assert_eq!(crate::json_ok(app.get(&config).await).await["enabled"], false);
    }
}
