//! What the client tells the server: the evaluations it served locally add up exactly in the
//! server's insights (across a flag change that replaced the snapshot, and with the last
//! counts sent on close); tracked events arrive in batches and are attributed by the
//! server; `send_metrics(false)` sends nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vexil_sdk::{Client, ClientBuilder, ContextBuilder};

use crate::helpers::{DEADLINE, TestServer, fast_client};

/// The production insights of a flag once `done` holds (the test server flushes every
/// 250 ms).
async fn insights_when(server: &TestServer, flag_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!(
        "/api/v1/flags/{flag_id}/environments/{}/insights",
        server.env
    );
    let start = Instant::now();
    loop {
        let series = server.get(&path).await;
        if done(&series) {
            return series;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "insights never got there: {series}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A flag (`key`, with its production configuration) and a client of the server built with
/// `options`, initialized.
async fn flag_and_client(
    server: &TestServer,
    key: &str,
    definition: Value,
    config: Value,
    options: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (String, Client) {
    let server_key = server.server_key().await;
    let flag = server.create_flag(key, definition, config).await;
    let client = options(fast_client(&server.url(), &server_key))
        .build()
        .unwrap();
    client
        .wait_for_initialization(Duration::from_secs(10))
        .await
        .unwrap();
    (flag, client)
}

fn evaluations(series: &Value, variation: &str) -> i64 {
    series["variations"][variation]["evaluations"]
        .as_i64()
        .unwrap_or(0)
}

fn events(series: &Value, variation: &str, key: &str) -> i64 {
    series["variations"][variation]["events"][key]["count"]
        .as_i64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_evaluations_are_reported_and_add_up_exactly() {
    let server = TestServer::start().await;
    let (flag, client) = flag_and_client(
        &server,
        "dark-mode",
        json!({}),
        json!({"enabled": true}),
        |b| b.metrics_interval(Duration::from_millis(200)),
    )
    .await;
    let user = ContextBuilder::new("user-1").build();
    for _ in 0..30 {
        assert!(client.bool_value("dark-mode", &user, false));
    }
    for _ in 0..5 {
        assert_eq!(client.evaluate_all(&user).len(), 1);
    }
    // A missing flag counts nothing.
    assert!(!client.bool_value("missing", &user, false));
    // Reported while running: the first 35 arrive without closing.
    let series = insights_when(&server, &flag, |s| evaluations(s, "on") == 35).await;
    assert_eq!(evaluations(&series, "off"), 0);

    // The flag changes (a new snapshot) between two reports; nothing is lost.
    server
        .configure(&flag, json!({"fallthrough": {"variation": "off"}}))
        .await;
    let start = Instant::now();
    while client.bool_value("dark-mode", &user, false) {
        assert!(start.elapsed() < DEADLINE, "the change never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Those polling evaluations served "on" until the change arrived: count them.
    let series = insights_when(&server, &flag, |s| evaluations(s, "off") >= 1).await;
    let on_so_far = evaluations(&series, "on");
    for _ in 0..19 {
        assert!(!client.bool_value("dark-mode", &user, false));
    }
    // The rest go with close, at once.
    client.close().await;
    let series = insights_when(&server, &flag, |s| evaluations(s, "off") == 20).await;
    assert!(on_so_far >= 35);
    assert_eq!(evaluations(&series, "on"), on_so_far);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_events_are_sent_in_batches_and_attributed_by_the_server() {
    let server = TestServer::start().await;
    let (flag, client) = flag_and_client(
        &server,
        "checkout",
        json!({}),
        json!({"enabled": true, "watch_events": ["checkout_error"],
                "targets": [{"variation": "off", "values": ["legacy-user"]}]}),
        |b| b,
    )
    .await;
    // More than two server batches (1,000 each), from users served "on", and one from a
    // user targeted "off".
    for i in 0..2500 {
        let user = ContextBuilder::new(format!("user-{i}")).build();
        client.track("checkout_error", &user, Some(2.0));
    }
    client.track(
        "checkout_error",
        &ContextBuilder::new("legacy-user").build(),
        None,
    );
    client.track("nobody-watches", &ContextBuilder::new("u").build(), None);
    let series = insights_when(&server, &flag, |s| {
        events(s, "on", "checkout_error") == 2500 && events(s, "off", "checkout_error") == 1
    })
    .await;
    assert_eq!(
        series["variations"]["on"]["events"]["checkout_error"]["sum"],
        5000.0
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_off_nothing_is_sent() {
    let server = TestServer::start().await;
    let (flag, client) = flag_and_client(
        &server,
        "quiet",
        json!({}),
        json!({"enabled": true, "watch_events": ["clicked"]}),
        |b| {
            b.send_metrics(false)
                .metrics_interval(Duration::from_millis(100))
        },
    )
    .await;
    let user = ContextBuilder::new("user-1").build();
    for _ in 0..10 {
        assert!(client.bool_value("quiet", &user, false));
    }
    client.track("clicked", &user, None);
    client.close().await;
    // Several flushes later, nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let series = insights_when(&server, &flag, |_| true).await;
    assert_eq!(evaluations(&series, "on"), 0, "{series}");
    assert_eq!(events(&series, "on", "clicked"), 0, "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_sends_the_counts_of_an_interval_not_yet_over() {
    let server = TestServer::start().await;
    let (flag, client) = flag_and_client(
        &server,
        "banner",
        json!({}),
        json!({"enabled": true}),
        |b| b.metrics_interval(Duration::from_secs(3600)),
    )
    .await;
    let user = ContextBuilder::new("user-1").build();
    for _ in 0..7 {
        assert!(client.bool_value("banner", &user, false));
    }
    client.close().await;
    let series = insights_when(&server, &flag, |s| evaluations(s, "on") > 0).await;
    assert_eq!(evaluations(&series, "on"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_server_would_refuse_is_dropped_without_holding_up_others() {
    let server = TestServer::start().await;
    let (flag, client) = flag_and_client(
        &server,
        "checkout",
        json!({}),
        json!({"enabled": true, "watch_events": ["checkout_error"]}),
        |b| b,
    )
    .await;
    // A key the server would refuse is dropped at once (the server would refuse the whole
    // batch with it); the valid event sent with it arrives.
    client.track("not a key", &ContextBuilder::new("u").build(), None);
    client.track("checkout_error", &ContextBuilder::new("u2").build(), None);
    let series = insights_when(&server, &flag, |s| events(s, "on", "checkout_error") >= 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = insights_when(&server, &flag, |_| true).await;
    assert_eq!(events(&again, "on", "checkout_error"), 1, "{series}");
    client.close().await;
}
