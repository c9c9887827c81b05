//! The SSE stream: `put` on connect, `patch`/`delete` per change, `refetch` for client
//! keys, `Last-Event-ID` resumption, and streams that end when the server stops.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, both_backends, json_ok, json_status};

/// One event: (event name, id, data).
type SseEvent = (String, String, String);

async fn connect(app: &TestApp, key: &str, last_id: Option<&str>) -> Sse {
    let mut req = app
        .anonymous(Method::GET, "/api/v1/sdk/stream")
        .bearer_auth(key);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    Sse {
        resp,
        buffer: String::new(),
    }
}

/// A minimal SSE reader over a streaming response.
struct Sse {
    resp: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// The next event within `wait`, skipping heartbeat comments; `None` on timeout or end.
    async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) =
                    (String::from("message"), String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && id.is_empty() {
                    continue;
                } // a comment (heartbeat)
                return Some((event, id, data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// A project's production environment with one flag, `live`: (project, environment, flag).
pub(crate) async fn setup(app: &TestApp) -> (String, String, String) {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "live"}),
        )
        .await,
        201,
    )
    .await;
    (project, env, flag["id"].as_str().unwrap().to_owned())
}

const WAIT: Duration = Duration::from_secs(5);

both_backends! {
    async fn server_keys_get_put_then_patches_and_deletes(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut sse = connect(&app, &key, None).await;
        let (event, id, data) = sse.next(WAIT).await.expect("put on connect");
        assert_eq!(event, "put");
        let ruleset: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(ruleset["version"].to_string(), id);
        assert_eq!(ruleset["flags"]["live"]["enabled"], false);

        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"enabled": true})).await).await;
        let (event, id2, data) = sse.next(WAIT).await.expect("patch after a change");
        assert_eq!(event, "patch");
        assert!(id2.parse::<u64>().unwrap() > id.parse::<u64>().unwrap());
        let patch: Value = serde_json::from_str(&data).unwrap();
        assert_eq!((patch["kind"].clone(), patch["key"].clone(), patch["value"]["enabled"].clone()), (json!("flag"), json!("live"), json!(true)));

        json_ok(app.request(Method::PATCH, &format!("/api/v1/feature-flags/{flag}/archive")).send().await.unwrap()).await;
        let (event, _, data) = sse.next(WAIT).await.expect("delete after archiving");
        assert_eq!(event, "delete");
        assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["key"], "live");
    }

    async fn last_event_id_resumes_without_a_put(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut sse = connect(&app, &key, None).await;
        let (_, id, _) = sse.next(WAIT).await.unwrap();
        drop(sse);
        // Two changes while disconnected.
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"enabled": true})).await).await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"fallthrough": {"variation": "off"}})).await).await;
        let mut resumed = connect(&app, &key, Some(&id)).await;
        let (event, _, data) = resumed.next(WAIT).await.expect("missed change");
        assert_eq!(event, "patch", "{data}");
        let value: Value = serde_json::from_str(&data).unwrap();
        assert_eq!((value["value"]["enabled"].clone(), value["value"]["fallthrough"].clone()), (json!(true), json!({"variation": "off"})));
        // Up to date: nothing until the next change.
        let current: Value = json_ok(app.anonymous(Method::GET, "/api/v1/sdk/config").bearer_auth(&key).send().await.unwrap()).await;
        let mut idle = connect(&app, &key, Some(&current["version"].to_string())).await;
        assert!(idle.next(Duration::from_millis(500)).await.is_none());
        // Unknown history: a full put.
        let mut old = connect(&app, &key, Some("0")).await;
        assert_eq!(old.next(WAIT).await.unwrap().0, "put");
    }

    async fn client_keys_only_get_refetch(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "client").await;
        let mut sse = connect(&app, &key, None).await;
        assert!(sse.next(Duration::from_millis(300)).await.is_none(), "no rules on connect");
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"enabled": true})).await).await;
        let (event, id, data) = sse.next(WAIT).await.expect("refetch after a change");
        assert_eq!(event, "refetch");
        assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["version"].to_string(), id);
        assert!(!data.contains("rules"));
    }

    async fn stopping_the_server_ends_open_streams(app) {
        let (project, env, _) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut sse = connect(&app, &key, None).await;
        sse.next(WAIT).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), app.stop()).await.expect("graceful shutdown drains streams");
        assert!(sse.next(WAIT).await.is_none());
    }
}

