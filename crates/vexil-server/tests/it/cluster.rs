//! Two `vexil serve` nodes on one PostgreSQL database stay consistent: a change committed
//! through node A reaches node B's snapshot and B's stream subscribers (LISTEN/NOTIFY),
//! also after B's listener connection was lost.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, json_ok, json_status};

/// Polls node `app`'s evaluation of `flag` until `done` holds; returns how long it took.
async fn until(app: &TestApp, key: &str, flag: &str, done: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let r = app
            .anonymous(Method::POST, "/api/v1/evaluate")
            .bearer_auth(key)
            .json(&json!({"flag_key": flag, "context": {"targetingKey": "u1"}}))
            .send()
            .await
            .unwrap();
        if done(&json_ok(r).await) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node B never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_reaches_the_other() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.sibling().await;
    let project = a.default_project().await;
    let env = a.environment(&project, "production").await;
    let key = a.api_key(&project, &env, "server").await;
    let flag = json_status(
        a.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "shared"}),
        )
        .await,
        201,
    )
    .await;
    let id = flag["id"].as_str().unwrap();

    // Created on A: B knows the flag (and the key) shortly after.
    let created = until(&b, &key, "shared", |r| r["value"] == false).await;
    // Changed on A: B serves the new value.
    json_ok(
        a.patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"enabled": true, "fallthrough": {"variation": "on"}}),
        )
        .await,
    )
    .await;
    let changed = until(&b, &key, "shared", |r| r["value"] == true).await;
    assert!(
        changed < Duration::from_secs(1),
        "propagation took {changed:?} (created: {created:?})"
    );

    // B's stream subscribers hear of A's changes.
    let resp = b
        .anonymous(Method::GET, "/api/v1/sdk/stream")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let mut body = resp;
    let mut seen = String::new();
    // Read the initial put, then change on A and wait for the patch.
    while !seen.contains("event: put") && !seen.contains("event:put") {
        seen.push_str(&String::from_utf8_lossy(
            &body.chunk().await.unwrap().unwrap(),
        ));
    }
    json_ok(
        a.patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"enabled": false}),
        )
        .await,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("event: patch") && !seen.contains("event:patch") {
        let chunk = tokio::time::timeout_at(deadline.into(), body.chunk())
            .await
            .expect("patch on node B's stream");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }

    // A lost listener connection loses no change.
    a.kill_listeners().await;
    json_ok(
        a.patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            json!({"enabled": true}),
        )
        .await,
    )
    .await;
    until(&b, &key, "shared", |r| r["value"] == true).await;
    drop(b);
}
