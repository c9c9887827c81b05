//! Flags as code over HTTP, on both backends: a project exported and imported into an
//! empty server exports the same document; importing it again changes nothing; a dry run
//! plans without changing anything; an import with one bad item changes nothing and names
//! the item; `prune` deletes what the document does not name; every change is audited with
//! the import's comment.

use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

async fn export(app: &TestApp, project: &str) -> Value {
    json_ok(app.get(&format!("/api/v1/projects/{project}/export")).await).await
}

async fn import(app: &TestApp, project: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/api/v1/projects/{project}/import"), body)
        .await
}

/// A project worth exporting: a segment, a boolean flag on in production for the segment
/// and 25 % of everyone, a string flag, and an archived flag.
async fn populate(app: &TestApp) -> String {
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/segments"),
            json!({"key": "staff", "name": "Staff", "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]}]}),
        )
        .await,
        201,
    )
    .await;
    let checkout = app.create_flag(&project, "new-checkout").await;
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{checkout}/environments/{prod}/config"),
            json!({"enabled": true,
                   "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["staff"]}], "serve": {"variation": "on"}}],
                   "fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}}),
        )
        .await,
    )
    .await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "theme", "type": "string", "tags": ["ui"],
                   "variations": [{"key": "light", "value": "light"}, {"key": "dark", "value": "dark"}]}),
        )
        .await,
        201,
    )
    .await;
    // A segment that names another one listed after it, and two archived flags, one the
    // other's prerequisite: the import must order them.
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/segments"),
            json!({"key": "beta", "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["staff"]}]}]}),
        )
        .await,
        201,
    )
    .await;
    let old = app.create_flag(&project, "old-thing").await;
    let older = app.create_flag(&project, "older-thing").await;
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{old}/environments/{prod}/config"),
            json!({"prerequisites": [{"flag": "older-thing", "variations": ["on"]}]}),
        )
        .await,
    )
    .await;
    for id in [&old, &older] {
        json_ok(
            app.request(
                reqwest::Method::PATCH,
                &format!("/api/v1/feature-flags/{id}/archive"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
    }
    project
}

both_backends! {
    async fn export_import_round_trips_and_applying_twice_changes_nothing(app) {
        let project = populate(&app).await;
        let doc = export(&app, &project).await;
        let keys: Vec<&str> = doc["flags"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
                assert_eq!(keys, ["new-checkout", "old-thing", "older-thing", "theme"]);
        assert_eq!(doc["segments"][0]["key"], "beta");
        assert_eq!(doc["segments"][1]["key"], "staff");
        let prod = &doc["flags"][0]["environments"]["production"];
        assert_eq!(prod["enabled"], true);
        assert_eq!(prod["rules"][0]["clauses"][0]["values"], json!(["staff"]));
        assert_eq!(doc["flags"][1]["archived"], true);
        // One environment only.
        let only = json_ok(app.get(&format!("/api/v1/projects/{project}/export?environment=production")).await).await;
        assert_eq!(only["flags"][0]["environments"].as_object().unwrap().keys().collect::<Vec<_>>(), ["production"]);
        error_of(app.get(&format!("/api/v1/projects/{project}/export?environment=nope")).await, 400, "invalid_request").await;

        // Applied to an empty server, it exports the same document.
        let Some(empty) = TestApp::spawn(app.backend).await else { return };
        let target = empty.default_project().await;
        let done = json_ok(import(&empty, &target, json!({"document": doc, "comment": "vexil apply -f flags.yaml"})).await).await;
        assert_eq!(done["applied"], true);
        let ops: Vec<String> = done["changes"].as_array().unwrap().iter()
            .map(|c| format!("{} {} {}{}", c["op"].as_str().unwrap(), c["kind"].as_str().unwrap(), c["key"].as_str().unwrap(),
                c["environment"].as_str().map(|e| format!(" in {e}")).unwrap_or_default()))
            .collect();
        assert!(ops.contains(&"create segment staff".to_owned()), "{ops:?}");
        assert!(ops.contains(&"create flag new-checkout".to_owned()), "{ops:?}");
        assert!(ops.contains(&"update config new-checkout in production".to_owned()), "{ops:?}");
                assert!(ops.contains(&"update flag old-thing".to_owned()), "archived: {ops:?}");
        assert!(ops.contains(&"update flag older-thing".to_owned()), "archived: {ops:?}");
        assert_eq!(export(&empty, &target).await, doc, "the round trip gives the same document");
        // The changes are audited with the import's comment.
        let audit = json_ok(empty.get("/api/v1/audit-logs?action=flag_config.update").await).await;
        assert_eq!(audit["items"][0]["comment"], "vexil apply -f flags.yaml");

        // Applying it again changes nothing.
        let again = json_ok(import(&empty, &target, json!({"document": doc})).await).await;
        assert_eq!(again, json!({"applied": false, "changes": []}));

        // OFREP on the copy serves what the original serves.
        let target_prod = empty.environment(&target, "production").await;
        let key = empty.api_key(&target, &target_prod, "server").await;
        let r = empty.anonymous(reqwest::Method::POST, "/ofrep/v1/evaluate/flags/new-checkout")
            .bearer_auth(&key).json(&json!({"context": {"targetingKey": "u1", "email": "ann@acme.com"}})).send().await.unwrap();
        assert_eq!(json_ok(r).await["value"], true);
    }

    async fn dry_runs_and_failed_imports_change_nothing_and_prune_deletes(app) {
        let project = populate(&app).await;
        let before = export(&app, &project).await;
        let mut doc = before.clone();
        doc["flags"][3]["environments"]["production"]["enabled"] = json!(true);
        doc["flags"][0]["tags"] = json!(["checkout"]);

        let plan = json_ok(import(&app, &project, json!({"document": doc, "dry_run": true})).await).await;
        assert_eq!(plan["applied"], false);
        assert_eq!(plan["changes"].as_array().unwrap().len(), 2, "{plan}");
        assert_eq!(plan["changes"][1]["before"]["enabled"], false);
        assert_eq!(plan["changes"][1]["after"]["enabled"], true);
        assert_eq!(export(&app, &project).await, before, "a dry run changes nothing");

        // One bad item: nothing at all changes, and the error names it.
        let mut bad = doc.clone();
        bad["flags"][3]["environments"]["production"]["off_variation"] = json!("purple");
        let e = error_of(import(&app, &project, json!({"document": bad})).await, 400, "invalid_request").await;
        let fields = e["details"]["fields"].as_object().unwrap();
        assert!(fields.keys().any(|k| k.starts_with("document.flags[3].environments.production")), "{e}");
        assert_eq!(export(&app, &project).await, before, "a failed import changes nothing");
        let mut twice = doc.clone();
        twice["flags"][1] = twice["flags"][0].clone();
        let e = error_of(import(&app, &project, json!({"document": twice})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["document.flags[1].key"].is_string(), "{e}");
        let mut retyped = doc.clone();
        retyped["flags"][0]["type"] = json!("string");
        let e = error_of(import(&app, &project, json!({"document": retyped})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["document.flags[0].type"].is_string(), "{e}");
        let mut unknown_env = doc.clone();
        unknown_env["flags"][0]["environments"]["staging"] = unknown_env["flags"][0]["environments"]["production"].clone();
        error_of(import(&app, &project, json!({"document": unknown_env})).await, 400, "invalid_request").await;
        assert_eq!(export(&app, &project).await, before);

        // Applied: the two changes.
        let done = json_ok(import(&app, &project, json!({"document": doc})).await).await;
        assert_eq!(done["changes"].as_array().unwrap().len(), 2);
        assert_eq!(export(&app, &project).await, doc);

        // An environment that requires approval does not stop an import that leaves it as
        // it is; a change there is refused (the whole import).
        let staging = app.environment(&project, "development").await;
        json_ok(app.patch(&format!("/api/v1/environments/{staging}"), json!({"requires_approval": true})).await).await;
        let same = json_ok(import(&app, &project, json!({"document": doc})).await).await;
        assert_eq!(same["changes"], json!([]));
        let mut held = doc.clone();
        held["flags"][0]["environments"]["development"]["enabled"] = json!(true);
        error_of(import(&app, &project, json!({"document": held})).await, 409, "approval_required").await;
        json_ok(app.patch(&format!("/api/v1/environments/{staging}"), json!({"requires_approval": false})).await).await;

                // Restored and turned on in one document.
        let mut revived = doc.clone();
        revived["flags"][2]["archived"] = json!(false);
        revived["flags"][2]["environments"]["production"]["enabled"] = json!(true);
        let done = json_ok(import(&app, &project, json!({"document": revived, "dry_run": true})).await).await;
        assert_eq!(done["changes"].as_array().unwrap().len(), 2, "{done}");

        // Prune: flags and segments the document does not name are deleted (a flag and its
        // prerequisite together); one still used is refused, all or nothing.
        let mut fewer = doc.clone();
        fewer["flags"].as_array_mut().unwrap().drain(1..3);
        let done = json_ok(import(&app, &project, json!({"document": fewer, "prune": true})).await).await;
        let deleted: Vec<&str> = done["changes"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(deleted, ["old-thing", "older-thing"], "referrer first");
        assert_eq!(export(&app, &project).await, fewer);
                let mut no_segments = fewer.clone();
        no_segments["segments"] = json!([]);
        // beta names staff: pruning both works; pruning staff alone is refused.
        let mut no_staff = fewer.clone();
        no_staff["segments"].as_array_mut().unwrap().remove(1);
        error_of(import(&app, &project, json!({"document": no_staff, "prune": true})).await, 409, "conflict").await;
        error_of(import(&app, &project, json!({"document": no_segments, "prune": true})).await, 409, "conflict").await;
        assert_eq!(export(&app, &project).await, fewer);
    }
}
