//! Flags: create (with a configuration in every environment), list filters and sorting,
//! update, delete and archive (blocked by prerequisites), kill switch, bulk actions, and
//! configurations for environments created later.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// Creates a flag in `project` and returns it.
pub(crate) async fn create_flag(app: &TestApp, project: &str, body: Value) -> Value {
    json_status(
        app.post(&format!("/api/v1/projects/{project}/feature-flags"), body)
            .await,
        201,
    )
    .await
}

pub(crate) fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub(crate) fn config_path(flag: &str, env: &str) -> String {
    format!("/api/v1/flags/{flag}/environments/{env}/config")
}

/// The keys of the flags a list request returns, in order.
async fn keys(app: &TestApp, project: &str, query: &str) -> Vec<String> {
    let page = json_ok(
        app.get(&format!("/api/v1/projects/{project}/feature-flags?{query}"))
            .await,
    )
    .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn a_new_flag_starts_disabled_in_every_environment(app) {
        let project = app.default_project().await;
        let r = app.post(&format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "dark-mode", "tags": ["ui", "beta"], "client_side": true, "comment": "for the redesign"})).await;
        assert_eq!(r.headers()["etag"], "\"1\"");
        let flag = json_status(r, 201).await;
        assert_eq!(flag["type"], "boolean");
        assert_eq!(flag["name"], "dark-mode");
        assert_eq!(flag["variations"], json!([{"key": "on", "value": true}, {"key": "off", "value": false}]));
        assert_eq!((flag["tags"].clone(), flag["client_side"].clone(), flag["archived"].clone()), (json!(["ui", "beta"]), json!(true), json!(false)));
        for env in ["development", "production"] {
            let env_id = app.environment(&project, env).await;
            let r = app.get(&config_path(&id(&flag), &env_id)).await;
            assert_eq!(r.headers()["etag"], "\"1\"");
            let config = json_ok(r).await;
            assert_eq!(config["enabled"], false);
            assert_eq!(config["off_variation"], "off");
            assert_eq!(config["fallthrough"], json!({"variation": "on"}));
            assert_eq!((config["flag_key"].clone(), config["environment_key"].clone()), (json!("dark-mode"), json!(env)));
            let revisions = json_ok(app.get(&format!("{}/revisions", config_path(&id(&flag), &env_id))).await).await;
            assert_eq!(revisions["total"], 1);
        }

        // Non-boolean flags: off is the last variation, fallthrough the first.
        let colour = create_flag(&app, &project, json!({"key": "colour", "type": "string", "variations": [
            {"key": "red", "value": "#f00", "name": "Red"}, {"key": "green", "value": "#0f0"}, {"key": "blue", "value": "#00f"}]})).await;
        let prod = app.environment(&project, "production").await;
        let config = json_ok(app.get(&config_path(&id(&colour), &prod)).await).await;
        assert_eq!((config["off_variation"].clone(), config["fallthrough"].clone()), (json!("blue"), json!({"variation": "red"})));

        let dup = error_of(app.post(&format!("/api/v1/projects/{project}/feature-flags"), json!({"key": "dark-mode"})).await, 409, "conflict").await;
        assert_eq!(dup["details"]["key"], "dark-mode");
        error_of(app.post("/api/v1/projects/nope/feature-flags", json!({"key": "x"})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::POST, &format!("/api/v1/projects/{project}/feature-flags")).json(&json!({"key": "x"})).send().await.unwrap(), 401, "unauthorized").await;

        app.restart().await;
        let mut again = json_ok(app.get(&format!("/api/v1/feature-flags/{}", id(&flag))).await).await;
        // A read also says how the flag is used.
        let lifecycle = again.as_object_mut().unwrap().remove("lifecycle").unwrap();
        assert_eq!(lifecycle, json!({"last_evaluated_at": null, "stale": false, "reasons": []}));
        assert_eq!(again, flag);
        error_of(app.get("/api/v1/feature-flags/nope").await, 404, "not_found").await;
    }

    async fn invalid_flags_are_rejected_with_the_field_at_fault(app) {
        let project = app.default_project().await;
        let path = format!("/api/v1/projects/{project}/feature-flags");
        let fields = |e: Value| e["details"]["fields"].clone();
        let malformed = app.request(Method::POST, &path).header("content-type", "application/json").body("{\"key\": ").send().await.unwrap();
        error_of(malformed, 400, "invalid_request").await;
        let plain = app.request(Method::POST, &path).body("{\"key\": \"x\"}").send().await.unwrap();
        error_of(plain, 415, "unsupported_media_type").await;
        for (body, field) in [
            (json!({"key": "x", "client_side": "yes"}), "client_side"),
            (json!({"key": "x", "colour": "red"}), ""),
            (json!({"key": "-x"}), "key"),
            (json!({"key": "x", "type": "colour"}), "type"),
            (json!({"key": "x", "type": "string"}), "variations"),
            (json!({"key": "x", "variations": [{"key": "on", "value": true}, {"key": "off", "value": "no"}]}), "variations[1].value"),
            (json!({"key": "x", "type": "number", "variations": [{"key": "a", "value": 1}, {"key": "a", "value": 2}]}), "variations[1].key"),
            (json!({"key": "x", "type": "string", "variations": []}), "variations"),
            (json!({"key": "x", "tags": ["ok", "x".repeat(51)]}), "tags[1]"),
            (json!({"key": "x", "tags": ["a\u{0}b"]}), "tags[0]"),
            (json!({"key": "x", "tags": (0..51).map(|i| format!("t{i}")).collect::<Vec<_>>()}), "tags"),
            (json!({"key": "x", "name": ""}), "name"),
        ] {
            let e = error_of(app.post(&path, body.clone()).await, 400, "invalid_request").await;
            if !field.is_empty() {
                assert!(fields(e.clone()).get(field).is_some(), "{body} → {e}");
            }
        }
        assert_eq!(json_ok(app.get(&path).await).await["total"], 0, "nothing was created");
    }

    async fn lists_filter_and_sort(app) {
        let project = app.default_project().await;
        create_flag(&app, &project, json!({"key": "checkout-v2", "name": "New checkout", "tags": ["payments", "Beta"]})).await;
        create_flag(&app, &project, json!({"key": "banner", "name": "Promo banner", "description": "Shows the 50% sale", "tags": ["marketing"]})).await;
        create_flag(&app, &project, json!({"key": "limits", "name": "API limits", "type": "number", "variations": [{"key": "low", "value": 10}, {"key": "high", "value": 100}]})).await;
        let old = create_flag(&app, &project, json!({"key": "old_thing", "tags": ["payments"]})).await;
        json_ok(app.patch(&format!("/api/v1/feature-flags/{}/archive", id(&old)), json!({})).await).await;
        let prod = app.environment(&project, "production").await;
        let banner = json_ok(app.get(&format!("/api/v1/projects/{project}/feature-flags?q=banner")).await).await["items"][0]["id"].as_str().unwrap().to_owned();
        json_ok(app.patch(&format!("{}/toggle", config_path(&banner, &prod)), json!({"enabled": true})).await).await;

        assert_eq!(keys(&app, &project, "").await, ["banner", "checkout-v2", "limits"]);
        assert_eq!(keys(&app, &project, "sort=-key").await, ["limits", "checkout-v2", "banner"]);
        assert_eq!(keys(&app, &project, "sort=name").await, ["limits", "checkout-v2", "banner"]);
        assert_eq!(keys(&app, &project, "sort=created_at").await, ["checkout-v2", "banner", "limits"]);
        assert_eq!(keys(&app, &project, "q=CHECKOUT").await, ["checkout-v2"]);
        assert_eq!(keys(&app, &project, "q=50%25").await, ["banner"], "% is literal");
        assert_eq!(keys(&app, &project, "q=_").await, Vec::<String>::new(), "_ is literal");
        assert_eq!(keys(&app, &project, "tag=payments").await, ["checkout-v2"]);
        assert_eq!(keys(&app, &project, "tag=beta").await, ["checkout-v2"]);
        assert_eq!(keys(&app, &project, "tag=pay").await, Vec::<String>::new(), "whole tags only");
        assert_eq!(keys(&app, &project, "type=number").await, ["limits"]);
        assert_eq!(keys(&app, &project, "archived=true").await, ["old_thing"]);
        assert_eq!(keys(&app, &project, "archived=true&tag=payments").await, ["old_thing"]);
        assert_eq!(keys(&app, &project, &format!("environment_id={prod}&enabled=true")).await, ["banner"]);
        assert_eq!(keys(&app, &project, &format!("environment_id={prod}&enabled=false")).await, ["checkout-v2", "limits"]);

        let page = json_ok(app.get(&format!("/api/v1/projects/{project}/feature-flags?limit=2&offset=1")).await).await;
        assert_eq!((page["total"].clone(), page["limit"].clone(), page["offset"].clone()), (json!(3), json!(2), json!(1)));
        assert_eq!(page["items"][0]["key"], "checkout-v2");

        for bad in ["sort=colour", "enabled=true", "environment_id=nope", "type=colour", "limit=0", "archived=maybe", "q=a%00b", "tag=%00"] {
            error_of(app.get(&format!("/api/v1/projects/{project}/feature-flags?{bad}")).await, 400, "invalid_request").await;
        }
        error_of(app.get("/api/v1/projects/nope/feature-flags").await, 404, "not_found").await;
    }

    async fn updates_are_merge_patches_with_preconditions(app) {
        let project = app.default_project().await;
        let flag = create_flag(&app, &project, json!({"key": "colour", "type": "string", "description": "Button colour",
            "variations": [{"key": "red", "value": "red"}, {"key": "green", "value": "green"}, {"key": "blue", "value": "blue"}]})).await;
        let path = format!("/api/v1/feature-flags/{}", id(&flag));
        let r = app.request(Method::PATCH, &path).header("if-match", "\"1\"")
            .json(&json!({"name": "Colour", "tags": ["ui"], "temporary": true, "comment": "rename"})).send().await.unwrap();
        assert_eq!(r.headers()["etag"], "\"2\"");
        let updated = json_ok(r).await;
        assert_eq!((updated["name"].clone(), updated["description"].clone(), updated["tags"].clone(), updated["version"].clone()),
            (json!("Colour"), json!("Button colour"), json!(["ui"]), json!(2)));
        let stale = app.request(Method::PATCH, &path).header("if-match", "\"1\"").json(&json!({"name": "Late"})).send().await.unwrap();
        assert_eq!(error_of(stale, 412, "version_mismatch").await["details"]["current_version"], 2);

        for (body, field) in [
            (json!({"key": "other"}), "key"),
            (json!({"type": "number"}), "type"),
            (json!({"archived": true}), "archived"),
            (json!({"version": 9}), "version"),
            (json!({"variations": [{"key": "red", "value": 1}, {"key": "blue", "value": "blue"}]}), "variations[0].value"),
            // `blue` is the off variation everywhere: removing it would break the configurations.
            (json!({"variations": [{"key": "red", "value": "red"}, {"key": "green", "value": "green"}]}), "environments.production.off_variation"),
        ] {
            let e = error_of(app.patch(&path, body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].get(field).is_some(), "{body} → {e}");
        }
        error_of(app.patch(&path, json!({"colour": "x"})).await, 400, "invalid_request").await;
        // Same key and type may be repeated: a change that changes nothing (no new version).
        let same = json_ok(app.patch(&path, json!({"key": "colour", "type": "string"})).await).await;
        assert_eq!(same["version"], 2);
        // Adding a variation is fine; so is renaming one nobody uses.
        let more = json_ok(app.patch(&path, json!({"variations": [{"key": "red", "value": "red"}, {"key": "lime", "value": "lime"},
            {"key": "blue", "value": "blue"}, {"key": "pink", "value": "pink"}]})).await).await;
        assert_eq!(more["variations"].as_array().unwrap().len(), 4);
        error_of(app.patch("/api/v1/feature-flags/nope", json!({"name": "x"})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::PATCH, &path).json(&json!({"name": "x"})).send().await.unwrap(), 401, "unauthorized").await;

        app.restart().await;
        let again = json_ok(app.get(&path).await).await;
        assert_eq!((again["name"].clone(), again["temporary"].clone(), again["version"].clone()), (json!("Colour"), json!(true), json!(3)));
    }

    async fn prerequisites_block_delete_archive_and_variation_removal(app) {
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let base = create_flag(&app, &project, json!({"key": "base"})).await;
        let child = create_flag(&app, &project, json!({"key": "child"})).await;
        json_ok(app.patch(&config_path(&id(&child), &prod), json!({"prerequisites": [{"flag": "base", "variations": ["on"]}]})).await).await;
        let base_path = format!("/api/v1/feature-flags/{}", id(&base));

        let e = error_of(app.delete(&base_path).await, 409, "conflict").await;
        assert_eq!(e["details"]["referrers"], json!([{"flag": "child", "environment": "production"}]));
        let e = error_of(app.patch(&format!("{base_path}/archive"), json!({})).await, 409, "conflict").await;
        assert_eq!(e["details"]["referrers"], json!([{"flag": "child", "environment": "production"}]));
        let e = error_of(app.patch(&base_path, json!({"variations": [{"key": "yes", "value": true}, {"key": "off", "value": false}]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].get("environments.production.flags.child.prerequisites[0].variations[0]").is_some(), "{e}");
        assert!(e["details"]["fields"].get("environments.production.fallthrough.variation").is_some(), "{e}");

        // An archived referrer does not block archiving, but still blocks deleting.
        json_ok(app.patch(&format!("/api/v1/feature-flags/{}/archive", id(&child)), json!({})).await).await;
        json_ok(app.patch(&format!("{base_path}/archive"), json!({})).await).await;
        error_of(app.delete(&base_path).await, 409, "conflict").await;

        json_ok(app.patch(&config_path(&id(&child), &prod), json!({"prerequisites": []})).await).await;
        let stale = app.request(Method::DELETE, &base_path).header("if-match", "\"1\"").send().await.unwrap();
        error_of(stale, 412, "version_mismatch").await;
        assert_eq!(app.delete(&base_path).await.status(), 204);
        error_of(app.get(&base_path).await, 404, "not_found").await;
        error_of(app.get(&config_path(&id(&base), &prod)).await, 404, "not_found").await;
        error_of(app.delete(&base_path).await, 404, "not_found").await;
        app.restart().await;
        error_of(app.get(&base_path).await, 404, "not_found").await;
    }

    async fn archive_and_restore(app) {
        let project = app.default_project().await;
        let flag = create_flag(&app, &project, json!({"key": "old"})).await;
        let path = format!("/api/v1/feature-flags/{}", id(&flag));
        // No body at all is fine.
        let archived = json_ok(app.request(Method::PATCH, &format!("{path}/archive")).send().await.unwrap()).await;
        assert_eq!((archived["archived"].clone(), archived["version"].clone()), (json!(true), json!(2)));
        assert_eq!(keys(&app, &project, "").await, Vec::<String>::new());
        // Archiving twice changes nothing.
        assert_eq!(json_ok(app.patch(&format!("{path}/archive"), json!({})).await).await["version"], 2);
        let stale = app.request(Method::PATCH, &format!("{path}/restore")).header("if-match", "\"1\"").send().await.unwrap();
        error_of(stale, 412, "version_mismatch").await;
        error_of(app.patch(&format!("{path}/restore"), json!({"comment": 5})).await, 400, "invalid_request").await;
        error_of(app.patch(&format!("{path}/restore"), json!({"why": "x"})).await, 400, "invalid_request").await;
        app.restart().await;
        assert_eq!(keys(&app, &project, "archived=true").await, ["old"]);
        let restored = json_ok(app.patch(&format!("{path}/restore"), json!({"comment": "needed again"})).await).await;
        assert_eq!((restored["archived"].clone(), restored["version"].clone()), (json!(false), json!(3)));
        assert_eq!(keys(&app, &project, "").await, ["old"]);
        error_of(app.patch("/api/v1/feature-flags/nope/archive", json!({})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::PATCH, &format!("{path}/archive")).send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn the_kill_switch_disables_at_once(app) {
        let project = app.default_project().await;
        let (dev, prod) = (app.environment(&project, "development").await, app.environment(&project, "production").await);
        let flag = create_flag(&app, &project, json!({"key": "risky"})).await;
        let fid = id(&flag);
        for env in [&dev, &prod] {
            json_ok(app.patch(&format!("{}/toggle", config_path(&fid, env)), json!({"enabled": true})).await).await;
        }
        let path = format!("/api/v1/feature-flags/{fid}/kill-switch");
        let killed = json_ok(app.post(&path, json!({"reason": "errors spiking", "environment_id": prod})).await).await;
        assert_eq!(killed["changed"], 1);
        assert_eq!(killed["items"][0]["enabled"], false);
        let prod_config = json_ok(app.get(&config_path(&fid, &prod)).await).await;
        assert_eq!((prod_config["enabled"].clone(), prod_config["version"].clone()), (json!(false), json!(3)));
        assert_eq!(json_ok(app.get(&config_path(&fid, &dev)).await).await["enabled"], true);
        let revisions = json_ok(app.get(&format!("{}/revisions", config_path(&fid, &prod))).await).await;
        assert_eq!(revisions["items"][0]["comment"], "errors spiking");

        let all = json_ok(app.post(&path, json!({"reason": "incident 42"})).await).await;
        assert_eq!((all["changed"].clone(), all["items"].as_array().unwrap().len()), (json!(1), 2));
        app.restart().await;
        for env in [&dev, &prod] {
            assert_eq!(json_ok(app.get(&config_path(&fid, env)).await).await["enabled"], false);
        }

        error_of(app.post(&path, json!({})).await, 400, "invalid_request").await;
        for body in [json!({"reason": " "}), json!({"reason": "x".repeat(1001)}), json!({"reason": 3}), json!({"reason": "a\u{0}b"})] {
            let e = error_of(app.post(&path, body).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].get("reason").is_some(), "{e}");
        }
        error_of(app.post(&path, json!({"reason": "x", "environment_id": "nope"})).await, 400, "invalid_request").await;
        error_of(app.post("/api/v1/feature-flags/nope/kill-switch", json!({"reason": "x"})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::POST, &path).json(&json!({"reason": "x"})).send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn bulk_actions_are_all_or_nothing(app) {
        let project = app.default_project().await;
        let (dev, prod) = (app.environment(&project, "development").await, app.environment(&project, "production").await);
        let mut ids = Vec::new();
        for key in ["a", "b", "c"] {
            ids.push(id(&create_flag(&app, &project, json!({"key": key})).await));
        }
        let path = format!("/api/v1/projects/{project}/feature-flags/bulk");
        let done = json_ok(app.post(&path, json!({"action": "enable", "flag_ids": ids, "environment_id": prod, "comment": "launch"})).await).await;
        assert_eq!((done["updated"].clone(), done["items"].as_array().unwrap().len()), (json!(3), 3));
        assert_eq!(keys(&app, &project, &format!("environment_id={prod}&enabled=true")).await, ["a", "b", "c"]);

        // One unknown id: nothing changes, and the error names it.
        let e = error_of(app.post(&path, json!({"action": "disable", "flag_ids": [ids[0], ids[1], "ghost"]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].get("flag_ids[2]").is_some(), "{e}");
        assert_eq!(keys(&app, &project, &format!("environment_id={prod}&enabled=true")).await, ["a", "b", "c"]);

        // One item that cannot be archived (a prerequisite of an active flag outside the batch).
        let d = create_flag(&app, &project, json!({"key": "d"})).await;
        json_ok(app.patch(&config_path(&id(&d), &dev), json!({"prerequisites": [{"flag": "c", "variations": ["on"]}]})).await).await;
        let e = error_of(app.post(&path, json!({"action": "archive", "flag_ids": ids})).await, 409, "conflict").await;
        assert_eq!(e["details"]["referrers"], json!([{"flag": "d", "environment": "development"}]));
        assert_eq!(keys(&app, &project, "").await, ["a", "b", "c", "d"], "nothing archived");
        // Archived together with its referrer, it may go.
        let mut with_d = ids.clone();
        with_d.push(id(&d));
        assert_eq!(json_ok(app.post(&path, json!({"action": "archive", "flag_ids": with_d})).await).await["updated"], 4);
        assert_eq!(keys(&app, &project, "archived=true").await, ["a", "b", "c", "d"]);
        // Archived flags cannot be enabled.
        let e = error_of(app.post(&path, json!({"action": "enable", "flag_ids": [ids[1]], "environment_id": dev})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].get("flag_ids[0]").is_some(), "{e}");
        let restored = json_ok(app.post(&path, json!({"action": "restore", "flag_ids": [ids[0], ids[0]]})).await).await;
        assert_eq!((restored["updated"].clone(), restored["items"].as_array().unwrap().len()), (json!(1), 1));

        // Disable without an environment: everywhere.
        let done = json_ok(app.post(&path, json!({"action": "disable", "flag_ids": [ids[0]]})).await).await;
        assert_eq!((done["updated"].clone(), done["items"].as_array().unwrap().len()), (json!(1), 2));
        app.restart().await;
        assert_eq!(json_ok(app.get(&config_path(&ids[0], &prod)).await).await["enabled"], false);

        for (body, field) in [
            (json!({"action": "enable", "flag_ids": [ids[0]]}), "environment_id"),
            (json!({"action": "explode", "flag_ids": [ids[0]]}), "action"),
            (json!({"action": "disable", "flag_ids": []}), "flag_ids"),
            (json!({"action": "disable", "flag_ids": vec![ids[0].clone(); 501]}), "flag_ids"),
            (json!({"action": "disable", "flag_ids": [ids[0]], "environment_id": "nope"}), "environment_id"),
            (json!({"action": "archive", "flag_ids": [ids[0]], "environment_id": dev}), "environment_id"),
        ] {
            let e = error_of(app.post(&path, body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].get(field).is_some(), "{body} → {e}");
        }
        error_of(app.post("/api/v1/projects/nope/feature-flags/bulk", json!({"action": "disable", "flag_ids": ["x"]})).await, 404, "not_found").await;
        error_of(app.anonymous(Method::POST, &path).json(&json!({"action": "disable", "flag_ids": ["x"]})).send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn a_new_environment_gets_configurations_for_existing_flags(app) {
        let project = app.default_project().await;
        let flag = create_flag(&app, &project, json!({"key": "size", "type": "number",
            "variations": [{"key": "s", "value": 1}, {"key": "l", "value": 3}]})).await;
        let staging = json_status(app.post(&format!("/api/v1/projects/{project}/environments"), json!({"key": "staging"})).await, 201).await;
        let config = json_ok(app.get(&config_path(&id(&flag), &id(&staging))).await).await;
        assert_eq!((config["enabled"].clone(), config["off_variation"].clone(), config["fallthrough"].clone(), config["version"].clone()),
            (json!(false), json!("l"), json!({"variation": "s"}), json!(1)));
        let revisions = json_ok(app.get(&format!("{}/revisions", config_path(&id(&flag), &id(&staging)))).await).await;
        assert_eq!(revisions["total"], 1);
        let listed = json_ok(app.get(&format!("/api/v1/environments/{}/flag-configs", id(&staging))).await).await;
        assert_eq!((listed["total"].clone(), listed["items"][0]["flag_key"].clone()), (json!(1), json!("size")));
    }
}
