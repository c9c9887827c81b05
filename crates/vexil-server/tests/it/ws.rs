//! The WebSocket stream through an independent client (tokio-tungstenite): the SSE stream's
//! events as JSON text messages, `?last_event_id=` resumption, browser tokens, pings, and
//! a clean close when the server stops.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::stream::setup;
use crate::{TestApp, both_backends, json_ok, json_status};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

/// `ws://…/api/v1/sdk/ws` with `query`, and the key as a header when given.
async fn connect(app: &TestApp, key: Option<&str>, query: &str) -> Result<Socket, WsError> {
    let url = app
        .url(&format!("/api/v1/sdk/ws{query}"))
        .replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next event message `(event, id, data)` within `wait`, answering nothing (the client
/// library answers pings itself); `None` on timeout or close.
async fn next_event(socket: &mut Socket, wait: Duration) -> Option<(String, u64, Value)> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).expect("each message is JSON");
                return Some((
                    event["event"].as_str().unwrap().to_owned(),
                    event["id"].as_u64().unwrap(),
                    event["data"].clone(),
                ));
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn enable(app: &TestApp, flag: &str, env: &str, enabled: bool) {
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{flag}/environments/{env}/config"),
            json!({"enabled": enabled}),
        )
        .await,
    )
    .await;
}

