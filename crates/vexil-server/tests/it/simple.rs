//! The Simple API: boolean flags by name in one environment (`production` of project
//! `default` for a management token, unless the query names others).

use reqwest::Method;
use serde_json::json;

use crate::flags::{config_path, create_flag};
use crate::{both_backends, error_of, json_ok, json_status};

both_backends! {
    async fn simple_flags_are_on_or_off(app) {
        let created = json_status(app.post("/v1/feature-flags/", json!({"name": "new-checkout", "description": "One-page checkout"})).await, 201).await;
        assert_eq!((created["name"].clone(), created["enabled"].clone(), created["description"].clone()),
            (json!("new-checkout"), json!(false), json!("One-page checkout")));
        let on = json_status(app.post("/v1/feature-flags/", json!({"name": "dark-mode", "enabled": true})).await, 201).await;
        assert_eq!(on["enabled"], true);
        error_of(app.post("/v1/feature-flags/", json!({"name": "dark-mode"})).await, 409, "conflict").await;
        let e = error_of(app.post("/v1/feature-flags/", json!({"name": "-bad"})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"].get("name").is_some(), "{e}");
        error_of(app.post("/v1/feature-flags/", json!({"name": "x", "colour": 1})).await, 400, "invalid_request").await;

        let list = json_ok(app.get("/v1/feature-flags/").await).await;
        assert_eq!(list["environment"], "production");
        assert_eq!(list["flags"], json!({"dark-mode": true, "new-checkout": false}));
        assert!(list["updated_at"].as_str().unwrap() >= on["updated_at"].as_str().unwrap());
        // Other environments are untouched, and can be chosen.
        let dev = json_ok(app.get("/v1/feature-flags/?environment=development").await).await;
        assert_eq!((dev["environment"].clone(), dev["flags"]["dark-mode"].clone()), (json!("development"), json!(false)));

        let updated = json_ok(app.put("/v1/feature-flags/new-checkout", json!({"enabled": true, "description": "1-page checkout"})).await).await;
        assert_eq!((updated["enabled"].clone(), updated["description"].clone()), (json!(true), json!("1-page checkout")));
        let off = json_ok(app.put("/v1/feature-flags/dark-mode?environment=production", json!({"enabled": false})).await).await;
        assert_eq!(off["enabled"], false);

        // The management API sees the same flags.
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let flags = json_ok(app.get(&format!("/api/v1/projects/{project}/feature-flags?q=new-checkout")).await).await;
        let id = flags["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(json_ok(app.get(&config_path(&id, &prod)).await).await["enabled"], true);
        // Non-boolean flags are not part of the Simple API.
        create_flag(&app, &project, json!({"key": "colour", "type": "string", "variations": [{"key": "red", "value": "red"}]})).await;
        error_of(app.get("/v1/feature-flags/colour").await, 404, "not_found").await;

        app.restart().await;
        let got = json_ok(app.get("/v1/feature-flags/new-checkout").await).await;
        assert_eq!((got["enabled"].clone(), got["description"].clone()), (json!(true), json!("1-page checkout")));
        assert_eq!(json_ok(app.get("/v1/feature-flags").await).await["flags"], json!({"dark-mode": false, "new-checkout": true}));

        error_of(app.get("/v1/feature-flags/nope").await, 404, "not_found").await;
        error_of(app.put("/v1/feature-flags/nope", json!({"enabled": true})).await, 404, "not_found").await;
        error_of(app.put("/v1/feature-flags/dark-mode", json!({"enabled": "yes"})).await, 400, "invalid_request").await;
        error_of(app.get("/v1/feature-flags/?project=nope").await, 404, "not_found").await;
        error_of(app.get("/v1/feature-flags/?environment=nope").await, 404, "not_found").await;
        error_of(app.anonymous(Method::GET, "/v1/feature-flags/").send().await.unwrap(), 401, "unauthorized").await;
    }
}
