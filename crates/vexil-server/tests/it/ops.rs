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
        assert_eq!(r.headers()["x-request-id"].len(), 36);
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
        for path in ["/api/v1/organizations", "/api/v1/projects/{id}", "/api/v1/environments/{id}", "/health"] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
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
