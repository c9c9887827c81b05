//! The client's API as an application sees it: typed getters and their defaults, details
//! and error reasons, evaluate-all, initialization, bootstrap and offline mode, listeners,
//! status, `close()`, and that the server key never shows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use vexil_sdk::{BuildError, Client, ContextBuilder, ErrorCode, InitError, ReasonKind, State};

use crate::helpers::{TestServer, dead_address, eventually, fast_client};
use crate::proxy::{Mode, Proxy};

fn ruleset() -> Value {
    let bool_flag = |enabled: bool| {
        json!({"type": "boolean", "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": enabled, "off_variation": "off", "fallthrough": {"variation": "on"}, "version": 3})
    };
    json!({"version": 7, "flags": {
        "dark-mode": bool_flag(true),
        "killed": bool_flag(false),
        "banner": {"type": "string", "variations": [{"key": "a", "value": "Hello"}, {"key": "b", "value": "Hi"}],
            "enabled": true, "off_variation": "a", "fallthrough": {"variation": "a"},
            "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                       "serve": {"variation": "b"}}]},
        "limit": {"type": "number", "variations": [{"key": "int", "value": 42}, {"key": "whole", "value": 7.0}, {"key": "frac", "value": 2.5}],
            "enabled": true, "off_variation": "int", "fallthrough": {"variation": "int"},
            "targets": [{"variation": "whole", "values": ["u-whole"]}, {"variation": "frac", "values": ["u-frac"]}]},
        "settings": {"type": "json", "variations": [{"key": "v1", "value": {"retries": 3}}],
            "enabled": true, "off_variation": "v1", "fallthrough": {"variation": "v1"}},
        "ramp": {"type": "boolean", "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": true, "off_variation": "off",
            "fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}
    }})
}

fn offline() -> Client {
    Client::offline_builder()
        .bootstrap_json(ruleset().to_string())
        .build()
        .unwrap()
}

#[test]
fn typed_getters_serve_values_and_fall_back_to_the_default() {
    let client = offline();
    let user = ContextBuilder::new("user-1").build();
    let staff = ContextBuilder::new("user-2")
        .set("email", "ann@acme.com")
        .build();
    assert!(client.bool_value("dark-mode", &user, false));
    assert!(!client.bool_value("killed", &user, true));
    assert_eq!(client.string_value("banner", &user, "x"), "Hello");
    assert_eq!(client.string_value("banner", &staff, "x"), "Hi");
    assert_eq!(client.int_value("limit", &user, 0), 42);
    let whole = ContextBuilder::new("u-whole").build();
    let frac = ContextBuilder::new("u-frac").build();
    assert_eq!(client.int_value("limit", &whole, 0), 7, "7.0 is an integer");
    assert_eq!(client.int_value("limit", &frac, -1), -1, "2.5 is not");
    assert_eq!(client.float_value("limit", &frac, 0.0), 2.5);
    assert_eq!(client.float_value("limit", &user, 0.0), 42.0);
    assert_eq!(
        client.json_value("settings", &user, Value::Null),
        json!({"retries": 3})
    );
    assert_eq!(
        client.json_value("banner", &user, Value::Null),
        json!("Hello")
    );

    // Defaults: unknown flag, wrong type, missing targeting key for a rollout.
    assert!(client.bool_value("nope", &user, true));
    assert!(client.bool_value("banner", &user, true));
    assert_eq!(client.string_value("dark-mode", &user, "dflt"), "dflt");
    let anonymous = ContextBuilder::anonymous().build();
    assert!(client.bool_value("ramp", &anonymous, true));
    assert!(!client.bool_value("ramp", &anonymous, false));
}

#[test]
fn details_say_which_variation_and_why() {
    let client = offline();
    let staff = ContextBuilder::new("user-2")
        .set("email", "ann@acme.com")
        .build();
    let d = client.string_detail("banner", &staff, "x");
    assert_eq!(d.value, "Hi");
    assert_eq!(d.variation.as_deref(), Some("b"));
    assert_eq!(d.reason.kind, ReasonKind::RuleMatch);
    assert_eq!(d.reason.rule_id.as_deref(), Some("staff"));
    assert_eq!(d.reason.rule_index, Some(0));
    assert!(!d.is_default());

    let d = client.bool_detail("killed", &staff, true);
    assert_eq!((d.value, d.reason.kind), (false, ReasonKind::Off));
    assert_eq!(d.flag_version, Some(3));

    let d = client.bool_detail("ramp", &staff, false);
    assert!(d.reason.in_rollout);

    let d = client.bool_detail("missing", &staff, true);
    assert!(d.value && d.is_default());
    assert_eq!(d.error(), Some(ErrorCode::FlagNotFound));
    assert_eq!(d.variation, None);

    let d = client.int_detail("banner", &staff, 5);
    assert_eq!((d.value, d.error()), (5, Some(ErrorCode::TypeMismatch)));

    let d = client.bool_detail("ramp", &ContextBuilder::anonymous().build(), true);
    assert_eq!(d.error(), Some(ErrorCode::TargetingKeyMissing));
    assert_eq!(
        serde_json::to_value(&d.reason).unwrap(),
        json!({"kind": "ERROR", "in_rollout": false, "error_code": "TARGETING_KEY_MISSING"})
    );
}

#[test]
fn evaluate_all_and_offline_status() {
    let client = offline();
    let all = client.evaluate_all(&ContextBuilder::new("user-1").build());
    assert_eq!(all.len(), 6);
    assert_eq!(all["dark-mode"].value, json!(true));
    assert_eq!(all["settings"].value, json!({"retries": 3}));
    let anonymous = client.evaluate_all(&ContextBuilder::anonymous().build());
    assert_eq!(anonymous["ramp"].value, Value::Null);
    assert_eq!(
        anonymous["ramp"].error(),
        Some(ErrorCode::TargetingKeyMissing)
    );
    assert_eq!(client.flag_keys().len(), 6);

    let status = client.status();
    assert_eq!(status.state, State::Ready);
    assert_eq!(status.version, Some(7));
}

#[test]
fn builder_errors_are_precise() {
    let err = Client::offline_builder().build().unwrap_err();
    assert!(matches!(err, BuildError::OfflineWithoutBootstrap), "{err}");
    let err = Client::offline_builder()
        .bootstrap_json(r#"{"flags": {"x": {"type": "boolean"}}}"#)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("flags.x"), "{err}");
    let err = Client::offline_builder()
        .bootstrap_file("/nonexistent/ruleset.json")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::BootstrapRead { .. }), "{err}");
    // Online clients need a runtime, a usable URL and a key.
    let err = Client::builder("http://127.0.0.1:1", "k")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime), "{err}");
}

