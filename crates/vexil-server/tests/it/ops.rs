//! Operations endpoints, request ids, body limits and authentication basics.

use reqwest::Method;
use serde_json::json;

use crate::{both_backends, error_of, json_ok};

both_backends! {
    async fn health_ready_and_metrics(app) {
        assert_eq!(json_ok(app.anonymous(Method::GET, "/health").send().await.unwrap()).await["status"], "ok");
        assert_eq!(json_ok(app.anonymous(Method::GET, "/ready").send().await.unwrap()).await["status"], "ready");
        app.get("/api/v1/organizations").await;
        let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"vexil_http_requests_total{method="GET",route="/api/v1/organizations",status="200"} 1"#), "{text}");
        assert!(text.contains("vexil_http_request_duration_seconds_bucket"), "{text}");
    }

    async fn management_routes_need_a_valid_token(app) {
        error_of(app.anonymous(Method::GET, "/api/v1/organizations").send().await.unwrap(), 401, "unauthorized").await;
        let wrong = app.anonymous(Method::GET, "/api/v1/projects").bearer_auth("vx_pat_wrong").send().await.unwrap();
        assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
        error_of(wrong, 401, "unauthorized").await;
    }

    async fn request_ids_are_echoed_or_generated(app) {
        let r = app.request(Method::GET, "/api/v1/organizations").header("x-request-id", "trace-123").send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-123");
        let r = app.get("/api/v1/organizations").await;
        let first = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(first.len(), 33, "{first}");
        let second = app.get("/api/v1/organizations").await.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(first, second, "request ids are unique");
    }

    async fn oversized_malformed_and_non_json_bodies_are_rejected(app) {
        let big = json!({"key": "big", "name": "x".repeat(1024 * 1024 + 10)});
        error_of(app.post("/api/v1/organizations", big).await, 413, "payload_too_large").await;
        let r = app.request(Method::POST, "/api/v1/organizations")
            .header("content-type", "application/json").body("{\"key\": ").send().await.unwrap();
        error_of(r, 400, "invalid_request").await;
        let r = app.request(Method::POST, "/api/v1/organizations").body("key=x").send().await.unwrap();
        error_of(r, 415, "unsupported_media_type").await;
        let err = error_of(app.post("/api/v1/organizations", json!({"key": 5})).await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["key"].as_str().unwrap().contains("invalid type"), "{err}");
    }
}

