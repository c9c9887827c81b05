//! Flag templates over HTTP, on both backends: a template is checked like the flags it
//! makes (shape, and each environment's starting configuration against that environment);
//! a flag made from one takes its type, variations, tags and flags and starts with its
//! configuration in each environment it names, audited; an environment that requires
//! approval refuses the whole creation; templates change and go without touching the flags
//! made from them.

use serde_json::{Value, json};

use crate::{both_backends, error_of, json_ok, json_status};

fn release_toggle() -> Value {
    json!({"key": "release-toggle", "name": "Release toggle", "description": "Ship dark, then turn on",
        "tags": ["release"], "temporary": true,
        "environments": {
            "development": {"enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}},
            "production": {"enabled": false, "off_variation": "off", "fallthrough": {"variation": "off"},
                "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}}]}}})
}

both_backends! {
    async fn flags_are_made_from_templates(app) {
        let project = app.default_project().await;
        let path = format!("/api/v1/projects/{project}/flag-templates");
        let template = json_status(app.post(&path, release_toggle()).await, 201).await;
        assert_eq!(template["type"], "boolean");
        assert_eq!(template["variations"].as_array().unwrap().len(), 2);
        assert_eq!(template["environments"]["development"]["enabled"], true);
        let id = template["id"].as_str().unwrap().to_owned();

        // Checked like a flag, and against each environment.
        let mut bad = release_toggle();
        bad["environments"]["production"]["fallthrough"]["variation"] = json!("purple");
        let e = error_of(app.post(&path, bad).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].as_object().unwrap().keys().any(|k| k.starts_with("environments.production")), "{e}");
        let mut unknown = release_toggle();
        unknown["environments"]["staging"] = unknown["environments"]["development"].clone();
        let e = error_of(app.post(&path, unknown).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["environments.staging"].is_string(), "{e}");
        error_of(app.post(&path, json!({"key": "theme", "type": "string"})).await, 400, "invalid_request").await;
        error_of(app.post(&path, json!({"key": "bad key!"})).await, 400, "invalid_request").await;
        error_of(app.post(&path, release_toggle()).await, 409, "conflict").await;
        assert_eq!(json_ok(app.get(&path).await).await["total"], 1);

        // A flag from the template.
        let flags = format!("/api/v1/projects/{project}/feature-flags");
        let flag = json_status(app.post(&flags, json!({"template": "release-toggle", "key": "new-search"})).await, 201).await;
        assert_eq!(flag["tags"], json!(["release"]));
        assert_eq!(flag["temporary"], true);
        assert_eq!(flag["description"], "Ship dark, then turn on");
        let flag_id = flag["id"].as_str().unwrap();
        let dev = app.environment(&project, "development").await;
        let prod = app.environment(&project, "production").await;
        let config = |env: String| format!("/api/v1/flags/{flag_id}/environments/{env}/config");
        let d = json_ok(app.get(&config(dev.clone())).await).await;
        assert_eq!(d["enabled"], true);
        let p = json_ok(app.get(&config(prod.clone())).await).await;
        assert_eq!(p["enabled"], false);
        assert_eq!(p["rules"][0]["serve"]["variation"], "on");
        let audit = json_ok(app.get(&format!("/api/v1/audit-logs?resource_id={flag_id}")).await).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["flag_config.update", "flag_config.update", "flag.create"]);
        // What the request gives wins over the template; a type that differs is refused.
        let own = json_status(app.post(&flags, json!({"template": "release-toggle", "key": "own-tags", "tags": ["mine"]})).await, 201).await;
        assert_eq!(own["tags"], json!(["mine"]));
        let e = error_of(app.post(&flags, json!({"template": "nope", "key": "x"})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["template"].is_string(), "{e}");
        error_of(app.post(&flags, json!({"template": "release-toggle", "key": "y", "type": "string", "variations": [{"key": "a", "value": "a"}]})).await, 400, "invalid_request").await;

        // Where production requires approval, a template that configures it is refused,
        // and nothing is created.
        json_ok(app.patch(&format!("/api/v1/environments/{prod}"), json!({"requires_approval": true})).await).await;
        error_of(app.post(&flags, json!({"template": "release-toggle", "key": "held"})).await, 409, "approval_required").await;
        error_of(app.get("/v1/feature-flags/held").await, 404, "not_found").await;
        json_ok(app.patch(&format!("/api/v1/environments/{prod}"), json!({"requires_approval": false})).await).await;

        // Changed and deleted; flags made from it stay as they are.
        let changed = json_ok(app.patch(&format!("/api/v1/flag-templates/{id}"), json!({"tags": ["release", "search"], "comment": "tag search too"})).await).await;
        assert_eq!(changed["tags"], json!(["release", "search"]));
        assert_eq!(changed["version"], 2);
        error_of(app.patch(&format!("/api/v1/flag-templates/{id}"), json!({"key": "other"})).await, 400, "invalid_request").await;
        json_status(app.delete(&format!("/api/v1/flag-templates/{id}")).await, 204).await;
        assert_eq!(json_ok(app.get(&format!("/api/v1/feature-flags/{flag_id}")).await).await["tags"], json!(["release"]));
        let trail = json_ok(app.get("/api/v1/audit-logs?resource_type=flag_template").await).await;
        let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["flag_template.delete", "flag_template.update", "flag_template.create"]);
    }
}