#[tokio::test]
async fn bad_urls_and_keys_are_refused_at_build() {
    for url in ["not a url", "ftp://example.com"] {
        let err = Client::builder(url, "k").build().unwrap_err();
        assert!(matches!(err, BuildError::InvalidUrl { .. }), "{url}: {err}");
    }
    let err = Client::builder("http://127.0.0.1:1", " ")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidKey));
    let err = Client::builder("http://127.0.0.1:1", "bad\nkey")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidKey));
}

#[tokio::test]
async fn an_unreachable_server_gives_defaults_or_bootstrap_values_and_never_blocks() {
    let url = format!("http://{}", dead_address());
    let user = ContextBuilder::new("user-1").build();

    let client = fast_client(&url, "vx_srv_secret-key-1234").build().unwrap();
    let d = client.bool_detail("dark-mode", &user, true);
    assert!(d.value);
    assert_eq!(d.error(), Some(ErrorCode::ClientNotReady));
    let err = client
        .wait_for_initialization(Duration::from_millis(1500))
        .await
        .unwrap_err();
    let InitError::Timeout { status, .. } = err else {
        panic!("expected a timeout: {err}");
    };
    assert_eq!(status.state, State::NotReady);
    assert!(status.reason.contains("unreachable"), "{status:?}");
    assert!(client.evaluate_all(&user).is_empty());

    // With a bootstrap ruleset: its values, status Stale.
    let client = fast_client(&url, "vx_srv_secret-key-1234")
        .bootstrap_json(ruleset().to_string())
        .build()
        .unwrap();
    assert!(client.bool_value("dark-mode", &user, false));
    assert_eq!(client.status().state, State::Stale);
    eventually("the failure is in the reason", || {
        client.status().reason.contains("unreachable")
    })
    .await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_shows_and_a_rejected_key_is_reported() {
    let server = TestServer::start().await;
    let secret = "vx_srv_not-a-real-key-0123456789";
    let client = fast_client(&server.url(), secret).build().unwrap();
    let err = client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, InitError::KeyRejected { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    for shown in [
        format!("{client:?}"),
        format!("{:?}", fast_client(&server.url(), secret)),
        format!("{:?}", client.status()),
        err.to_string(),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }

    // A client key may not read rules: also rejected.
    let client_key = server.api_key("client").await;
    let client = fast_client(&server.url(), &client_key).build().unwrap();
    let err = client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_data_replaces_the_bootstrap_and_listeners_hear_of_it() {
    let server = TestServer::start().await;
    let key = server.server_key().await;
    // The server's dark-mode is disabled; the bootstrap's is enabled.
    let flag = server.create_flag("dark-mode", json!({}), json!({})).await;
    // The server is out of reach until the listeners are registered, so that they hear
    // the first fetch.
    let proxy = Proxy::start(server.addr).await;
    proxy.set_mode(Mode::Refuse);
    let client = fast_client(&proxy.url(), &key)
        .bootstrap_json(ruleset().to_string())
        .build()
        .unwrap();
    let user = ContextBuilder::new("user-1").build();
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = heard.clone();
    let flag_listener = client.on_flag_change("dark-mode", move |c| {
        h.lock().unwrap().push(format!("dark-mode@{}", c.version));
    });
    let all: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let a = all.clone();
    client.on_change(move |c| a.lock().unwrap().push(c.keys.clone()));
    let statuses: Arc<Mutex<Vec<State>>> = Arc::default();
    let s = statuses.clone();
    client.on_status_change(move |st| s.lock().unwrap().push(st.state));
    proxy.set_mode(Mode::Forward);

    client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        !client.bool_value("dark-mode", &user, true),
        "the server's data"
    );
    assert_eq!(
        client.flag_keys(),
        ["dark-mode"],
        "bootstrap-only flags are gone"
    );
    eventually("dark-mode listener", || heard.lock().unwrap().len() == 1).await;
    eventually("global listener", || !all.lock().unwrap().is_empty()).await;
    assert!(
        all.lock().unwrap()[0].contains(&"banner".to_owned()),
        "removed flags are changes"
    );
    eventually("status listener", || {
        statuses.lock().unwrap().contains(&State::Ready)
    })
    .await;

    // A removed listener hears nothing more; the others do.
    assert!(client.remove_listener(flag_listener));
    assert!(!client.remove_listener(flag_listener));
    server.configure(&flag, json!({"enabled": true})).await;
    eventually("the change", || {
        client.bool_value("dark-mode", &user, false)
    })
    .await;
    eventually("global listener again", || all.lock().unwrap().len() == 2).await;
    assert_eq!(heard.lock().unwrap().len(), 1);

    // After close(): no more updates, last values served, status says so.
    client.close().await;
    assert_eq!(client.status().state, State::Stale);
    assert_eq!(client.status().reason, "client closed");
    server.configure(&flag, json!({"enabled": false})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.bool_value("dark-mode", &user, false));
}

/// The quickstart's order: wait for the first fetch, then register a listener. Its first
/// notification must be a real change, not the fetch it waited for — even when the
/// dispatcher that runs listeners is behind (here held up by a slow status listener), so
/// that the fetch's notification is dispatched only after the new listener is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_registered_after_initialization_hears_only_later_changes() {
    let server = TestServer::start().await;
    let key = server.server_key().await;
    let flag = server
        .create_flag("dark-mode", json!({}), json!({"enabled": true}))
        .await;
    let proxy = Proxy::start(server.addr).await;
    proxy.set_mode(Mode::Hold);
    let client = fast_client(&proxy.url(), &key).build().unwrap();

    // A status listener that blocks the dispatcher on the first status it hears (the failed
    // first fetch), until released.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let blocked: Arc<Mutex<Vec<State>>> = Arc::default();
    let b = blocked.clone();
    client.on_status_change(move |status| {
        let first = {
            let mut seen = b.lock().unwrap();
            seen.push(status.state);
            seen.len() == 1
        };
        if first {
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20));
        }
    });
    // The held fetch fails once the connection is closed; the dispatcher blocks on that.
    proxy.set_mode(Mode::Refuse);
    eventually("the dispatcher is held", || {
        !blocked.lock().unwrap().is_empty()
    })
    .await;
    proxy.set_mode(Mode::Forward);
    client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap();
    let user = ContextBuilder::new("user-1").build();
    assert!(client.bool_value("dark-mode", &user, false));

    let heard: Arc<Mutex<Vec<u64>>> = Arc::default();
    let h = heard.clone();
    client.on_flag_change("dark-mode", move |c| h.lock().unwrap().push(c.version));
    let version = client.status().version.unwrap();
    release.send(()).unwrap();
    // The dispatcher has caught up once the status listener has heard `Ready`, which the
    // client reported after loading the data.
    eventually("the dispatcher caught up", || {
        blocked.lock().unwrap().contains(&State::Ready)
    })
    .await;
    eventually("the stream is up", || client.status().reason == "streaming").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        heard.lock().unwrap().is_empty(),
        "notified of the data it already had: {:?}",
        heard.lock().unwrap()
    );

    // A real change is heard, once.
    server.configure(&flag, json!({"enabled": false})).await;
    eventually("the change", || heard.lock().unwrap().len() == 1).await;
    assert!(heard.lock().unwrap()[0] > version);
    assert!(!client.bool_value("dark-mode", &user, true));
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_stops_the_background_task() {
    let server = TestServer::start().await;
    let key = server.server_key().await;
    let client = fast_client(&server.url(), &key).build().unwrap();
    client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap();
    let mut events = client.subscribe();
    let clone = client.clone();
    drop(client);
    assert!(
        clone.status().state == State::Ready,
        "a clone keeps it running"
    );
    drop(clone);
    // The task ends, and with it the last sender of events.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(tokio::sync::broadcast::error::RecvError::Closed) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the background task is still running");
}

#[test]
fn the_client_can_be_shared_across_threads_and_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Client>();
    let client = offline();
    let user = ContextBuilder::new("user-1").build();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert!(client.bool_value("dark-mode", &user, false)));
        }
    });
}