both_backends! {
    async fn openapi_document_and_swagger_ui_are_served_offline(app) {
        let doc = json_ok(app.anonymous(Method::GET, "/api-docs/openapi.json").send().await.unwrap()).await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        // Every route of the router, as (method, path template): keep in step with the
        // modules' `router()` functions.
        let routes = [
            ("get", "/health"), ("get", "/ready"), ("get", "/metrics"),
            ("post", "/api/v1/evaluate"), ("post", "/api/v1/evaluate/bulk"), ("get", "/api/v1/sdk/config"), ("get", "/api/v1/sdk/stream"), ("get", "/api/v1/sdk/ws"), ("post", "/api/v1/sdk/ws-token"), ("get", "/ofrep/v1/event-stream"),
            ("get", "/api/v1/organizations"), ("post", "/api/v1/organizations"),
            ("get", "/api/v1/organizations/{id}"), ("patch", "/api/v1/organizations/{id}"), ("delete", "/api/v1/organizations/{id}"),
            ("get", "/api/v1/projects"), ("post", "/api/v1/projects"),
            ("get", "/api/v1/projects/{id}"), ("patch", "/api/v1/projects/{id}"), ("delete", "/api/v1/projects/{id}"),
            ("get", "/api/v1/projects/{project_id}/environments"), ("post", "/api/v1/projects/{project_id}/environments"),
            ("get", "/api/v1/environments/{id}"), ("patch", "/api/v1/environments/{id}"), ("delete", "/api/v1/environments/{id}"),
            ("post", "/api/v1/projects/{project_id}/environments/{env_id}/copy"),
            ("get", "/api/v1/projects/{project_id}/feature-flags"), ("post", "/api/v1/projects/{project_id}/feature-flags"),
            ("post", "/api/v1/projects/{project_id}/feature-flags/bulk"),
            ("get", "/api/v1/feature-flags/{id}"), ("patch", "/api/v1/feature-flags/{id}"), ("delete", "/api/v1/feature-flags/{id}"),
            ("patch", "/api/v1/feature-flags/{id}/archive"), ("patch", "/api/v1/feature-flags/{id}/restore"),
            ("post", "/api/v1/feature-flags/{id}/kill-switch"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/config"),
            ("patch", "/api/v1/flags/{flag_id}/environments/{env_id}/config"),
            ("patch", "/api/v1/flags/{flag_id}/environments/{env_id}/config/toggle"),
            ("patch", "/api/v1/flags/{flag_id}/environments/{env_id}/toggle"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions/{version}/restore"),
            ("get", "/api/v1/environments/{env_id}/flag-configs"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes"),
            ("get", "/api/v1/projects/{project_id}/scheduled-changes"),
            ("post", "/api/v1/sdk/metrics"), ("post", "/api/v1/track"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/insights"),
            ("get", "/api/v1/environments/{env_id}/insights"),
            ("get", "/api/v1/scheduled-changes/{id}"), ("delete", "/api/v1/scheduled-changes/{id}"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests"),
            ("get", "/api/v1/projects/{project_id}/change-requests"),
            ("get", "/api/v1/change-requests/{id}"), ("delete", "/api/v1/change-requests/{id}"),
            ("post", "/api/v1/change-requests/{id}/approve"), ("post", "/api/v1/change-requests/{id}/reject"),
            ("post", "/api/v1/change-requests/{id}/apply"),
            ("get", "/api/v1/flags/{flag_id}/environments/{env_id}/release"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/release"),
            ("delete", "/api/v1/flags/{flag_id}/environments/{env_id}/release"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/release/advance"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/release/pause"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/release/resume"),
            ("post", "/api/v1/flags/{flag_id}/environments/{env_id}/release/rollback"),
            ("get", "/api/v1/projects/{project_id}/releases"),
            ("get", "/api/v1/projects/{project_id}/segments"), ("post", "/api/v1/projects/{project_id}/segments"),
            ("get", "/api/v1/segments/{id}"), ("patch", "/api/v1/segments/{id}"), ("delete", "/api/v1/segments/{id}"),
            ("get", "/api/v1/projects/{project_id}/api-keys"), ("post", "/api/v1/projects/{project_id}/api-keys"),
            ("delete", "/api/v1/api-keys/{id}"), ("patch", "/api/v1/api-keys/{id}/revoke"),
            ("get", "/api/v1/projects/{project_id}/webhooks"), ("post", "/api/v1/projects/{project_id}/webhooks"),
            ("get", "/api/v1/webhooks/{id}"), ("patch", "/api/v1/webhooks/{id}"), ("delete", "/api/v1/webhooks/{id}"),
            ("post", "/api/v1/webhooks/{id}/test"), ("get", "/api/v1/webhooks/{id}/deliveries"),
            ("get", "/api/v1/webhooks/{id}/deliveries/{delivery_id}"),
            ("post", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
            ("get", "/api/v1/projects/{project_id}/export"), ("post", "/api/v1/projects/{project_id}/import"),
            ("get", "/api/v1/projects/{project_id}/flag-templates"), ("post", "/api/v1/projects/{project_id}/flag-templates"),
            ("get", "/api/v1/flag-templates/{id}"), ("patch", "/api/v1/flag-templates/{id}"), ("delete", "/api/v1/flag-templates/{id}"),
            ("get", "/api/v1/audit-logs"), ("get", "/api/v1/audit-logs/verify"), ("get", "/api/v1/audit-logs/{id}"),
            ("get", "/v1/feature-flags/"), ("post", "/v1/feature-flags/"),
            ("get", "/v1/feature-flags"), ("post", "/v1/feature-flags"),
            ("get", "/v1/feature-flags/{name}"), ("put", "/v1/feature-flags/{name}"),
            ("post", "/ofrep/v1/evaluate/flags/{key}"), ("post", "/ofrep/v1/evaluate/flags"),
            ("post", "/api/v1/auth/login"), ("post", "/api/v1/auth/logout"), ("get", "/api/v1/auth/session"),
            ("get", "/api/v1/auth/oidc/login"), ("get", "/api/v1/auth/oidc/callback"),
            ("get", "/api/v1/users/me"), ("patch", "/api/v1/users/me"), ("put", "/api/v1/users/me/password"),
            ("get", "/api/v1/organizations/{id}/members"), ("post", "/api/v1/organizations/{id}/members"),
            ("patch", "/api/v1/organizations/{id}/members/{user_id}"), ("delete", "/api/v1/organizations/{id}/members/{user_id}"),
            ("get", "/api/v1/tokens"), ("post", "/api/v1/tokens"), ("get", "/api/v1/tokens/{id}"),
            ("delete", "/api/v1/tokens/{id}"), ("patch", "/api/v1/tokens/{id}/revoke"),
        ];
        // Every management route has an access policy (the layer refuses routes without).
        let public = ["/health", "/ready", "/metrics", "/api/v1/auth/login", "/api/v1/auth/oidc/login", "/api/v1/auth/oidc/callback"];
        for (method, path) in routes {
            let evaluation = path.starts_with("/ofrep/") || path.starts_with("/api/v1/evaluate") || path.starts_with("/api/v1/sdk/") || path == "/api/v1/track";
            if !evaluation && !public.contains(&path) {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                assert!(vexil_server::http::authz::policy(&m, path).is_some(), "{method} {path} has no access policy");
            }
        }
        for (method, path) in routes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{} {path} missing from the OpenAPI document", method.to_uppercase());
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} documents no response");
            assert!(op["tags"][0].is_string(), "{method} {path} has no tag");
        }
        // Nothing documented that the router does not serve.
        let documented: usize = doc["paths"].as_object().unwrap().values().map(|item| {
            ["get", "post", "put", "patch", "delete"].iter().filter(|m| item[**m].is_object()).count()
        }).sum();
        assert_eq!(documented, routes.len(), "the document and the route list differ");
        // Operation ids are unique, as OpenAPI requires.
        let mut ids: Vec<&str> = doc["paths"].as_object().unwrap().values()
            .flat_map(|item| item.as_object().unwrap().values().filter_map(|op| op["operationId"].as_str()))
            .collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "duplicate operation ids");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        let page = app.anonymous(Method::GET, "/docs/").send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        // The UI's script comes from the server itself, not a CDN.
        let js = app.anonymous(Method::GET, "/docs/swagger-ui-bundle.js").send().await.unwrap();
        assert_eq!(js.status(), 200);
        assert!(!html.contains("unpkg.com") && !html.contains("cdn."), "Swagger UI must not load from the internet");
    }
}

both_backends! {
    async fn control_characters_in_ids_are_not_found_not_errors(app) {
        for path in ["/api/v1/environments/a%00b", "/api/v1/feature-flags/x%0Ay", "/api/v1/segments/%7F"] {
            crate::error_of(app.get(path).await, 404, "not_found").await;
        }
    }
}