both_backends! {
    async fn a_server_key_gets_put_then_patches_and_deletes_as_json_messages(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut socket = connect(&app, Some(&key), "").await.expect("handshake");
        let (event, id, ruleset) = next_event(&mut socket, WAIT).await.expect("put on connect");
        assert_eq!(event, "put");
        assert_eq!(ruleset["version"].as_u64(), Some(id));
        assert_eq!(ruleset["flags"]["live"]["enabled"], false);

        enable(&app, &flag, &env, true).await;
        let (event, id2, patch) = next_event(&mut socket, WAIT).await.expect("patch after a change");
        assert_eq!(event, "patch");
        assert!(id2 > id);
        assert_eq!((patch["kind"].clone(), patch["key"].clone(), patch["value"]["enabled"].clone()), (json!("flag"), json!("live"), json!(true)));

        json_ok(app.request(Method::PATCH, &format!("/api/v1/feature-flags/{flag}/archive")).send().await.unwrap()).await;
        let (event, _, delete) = next_event(&mut socket, WAIT).await.expect("delete after archiving");
        assert_eq!(event, "delete");
        assert_eq!(delete["key"], "live");

        // A large ruleset (well over the part copied per message) arrives whole.
        for i in 0..40 {
            json_status(app.post(&format!("/api/v1/projects/{project}/feature-flags"),
                json!({"key": format!("wide-{i:02}"), "type": "string", "variations": [
                    {"key": "a", "value": "a".repeat(400)}, {"key": "b", "value": "b".repeat(400)}]})).await, 201).await;
        }
        let mut fresh = connect(&app, Some(&key), "").await.unwrap();
        let (event, _, ruleset) = next_event(&mut fresh, WAIT).await.unwrap();
        assert_eq!(event, "put");
        assert_eq!(ruleset["flags"].as_object().unwrap().len(), 40, "archived flags are left out");
        assert!(ruleset.to_string().len() > 16 * 1024);
        socket.close(None).await.unwrap();
    }

    async fn last_event_id_resumes_without_a_put(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut socket = connect(&app, Some(&key), "").await.unwrap();
        let (_, id, _) = next_event(&mut socket, WAIT).await.unwrap();
        drop(socket);
        // Two changes while disconnected: one patch with the latest definition.
        enable(&app, &flag, &env, true).await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{env}/config"), json!({"fallthrough": {"variation": "off"}})).await).await;
        let mut resumed = connect(&app, Some(&key), &format!("?last_event_id={id}")).await.unwrap();
        let (event, latest, patch) = next_event(&mut resumed, WAIT).await.expect("the missed change");
        assert_eq!(event, "patch", "{patch}");
        assert_eq!((patch["value"]["enabled"].clone(), patch["value"]["fallthrough"].clone()), (json!(true), json!({"variation": "off"})));
        // Up to date: nothing until the next change, which then arrives.
        let mut idle = connect(&app, Some(&key), &format!("?last_event_id={latest}")).await.unwrap();
        assert!(next_event(&mut idle, Duration::from_millis(500)).await.is_none());
        enable(&app, &flag, &env, false).await;
        assert_eq!(next_event(&mut idle, WAIT).await.unwrap().0, "patch");
        // Unknown history: a full put. The Last-Event-ID header works as well.
        let mut old = connect(&app, Some(&key), "?last_event_id=0").await.unwrap();
        assert_eq!(next_event(&mut old, WAIT).await.unwrap().0, "put");
        // Not a version: refused before the upgrade.
        let bad = app.anonymous(Method::GET, "/api/v1/sdk/ws?last_event_id=soon").bearer_auth(&key).send().await.unwrap();
        let body = json_status(bad, 400).await;
        assert!(body["error"]["details"]["fields"]["last_event_id"].is_string(), "{body}");
    }

    async fn a_browser_token_opens_a_client_keys_refetch_stream(app) {
        let (project, env, flag) = setup(&app).await;
        let key = app.api_key(&project, &env, "client").await;
        let token = json_ok(app.anonymous(Method::POST, "/api/v1/sdk/ws-token").bearer_auth(&key).send().await.unwrap()).await;
        let url = token["url"].as_str().unwrap();
        assert!(url.starts_with("/api/v1/sdk/ws?token=vxst.") && !url.contains(&key), "{token}");
        assert!(token["expires_at"].as_str().unwrap().ends_with('Z'));

        // Like a browser: no header, only the URL.
        let mut socket = connect(&app, None, url.trim_start_matches("/api/v1/sdk/ws")).await.expect("token accepted");
        assert!(next_event(&mut socket, Duration::from_millis(300)).await.is_none(), "no rules on connect");
        enable(&app, &flag, &env, true).await;
        let (event, id, data) = next_event(&mut socket, WAIT).await.expect("refetch after a change");
        assert_eq!(event, "refetch");
        assert_eq!(data, json!({"version": id}));

        // A token that is forged, altered or for no key, or no credentials at all: 401.
        let forged = url.trim_start_matches("/api/v1/sdk/ws").replacen("vxst.", "vxst.0", 1);
        for query in [forged.as_str(), "?token=vxst.x.99999999999999.00", ""] {
            match connect(&app, None, query).await {
                Err(WsError::Http(response)) => assert_eq!(response.status(), 401, "{query}"),
                other => panic!("{query}: {:?}", other.map(|_| "connected")),
            }
        }
        // Revoking the key ends what its token opens from then on.
        let keys = json_ok(app.get(&format!("/api/v1/projects/{project}/api-keys")).await).await;
        let listed = keys.get("items").unwrap_or(&keys).as_array().unwrap();
        let id = listed.iter().find(|k| k["type"] == "client").unwrap()["id"].as_str().unwrap().to_owned();
        json_ok(app.patch(&format!("/api/v1/api-keys/{id}/revoke"), json!({})).await).await;
        match connect(&app, None, url.trim_start_matches("/api/v1/sdk/ws")).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("revoked: {:?}", other.map(|_| "connected")),
        }
    }

    async fn pings_are_answered_and_plain_requests_refused(app) {
        let (project, env, _) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut socket = connect(&app, Some(&key), "").await.unwrap();
        next_event(&mut socket, WAIT).await.unwrap();
        socket.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
        // Client text messages are ignored; the pong comes back with the ping's payload.
        socket.send(Message::Text("hello".into())).await.unwrap();
        let pong = tokio::time::timeout(WAIT, async {
            loop {
                match socket.next().await.unwrap().unwrap() {
                    Message::Pong(payload) => return payload,
                    other => assert!(!matches!(other, Message::Text(_)), "{other:?}"),
                }
            }
        }).await.expect("a pong");
        assert_eq!(&pong[..], b"are you there");

        // The same URL without the WebSocket handshake: a clear 400.
        let plain = app.anonymous(Method::GET, "/api/v1/sdk/ws").bearer_auth(&key).send().await.unwrap();
        let body = json_status(plain, 400).await;
        assert!(body["error"]["message"].as_str().unwrap().contains("not a WebSocket handshake"), "{body}");
        let anonymous = app.anonymous(Method::GET, "/api/v1/sdk/ws").send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
    }

    async fn stopping_the_server_closes_sockets_with_going_away(app) {
        let (project, env, _) = setup(&app).await;
        let key = app.api_key(&project, &env, "server").await;
        let mut socket = connect(&app, Some(&key), "").await.unwrap();
        next_event(&mut socket, WAIT).await.unwrap();
        let mut app = app;
        let reader = tokio::spawn(async move {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                    Some(Ok(_)) => {}
                    other => panic!("ended without a close frame: {other:?}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), app.stop()).await.expect("shutdown does not wait for sockets forever");
        let code = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert_eq!(code, Some(CloseCode::Away));
    }
}

/// Chromium's own WebSocket, as a web page uses it: a token fetched with a client key, the
/// socket opened with the token in the URL, a `refetch` after a change, and 1001 when the
/// server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_opens_the_socket_with_a_token_and_hears_changes() {
    let Some(browser) = crate::webdriver::Browser::start().await else {
        return;
    };
    let Some(mut app) = TestApp::spawn(crate::Backend::Sqlite).await else {
        return;
    };
    let (project, env, flag) = setup(&app).await;
    let key = app.api_key(&project, &env, "client").await;
    // A page of another origin (the application's), calling Vexil cross-origin.
    let page = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://localhost:{}/", page.local_addr().unwrap().port());
    let site = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html("<title>app</title>") }),
    );
    tokio::spawn(async move { axum::serve(page, site).await });
    browser.goto(&page_url).await;
    browser
        .script(
            r#"const [key, base] = arguments;
            window.events = []; window.state = "connecting";
            fetch(base + "/api/v1/sdk/ws-token", {method: "POST", headers: {"Authorization": "Bearer " + key}})
              .then((r) => r.json())
              .then((t) => {
                const ws = new WebSocket(new URL(t.url, base).href.replace(/^http/, "ws"));
                ws.onopen = () => { window.state = "open"; };
                ws.onmessage = (m) => window.events.push(JSON.parse(m.data));
                ws.onclose = (c) => { window.state = "closed " + c.code; };
              })
              .catch((e) => { window.state = "failed " + e; });"#,
            json!([key, app.url("")]),
        )
        .await;
    let until = |wanted: &'static str| {
        let browser = &browser;
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let state = browser.script("return window.state", json!([])).await;
                if state == wanted {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "socket state {state}, wanted {wanted}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until("open").await;
    enable(&app, &flag, &env, true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let events = browser.script("return window.events", json!([])).await;
        if !events.as_array().unwrap().is_empty() {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event in the browser"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(events[0]["event"], "refetch", "{events}");
    assert_eq!(events[0]["data"]["version"], events[0]["id"]);
    app.stop().await;
    until("closed 1001").await;
}
