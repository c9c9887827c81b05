//! Organizations, projects and environments: CRUD, validation, conflicts, preconditions,
//! persistence across restarts, and the audit entries they leave.

use serde_json::json;

use crate::{both_backends, error_of, json_ok, json_status};

both_backends! {
    async fn first_start_creates_the_default_layout(app) {
        let orgs = json_ok(app.get("/api/v1/organizations").await).await;
        assert_eq!(orgs["total"], 1);
        assert_eq!(orgs["items"][0]["key"], "default");
        let project = app.default_project().await;
        let envs = json_ok(app.get(&format!("/api/v1/projects/{project}/environments")).await).await;
        let keys: Vec<_> = envs["items"].as_array().unwrap().iter().map(|e| (e["key"].clone(), e["is_production"].clone())).collect();
        assert_eq!(keys, vec![(json!("development"), json!(false)), (json!("production"), json!(true))]);
        // Restarting does not bootstrap twice.
        app.restart().await;
        assert_eq!(json_ok(app.get("/api/v1/organizations").await).await["total"], 1);
    }

    async fn organization_lifecycle(app) {
        let r = app.post("/api/v1/organizations", json!({"key": "acme", "name": "Acme Inc", "comment": "new customer"})).await;
        assert_eq!(r.headers()["etag"], "\"1\"");
        let org = json_status(r, 201).await;
        let id = org["id"].as_str().unwrap();
        assert_eq!(org["name"], "Acme Inc");

        error_of(app.post("/api/v1/organizations", json!({"key": "acme"})).await, 409, "conflict").await;
        error_of(app.post("/api/v1/organizations", json!({"key": "-bad"})).await, 400, "invalid_request").await;
        error_of(app.get("/api/v1/organizations/nope").await, 404, "not_found").await;

        let updated = json_ok(app.request(reqwest::Method::PATCH, &format!("/api/v1/organizations/{id}"))
            .header("if-match", "\"1\"").json(&json!({"name": "Acme"})).send().await.unwrap()).await;
        assert_eq!((updated["name"].clone(), updated["version"].clone()), (json!("Acme"), json!(2)));
        let stale = app.request(reqwest::Method::PATCH, &format!("/api/v1/organizations/{id}"))
            .header("if-match", "\"1\"").json(&json!({"name": "Late"})).send().await.unwrap();
        assert_eq!(error_of(stale, 412, "version_mismatch").await["details"]["current_version"], 2);
        error_of(app.patch(&format!("/api/v1/organizations/{id}"), json!({"key": "other"})).await, 400, "invalid_request").await;
        error_of(app.patch(&format!("/api/v1/organizations/{id}"), json!({"colour": "red"})).await, 400, "invalid_request").await;

        app.restart().await;
        assert_eq!(json_ok(app.get(&format!("/api/v1/organizations/{id}")).await).await["name"], "Acme");

        let project = json_status(app.post("/api/v1/projects", json!({"organization_id": id, "key": "web"})).await, 201).await;
        let blocked = error_of(app.delete(&format!("/api/v1/organizations/{id}")).await, 409, "conflict").await;
        assert_eq!(blocked["details"]["projects"], 1);
        assert_eq!(app.delete(&format!("/api/v1/projects/{}", project["id"].as_str().unwrap())).await.status(), 204);
        assert_eq!(app.delete(&format!("/api/v1/organizations/{id}")).await.status(), 204);
        error_of(app.get(&format!("/api/v1/organizations/{id}")).await, 404, "not_found").await;
    }

    async fn projects_and_environments(app) {
        let org = json_ok(app.get("/api/v1/organizations").await).await["items"][0]["id"].as_str().unwrap().to_owned();
        let p = json_status(app.post("/api/v1/projects", json!({"organization_id": org, "key": "mobile", "name": "Mobile app"})).await, 201).await;
        let pid = p["id"].as_str().unwrap();
        error_of(app.post("/api/v1/projects", json!({"organization_id": org, "key": "mobile"})).await, 409, "conflict").await;
        error_of(app.post("/api/v1/projects", json!({"organization_id": "ghost", "key": "x"})).await, 400, "invalid_request").await;
        let listed = json_ok(app.get(&format!("/api/v1/projects?organization_id={org}&limit=1")).await).await;
        assert_eq!((listed["total"].clone(), listed["limit"].clone(), listed["items"].as_array().unwrap().len()), (json!(2), json!(1), 1));
        error_of(app.get("/api/v1/projects?limit=501").await, 400, "invalid_request").await;

        // New projects come with development and production.
        let envs = json_ok(app.get(&format!("/api/v1/projects/{pid}/environments")).await).await;
        assert_eq!(envs["total"], 2);
        let staging = json_status(app.post(&format!("/api/v1/projects/{pid}/environments"),
            json!({"key": "staging", "name": "Staging"})).await, 201).await;
        assert_eq!((staging["is_production"].clone(), staging["protected"].clone()), (json!(false), json!(false)));
        let sid = staging["id"].as_str().unwrap();
        error_of(app.post(&format!("/api/v1/projects/{pid}/environments"), json!({"key": "staging"})).await, 409, "conflict").await;
        let patched = json_ok(app.patch(&format!("/api/v1/environments/{sid}"), json!({"protected": true, "comment": "lock it"})).await).await;
        assert_eq!(patched["protected"], true);
        assert_eq!(app.delete(&format!("/api/v1/environments/{sid}")).await.status(), 204);
        error_of(app.get(&format!("/api/v1/environments/{sid}")).await, 404, "not_found").await;
        error_of(app.get("/api/v1/projects/ghost/environments").await, 404, "not_found").await;
    }
}
