//! Webhooks over HTTP, on both backends, with a receiver on loopback: every flag event
//! arrives once and in order, signed; a receiver that fails three times gets the event on
//! the fourth attempt and the later events wait for it; a webhook failing for its whole
//! retry window is disabled and says why; tests and redeliveries; the Slack format; bad
//! input; private targets refused unless allowed; two PostgreSQL nodes deliver each event
//! once. (Signatures checked by an independent implementation and a `kill -9` between
//! commit and delivery are in the `vexil` crate's tests, which run the real binary.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// What the receiver got: headers and body of every request, in arrival order.
#[derive(Default)]
struct Inbox {
    got: Vec<(HeaderMap, String)>,
    /// Answer 503 to this many requests first.
    fail_first: usize,
}

struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox {
            fail_first,
            ..Inbox::default()
        }));
        async fn hook(
            State(inbox): State<Arc<Mutex<Inbox>>>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, &'static str) {
            let mut inbox = inbox.lock().unwrap();
            inbox.got.push((headers, body));
            if inbox.got.len() <= inbox.fail_first {
                (StatusCode::SERVICE_UNAVAILABLE, "busy")
            } else {
                (StatusCode::OK, "ok")
            }
        }
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, inbox }
    }

    fn count(&self) -> usize {
        self.inbox.lock().unwrap().got.len()
    }

    /// Waits until `n` requests arrived (at most 20 s); returns their bodies as JSON.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {n} requests",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies()
    }

    fn bodies(&self) -> Vec<Value> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .got
            .iter()
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }

    fn headers(&self, i: usize) -> HeaderMap {
        self.inbox.lock().unwrap().got[i].0.clone()
    }
}

async fn create_hook(app: &TestApp, project: &str, body: Value) -> Value {
    json_status(
        app.post(&format!("/api/v1/projects/{project}/webhooks"), body)
            .await,
        201,
    )
    .await
}

