//! Webhooks from outside, through the real binary: the signatures of every delivery verify
//! with the `standardwebhooks` package from PyPI (an implementation that is not ours), and
//! a tampered body does not; `kill -9` of the server between an event's commit and its
//! delivery loses nothing: the event arrives after the restart. The Python check needs
//! `python3` with `venv`; without it the test says it is skipped, unless
//! `VEXIL_REQUIRE_PYTHON=1` (CI), where that is a failure.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::python_sdk::{package_venv, run};
use crate::server::Server;

const TOKEN: &str = "vx_pat_webhook-test-token-0123456789";

/// What the receiver got, and whether it answers 200 (else 503).
#[derive(Default)]
struct Inbox {
    got: Vec<(HeaderMap, String)>,
    accepting: bool,
}

type Shared = Arc<Mutex<Inbox>>;

async fn hook(State(inbox): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let mut inbox = inbox.lock().unwrap();
    if inbox.accepting {
        inbox.got.push((headers, body));
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A loopback receiver on the runtime `rt`; returns its URL and inbox.
fn receiver(rt: &tokio::runtime::Runtime, accepting: bool) -> (String, Shared) {
    let inbox: Shared = Arc::new(Mutex::new(Inbox {
        got: Vec::new(),
        accepting,
    }));
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(inbox.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, router).await });
    (url, inbox)
}

/// An authenticated request to `server`, answering the JSON body (status checked).
fn call(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    rt.block_on(async {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let got = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(got, status, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    })
}

fn serve(db: &str) -> Server {
    Server::start(
        db,
        &["--webhook-allow-private", "--webhook-retry-base-ms", "100"],
        &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)],
    )
}

fn temp_db(name: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("vexil-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("vexil.db").display());
    (dir, db)
}

/// The default project's id and its production environment's id.
fn project_and_production(rt: &tokio::runtime::Runtime, server: &Server) -> (String, String) {
    let projects = call(
        rt,
        server,
        reqwest::Method::GET,
        "/api/v1/projects",
        None,
        200,
    );
    let project = projects["items"][0]["id"].as_str().unwrap().to_owned();
    let envs = call(
        rt,
        server,
        reqwest::Method::GET,
        &format!("/api/v1/projects/{project}/environments"),
        None,
        200,
    );
    let prod = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "production")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (project, prod)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_between_commit_and_delivery_loses_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, db) = temp_db("webhook-kill");
    // The receiver is down (503) while the event is committed.
    let (url, inbox) = receiver(&rt, false);
    let mut server = serve(&db);
    let (project, prod) = project_and_production(&rt, &server);
    let hook = call(
        &rt,
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/webhooks"),
        Some(json!({"name": "ops", "url": url, "events": ["flag.*", "config.updated"]})),
        201,
    );
    let hook = hook["id"].as_str().unwrap().to_owned();
    let flag = call(
        &rt,
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/feature-flags"),
        Some(json!({"key": "new-checkout"})),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &rt,
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/flags/{flag}/environments/{prod}/config"),
        Some(json!({"enabled": true, "comment": "launch"})),
        200,
    );
    // Committed, attempted and not delivered...
    wait_until("a failed attempt", Duration::from_secs(20), || {
        let list = call(
            &rt,
            &server,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{hook}/deliveries?status=pending"),
            None,
            200,
        );
        list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|d| d["attempts"].as_i64() >= Some(1)))
    });
    // ...when the server is killed outright.
    server.kill();
    inbox.lock().unwrap().accepting = true;
    assert!(inbox.lock().unwrap().got.is_empty());
    let _server = serve(&db);
    wait_until(
        "both events after the restart",
        Duration::from_secs(30),
        || inbox.lock().unwrap().got.len() >= 2,
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = inbox.lock().unwrap();
    let types: Vec<String> = got
        .got
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        ["flag.created", "config.updated"],
        "each once, in order"
    );
    drop(got);
    let _ = fs::remove_dir_all(dir);
}

const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret, path = sys.argv[1], sys.argv[2]
messages = json.load(open(path))
hook = Webhook(secret)
for m in messages:
    payload = hook.verify(m["body"].encode(), m["headers"])
    assert payload["type"] == m["type"], payload
    for tampered in (m["body"] + " ", m["body"].replace('"type"', '"typo"', 1)):
        try:
            hook.verify(tampered.encode(), m["headers"])
        except WebhookVerificationError:
            continue
        raise SystemExit("a tampered body verified")
    try:
        Webhook("whsec_" + "A" * 44).verify(m["body"].encode(), m["headers"])
        raise SystemExit("another secret verified")
    except WebhookVerificationError:
        pass
print("verified", len(messages))
"#;

#[test]
fn signatures_verify_with_the_standardwebhooks_package() {
    let Some(python) = package_venv(
        "webhooks-python-venv",
        "webhook signature check with standardwebhooks",
        &["standardwebhooks==1.3.0"],
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, db) = temp_db("webhook-sign");
    let (url, inbox) = receiver(&rt, true);
    let server = serve(&db);
    let (project, prod) = project_and_production(&rt, &server);
    let created = call(
        &rt,
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/webhooks"),
        Some(json!({"name": "verified", "url": url})),
        201,
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    let flag = call(
        &rt,
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/feature-flags"),
        Some(json!({"key": "dark-mode", "description": "ünïcode – and \"quotes\""})),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &rt,
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/flags/{flag}/environments/{prod}/config"),
        Some(json!({"enabled": true, "comment": "for everyone in production"})),
        200,
    );
    call(
        &rt,
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/webhooks/{}/test", created["id"].as_str().unwrap()),
        None,
        200,
    );
    wait_until("three deliveries", Duration::from_secs(20), || {
        inbox.lock().unwrap().got.len() >= 3
    });
    let messages: Vec<Value> = inbox
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|(headers, body)| {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
                .collect();
            let kind = serde_json::from_str::<Value>(body).unwrap()["type"].clone();
            json!({"headers": headers, "body": body, "type": kind})
        })
        .collect();
    let path = dir.join("messages.json");
    fs::write(&path, serde_json::to_string(&messages).unwrap()).unwrap();
    let out = run(
        "standardwebhooks verification",
        Command::new(python)
            .args(["-c", VERIFY, &secret])
            .arg(&path),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verified 3");
    let _ = fs::remove_dir_all(dir);
}
