//! What browsers and busy clients meet: CORS on the evaluation plane (not on management),
//! and per-key rate limits answered with 429 and `Retry-After`.

use reqwest::Method;
use serde_json::json;

use crate::{Backend, TestApp, both_backends, error_of, json_status};

async fn client_key(app: &TestApp) -> String {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "banner", "client_side": true}),
        )
        .await,
        201,
    )
    .await;
    app.api_key(&project, &env, "client").await
}

both_backends! {
    async fn the_evaluation_plane_allows_cross_origin_calls(app) {
        let key = client_key(&app).await;
        let preflight = app.anonymous(Method::OPTIONS, "/ofrep/v1/evaluate/flags/banner")
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send().await.unwrap();
        assert!(preflight.status().is_success(), "{}", preflight.status());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
        let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");

        let r = app.anonymous(Method::POST, "/ofrep/v1/evaluate/flags").bearer_auth(&key)
            .header("origin", "https://shop.example").json(&json!({"context": {"targetingKey": "u1"}})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let exposed = r.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(exposed.contains("etag"), "{exposed}");

        // The management plane is not offered to other origins.
        let r = app.request(Method::GET, "/api/v1/projects").header("origin", "https://evil.example").send().await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
}

async fn limited(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.key_rate_limit = 5).await else {
        return;
    };
    let key = client_key(&app).await;
    let evaluate = || {
        app.anonymous(Method::POST, "/api/v1/evaluate")
            .bearer_auth(&key)
            .json(&json!({"flag_key": "banner", "context": {}}))
            .send()
    };
    // A burst of twice the rate passes, then the key is refused until it refills.
    for _ in 0..10 {
        assert_eq!(evaluate().await.unwrap().status(), 200);
    }
    let refused = evaluate().await.unwrap();
    assert!(
        refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    error_of(refused, 429, "rate_limited").await;
    let ofrep = app
        .anonymous(Method::POST, "/ofrep/v1/evaluate/flags/banner")
        .bearer_auth(&key)
        .json(&json!({"context": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ofrep.status(), 429);
    assert!(ofrep.headers().contains_key("retry-after"));
    // Another key has its own budget.
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let other = app.api_key(&project, &env, "client").await;
    let r = app
        .anonymous(Method::POST, "/api/v1/evaluate")
        .bearer_auth(&other)
        .json(&json!({"flag_key": "banner", "context": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Writes (which reload the key ring) do not reset a key's budget.
    assert_eq!(evaluate().await.unwrap().status(), 429);
    // After a second the bucket has refilled.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(evaluate().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_rate_limited_sqlite() {
    limited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_rate_limited_postgres() {
    limited(Backend::Postgres).await;
}