fn events(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    json_ok(
        app.get(&format!("/api/v1/webhooks/{hook}/deliveries"))
            .await,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

both_backends! {
    async fn every_flag_event_arrives_once_in_order_and_signed(app) {
        let receiver = Receiver::start(0).await;
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let created = create_hook(&app, &project, json!({
            "name": "flag events", "url": receiver.url, "events": ["flag.*", "config.updated"],
        })).await;
        let hook = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{created}");
        assert_eq!(created["format"], "standard");
        assert_eq!(created["enabled"], true);
        // The secret is shown once: never in a read, a listing, or the audit trail.
        let read = json_ok(app.get(&format!("/api/v1/webhooks/{hook}")).await).await;
        assert!(read.get("secret").is_none(), "{read}");
        let listed = json_ok(app.get(&format!("/api/v1/projects/{project}/webhooks")).await).await;
        assert_eq!(listed["total"], 1);
        assert!(!listed.to_string().contains(&secret));
        let audit = json_ok(app.get("/api/v1/audit-logs?action=webhook.create").await).await;
        assert_eq!(audit["total"], 1);
        assert!(!audit.to_string().contains(&secret));
        // Nor the URL, which for chat formats is itself a credential: scheme and host only.
        assert_eq!(audit["items"][0]["after"]["url"], "http://127.0.0.1/…");

        // Six changes of a flag, and one of a segment, which this webhook does not ask for.
        let flag = app.create_flag(&project, "new-checkout").await;
        let config = format!("/api/v1/flags/{flag}/environments/{prod}/config");
        json_ok(app.patch(&config, json!({"enabled": true, "comment": "launch"})).await).await;
        json_ok(app.patch(&config, json!({"targets": [{"variation": "off", "values": ["bob"]}]})).await).await;
        json_status(app.post(&format!("/api/v1/projects/{project}/segments"), json!({"key": "beta"})).await, 201).await;
        json_ok(app.post(&format!("/api/v1/feature-flags/{flag}/kill-switch"), json!({"reason": "checkout errors"})).await).await;
        json_ok(app.request(reqwest::Method::PATCH, &format!("/api/v1/feature-flags/{flag}/archive")).send().await.unwrap()).await;
        json_ok(app.request(reqwest::Method::PATCH, &format!("/api/v1/feature-flags/{flag}/restore")).send().await.unwrap()).await;

        let got = receiver.wait_for(6).await;
        assert_eq!(
            events(&got),
            ["flag.created", "config.updated", "config.updated", "flag.killed", "flag.archived", "flag.restored"]
        );
        // Nothing more comes (each event once; the segment is not asked for).
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.count(), 6);
        let seqs: Vec<i64> = got.iter().map(|b| b["data"]["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in audit order: {seqs:?}");
        let enabled = &got[1]["data"];
        assert_eq!(enabled["action"], "flag_config.update");
        assert_eq!(enabled["actor"]["name"], "bootstrap");
        assert_eq!(enabled["comment"], "launch");
        assert_eq!(enabled["environment"]["key"], "production");
        assert_eq!(enabled["project"]["key"], "default");
        assert_eq!(enabled["flag"]["key"], "new-checkout");
        assert_eq!(enabled["before"]["enabled"], false);
        assert_eq!(enabled["after"]["enabled"], true);
        assert_eq!(enabled["message"], "bootstrap enabled new-checkout in production: launch");
        assert!(enabled["url"].as_str().unwrap().ends_with("/ui/default/default/flags/new-checkout/in/production"), "{enabled}");
        assert_eq!(got[3]["data"]["message"], "bootstrap disabled new-checkout in production (kill switch): checkout errors");

        // Standard Webhooks headers: a message id per event, a current timestamp, and the
        // signature of "id.timestamp.body" (checked here with the server's own signer's
        // algorithm spelled out independently; the vexil crate checks it with another
        // implementation).
        let mut ids = std::collections::HashSet::new();
        for i in 0..6 {
            let headers = receiver.headers(i);
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            assert!(id.starts_with("msg_"), "{id}");
            assert!(ids.insert(id), "one webhook-id per event");
            let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
            let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
            assert!((now - ts).abs() < 60);
            assert!(headers["webhook-signature"].to_str().unwrap().starts_with("v1,"));
            assert_eq!(headers["content-type"], "application/json");
        }

        // The deliveries say how each went.
        let list = deliveries(&app, &hook).await;
        assert_eq!(list.len(), 6);
        for d in &list {
            assert_eq!(d["status"], "delivered", "{d}");
            assert_eq!(d["attempts"], 1);
            assert_eq!(d["last_status_code"], 200);
            assert!(d["last_latency_ms"].is_i64());
        }
        let one = json_ok(app.get(&format!("/api/v1/webhooks/{hook}/deliveries/{}", list[0]["id"].as_str().unwrap())).await).await;
        assert_eq!(one["attempt_log"][0]["status_code"], 200);
        assert_eq!(one["attempt_log"][0]["response"], "ok");
    }

    async fn a_failing_receiver_gets_the_event_on_its_fourth_attempt_and_later_ones_wait(app) {
        let receiver = Receiver::start(3).await;
        let project = app.default_project().await;
        let hook = create_hook(&app, &project, json!({"name": "flaky", "url": receiver.url, "events": ["flag.created"]})).await;
        let hook = hook["id"].as_str().unwrap();
        app.create_flag(&project, "first").await;
        app.create_flag(&project, "second").await;
        let got = receiver.wait_for(5).await;
        let keys: Vec<&str> = got.iter().map(|b| b["data"]["flag"]["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["first", "first", "first", "first", "second"], "retried in order");
        // Every attempt of an event carries the same webhook-id.
        let id = receiver.headers(0)["webhook-id"].clone();
        assert!((1..4).all(|i| receiver.headers(i)["webhook-id"] == id));
        assert_ne!(receiver.headers(4)["webhook-id"], id);
        let list = deliveries(&app, hook).await;
        let first = list.iter().find(|d| d["attempts"] == 4).expect("the first event took four attempts");
        assert_eq!(first["status"], "delivered");
        let one = json_ok(app.get(&format!("/api/v1/webhooks/{hook}/deliveries/{}", first["id"].as_str().unwrap())).await).await;
        let codes: Vec<i64> = one["attempt_log"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
        assert_eq!(codes, [503, 503, 503, 200]);
        assert_eq!(one["attempt_log"][0]["response"], "busy");
    }

    async fn tests_redeliveries_and_the_slack_format(app) {
        let receiver = Receiver::start(0).await;
        let project = app.default_project().await;
        let prod = app.environment(&project, "production").await;
        let hook = create_hook(&app, &project, json!({"name": "ops", "url": receiver.url, "format": "slack", "events": ["config.*"]})).await;
        let hook = hook["id"].as_str().unwrap();
        let test = json_ok(app.post(&format!("/api/v1/webhooks/{hook}/test"), json!({})).await).await;
        assert_eq!(test["event"], "webhook.test");
        assert_eq!(test["status"], "delivered");
        assert_eq!(test["last_status_code"], 200);
        let got = receiver.wait_for(1).await;
        assert_eq!(got[0]["text"].as_str().unwrap().split(" <").next().unwrap(), "bootstrap sent a test event to");

        let flag = app.create_flag(&project, "dark-mode").await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{prod}/config"), json!({"enabled": true, "comment": "ship <it> & see"})).await).await;
        let got = receiver.wait_for(2).await;
        let text = got[1]["text"].as_str().unwrap();
        assert!(text.starts_with("bootstrap enabled <http://"), "{text}");
        assert!(text.ends_with("/ui/default/default/flags/dark-mode/in/production|dark-mode> in production: ship &lt;it&gt; &amp; see"), "{text}");

        // A format changed while deliveries wait applies to them; the body shown is the
        // one sent.
        let list = deliveries(&app, hook).await;
        let event = list.iter().find(|d| d["event"] == "config.updated").unwrap();
        let one = json_ok(app.get(&format!("/api/v1/webhooks/{hook}/deliveries/{}", event["id"].as_str().unwrap())).await).await;
        assert!(one["body"].as_str().unwrap().starts_with(r#"{"text":"bootstrap enabled <http"#), "{one}");

        // Redelivery: the same message again, now.
        let list = deliveries(&app, hook).await;
        let event = list.iter().find(|d| d["event"] == "config.updated").unwrap();
        let again = json_ok(app.post(&format!("/api/v1/webhooks/{hook}/deliveries/{}/redeliver", event["id"].as_str().unwrap()), json!({})).await).await;
        assert_eq!(again["attempts"], 2);
        assert_eq!(again["status"], "delivered");
        receiver.wait_for(3).await;
        assert_eq!(receiver.headers(1)["webhook-id"], receiver.headers(2)["webhook-id"]);
        error_of(app.post(&format!("/api/v1/webhooks/{hook}/deliveries/nope/redeliver"), json!({})).await, 404, "not_found").await;

        // A disabled webhook announces nothing; enabled again, it announces what follows.
        json_ok(app.patch(&format!("/api/v1/webhooks/{hook}"), json!({"enabled": false})).await).await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{prod}/config"), json!({"enabled": false})).await).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.count(), 3);
        json_ok(app.patch(&format!("/api/v1/webhooks/{hook}"), json!({"enabled": true})).await).await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{prod}/config"), json!({"enabled": true})).await).await;
        let got = receiver.wait_for(4).await;
        assert!(got[3]["text"].as_str().unwrap().starts_with("bootstrap enabled"), "{}", got[3]);
        // Deleted: nothing more.
        json_status(app.delete(&format!("/api/v1/webhooks/{hook}")).await, 204).await;
        json_ok(app.patch(&format!("/api/v1/flags/{flag}/environments/{prod}/config"), json!({"enabled": false})).await).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.count(), 4);
    }

    async fn bad_input_is_refused_whole(app) {
        let project = app.default_project().await;
        let path = format!("/api/v1/projects/{project}/webhooks");
        let bad = [
            (json!({"name": "", "url": "https://example.com/h"}), "name"),
            (json!({"name": "x", "url": "ftp://example.com/h"}), "url"),
            (json!({"name": "x", "url": "not a url"}), "url"),
            (json!({"name": "x", "url": "https://user:pw@example.com/h"}), "url"),
            (json!({"name": "x", "url": "https://example.com/h", "events": []}), "events"),
            (json!({"name": "x", "url": "https://example.com/h", "events": ["flag.*", "flags.*"]}), "events[1]"),
            (json!({"name": "x", "url": "https://example.com/h", "events": ["user.login"]}), "events[0]"),
            (json!({"name": "x", "url": "https://example.com/h", "format": "teams"}), "format"),
        ];
        for (body, field) in bad {
            let e = error_of(app.post(&path, body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"][field].is_string(), "{body}: {e}");
        }
        error_of(app.post(&path, json!({"name": "x", "url": "https://example.com/h", "secret": "mine"})).await, 400, "invalid_request").await;
        let listed = json_ok(app.get(&path).await).await;
        assert_eq!(listed["total"], 0, "nothing was created");
        let hook = create_hook(&app, &project, json!({"name": "x", "url": "https://example.com/h"})).await;
        assert_eq!(hook["events"], json!(["*"]));
        let id = hook["id"].as_str().unwrap();
        let e = error_of(app.patch(&format!("/api/v1/webhooks/{id}"), json!({"events": ["nope"]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["events[0]"].is_string(), "{e}");
        error_of(app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=lost")).await, 400, "invalid_request").await;
        error_of(app.get("/api/v1/webhooks/nope").await, 404, "not_found").await;
    }
}

/// Spawns a server whose webhooks give up after one second of failures.
async fn impatient(backend: crate::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.webhook_retry_for_secs = 1;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_failing_for_its_whole_retry_window_is_disabled_and_says_why() {
    let Some(app) = impatient(crate::Backend::Sqlite).await else {
        return;
    };
    let receiver = Receiver::start(usize::MAX).await;
    let project = app.default_project().await;
    let hook = create_hook(&app, &project, json!({"name": "down", "url": receiver.url})).await;
    let hook = hook["id"].as_str().unwrap().to_owned();
    app.create_flag(&project, "one").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let read = loop {
        let read = json_ok(app.get(&format!("/api/v1/webhooks/{hook}")).await).await;
        if read["enabled"] == false {
            break read;
        }
        assert!(Instant::now() < deadline, "not disabled: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = read["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("flag.created") && reason.contains("the receiver answered 503"),
        "{reason}"
    );
    assert!(receiver.count() >= 2, "retried before giving up");
    let list = deliveries(&app, &hook).await;
    assert_eq!(list[0]["status"], "failed");
    let audit = json_ok(app.get("/api/v1/audit-logs?action=webhook.disable").await).await;
    assert_eq!(audit["items"][0]["actor"]["name"], "webhook delivery");
    // Enabled again: the reason goes.
    let enabled = json_ok(
        app.patch(
            &format!("/api/v1/webhooks/{hook}"),
            json!({"enabled": true}),
        )
        .await,
    )
    .await;
    assert_eq!(enabled["disabled_reason"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    let Some(app) = TestApp::spawn_with(crate::Backend::Sqlite, |c| {
        c.webhook_allow_private = false;
    })
    .await
    else {
        return;
    };
    let project = app.default_project().await;
    let path = format!("/api/v1/projects/{project}/webhooks");
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
    ] {
        let e = error_of(
            app.post(&path, json!({"name": "x", "url": url})).await,
            400,
            "invalid_request",
        )
        .await;
        let problem = e["details"]["fields"]["url"].as_str().unwrap();
        assert!(
            problem.contains("--webhook-allow-private"),
            "{url}: {problem}"
        );
    }
    // A name is checked when it resolves, at every attempt (a name that resolves to a
    // private address is refused then); one that does not resolve fails the attempt.
    let hook = create_hook(
        &app,
        &project,
        json!({"name": "x", "url": "http://webhook.invalid/hook"}),
    )
    .await;
    let test = json_ok(
        app.post(
            &format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(test["status"], "failed");
    assert!(test["last_error"].is_string(), "{test}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_nodes_deliver_each_event_once() {
    let Some(a) = TestApp::spawn(crate::Backend::Postgres).await else {
        return;
    };
    let b = a.sibling().await;
    let receiver = Receiver::start(0).await;
    let project = a.default_project().await;
    create_hook(
        &a,
        &project,
        json!({"name": "both", "url": receiver.url, "events": ["flag.created"]}),
    )
    .await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.create_flag(&project, &format!("flag-{i}")).await;
    }
    let got = receiver.wait_for(20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 20, "each event once");
    let keys: Vec<String> = got
        .iter()
        .map(|b| b["data"]["flag"]["key"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("flag-{i}")).collect();
    assert_eq!(keys, expected, "in commit order");
}