both_backends! {
    async fn ofrep_event_streams_notify_providers_to_refetch(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "client").await;
        let bulk = app.anonymous(Method::POST, "/ofrep/v1/evaluate/flags").bearer_auth(&key)
            .json(&json!({"context": {"targetingKey": "u1"}})).send().await.unwrap();
        let bulk = json_ok(bulk).await;
        let stream = &bulk["eventStreams"][0];
        assert_eq!(stream["type"], "sse");
        let uri = stream["endpoint"]["requestUri"].as_str().unwrap().to_owned();
        assert!(uri.starts_with("/ofrep/v1/event-stream?token=") && !uri.contains(&key), "{uri}");

        // Like a browser's EventSource: no credentials but the URL.
        let resp = app.anonymous(Method::GET, &uri).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut sse = Sse { resp, buffer: String::new() };
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"enabled": true})).await).await;
        let (event, id, data) = sse.next(WAIT).await.expect("refetchEvaluation after a change");
        assert_eq!(event, "message");
        let data: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["type"], "refetchEvaluation");
        assert_eq!(data["etag"].as_str().unwrap(), id);

        let bad = app.anonymous(Method::GET, "/ofrep/v1/event-stream?token=nope").send().await.unwrap();
        assert_eq!(bad.status(), 401);
    }
}

/// The environment version a server key sees now.
async fn current_version(app: &TestApp, key: &str) -> u64 {
    let config: Value = json_ok(
        app.anonymous(Method::GET, "/api/v1/sdk/config")
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    config["version"].as_u64().unwrap()
}

/// The events that arrive before the stream goes quiet: (event, id, key).
async fn drain(sse: &mut Sse) -> Vec<(String, u64, String)> {
    let mut events = Vec::new();
    while let Some((event, id, data)) = sse.next(Duration::from_millis(700)).await {
        let key = serde_json::from_str::<Value>(&data).unwrap()["key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        events.push((event, id.parse().unwrap(), key));
    }
    events
}

both_backends! {
    async fn resumed_events_carry_the_version_of_their_own_change(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let start = current_version(&app, &key).await;
        // Three changes, each read back as the version it produced: `live`, then a new flag
        // `second`, then `live` again (its replayed event is the last, at the newest version).
        let config = format!("/api/v1/flags/{flag}/environments/{env}/config");
        json_ok(app.patch(&config, json!({"enabled": true})).await).await;
        let v1 = current_version(&app, &key).await;
        json_status(app.post(&format!("/api/v1/projects/{project}/feature-flags"), json!({"key": "second"})).await, 201).await;
        let v2 = current_version(&app, &key).await;
        json_ok(app.patch(&config, json!({"fallthrough": {"variation": "off"}})).await).await;
        let v3 = current_version(&app, &key).await;
        assert!(start < v1 && v1 < v2 && v2 < v3, "{start} {v1} {v2} {v3}");

        let patch = |id: u64, key: &str| ("patch".to_owned(), id, key.to_owned());
        let mut resumed = connect(&app, &key, Some(&start.to_string())).await;
        let replay = drain(&mut resumed).await;
        assert_eq!(replay, vec![patch(v2, "second"), patch(v3, "live")],
            "each replayed change with the version that made it, oldest first");

        // A client that dropped after the first replayed event resumes from its id and gets
        // the rest, and nothing twice.
        let mut rest = connect(&app, &key, Some(&v2.to_string())).await;
        assert_eq!(drain(&mut rest).await, vec![patch(v3, "live")]);
        let mut from_v1 = connect(&app, &key, Some(&v1.to_string())).await;
        assert_eq!(drain(&mut from_v1).await, vec![patch(v2, "second"), patch(v3, "live")]);
    }
}
