//! Insights over HTTP: evaluations counted by the server (OFREP single and bulk, native
//! evaluate and bulk) and reported by SDKs add up exactly after a flush; tracked events are
//! attributed to the variation the bucketing formula gives each user; CSV has the JSON's
//! rows; the stale rules and the `stale` filter; bad input is refused whole.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, error_of, json_ok, json_status};

/// A flag (`key`) with its configuration patched in production, and a server key there.
struct Setup {
    project: String,
    prod: String,
    flag: String,
    key: String,
}

async fn setup(app: &TestApp, flag_key: &str, config: Value) -> Setup {
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let flag = app.create_flag(&project, flag_key).await;
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{flag}/environments/{prod}/config"),
            config,
        )
        .await,
    )
    .await;
    let key = app.api_key(&project, &prod, "server").await;
    Setup {
        project,
        prod,
        flag,
        key,
    }
}

async fn post_key(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.anonymous(Method::POST, path)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The flag's insights once `done` holds (the flush runs every 250 ms in tests).
async fn insights_when(
    app: &TestApp,
    s: &Setup,
    query: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!(
        "/api/v1/flags/{}/environments/{}/insights{query}",
        s.flag, s.prod
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let series = json_ok(app.get(&path).await).await;
        if done(&series) {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "insights never reached the expected counts: {series}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn evaluations(series: &Value, variation: &str) -> i64 {
    series["variations"][variation]["evaluations"]
        .as_i64()
        .unwrap_or(0)
}

/// The series' points as CSV rows (`start,variation,metric,count,sum`).
fn rows_of_json(series: &Value) -> Vec<String> {
    let mut rows = Vec::new();
    for p in series["points"].as_array().unwrap() {
        let (start, variation) = (
            p["start"].as_str().unwrap(),
            p["variation"].as_str().unwrap(),
        );
        rows.push(format!(
            "{start},{variation},evaluations,{},0",
            p["evaluations"]
        ));
        for (event, e) in p["events"].as_object().unwrap() {
            let sum = e["sum"].as_f64().unwrap();
            rows.push(format!(
                "{start},{variation},event:{event},{},{sum}",
                e["count"]
            ));
        }
    }
    rows
}

both_backends! {
    async fn ofrep_evaluate_and_sdk_counts_add_up_exactly_after_a_flush(app) {
        let s = setup(&app, "counted", json!({"enabled": true})).await;
        let ctx = json!({"context": {"targetingKey": "u1"}});
        for _ in 0..37 {
            json_ok(post_key(&app, &s.key, "/ofrep/v1/evaluate/flags/counted", ctx.clone()).await).await;
        }
        for _ in 0..5 {
            json_ok(post_key(&app, &s.key, "/ofrep/v1/evaluate/flags", ctx.clone()).await).await;
        }
        for _ in 0..3 {
            json_ok(post_key(&app, &s.key, "/api/v1/evaluate",
                json!({"flag_key": "counted", "context": {"targetingKey": "u1"}})).await).await;
        }
        for _ in 0..2 {
            json_ok(post_key(&app, &s.key, "/api/v1/evaluate/bulk",
                json!({"context": {"targetingKey": "u1"}, "flag_keys": ["counted", "missing"]})).await).await;
        }
        // A flag that does not exist is not counted anywhere.
        let r = post_key(&app, &s.key, "/ofrep/v1/evaluate/flags/missing", ctx.clone()).await;
        assert_eq!(r.status(), 404);

        let now = crate::utc_in(0);
        let report = json_status(post_key(&app, &s.key, "/api/v1/sdk/metrics", json!({
            "start": crate::utc_in(-60_000), "end": now,
            "flags": {"counted": {"on": 100, "off": 7, "maybe": 1}, "ghost": {"on": 3}}
        })).await, 202).await;
        assert_eq!(report["accepted"], 107);
        assert_eq!(report["ignored"], json!(["counted", "ghost"]));

        let server = 37 + 5 + 3 + 2;
        let series = insights_when(&app, &s, "", |v| evaluations(v, "on") >= server + 100 && evaluations(v, "off") >= 7).await;
        assert_eq!(evaluations(&series, "on"), server + 100, "{series}");
        assert_eq!(evaluations(&series, "off"), 7, "{series}");
        assert!(series["variations"].get("maybe").is_none(), "unknown variations are ignored: {series}");

        // The same counts by minute, in the summary, and the flag's lifecycle.
        let minutes = insights_when(&app, &s, "?step=minute", |v| evaluations(v, "on") == server + 100).await;
        assert_eq!(evaluations(&minutes, "off"), 7);
        let summary = json_ok(app.get(&format!("/api/v1/environments/{}/insights", s.prod)).await).await;
        let line = &summary["flags"][0];
        assert_eq!(line["flag_key"], "counted");
        assert_eq!(line["evaluations"], server + 107);
        assert_eq!(line["variations"], json!({"on": server + 100, "off": 7}));
        assert!(line["last_evaluated_at"].is_string(), "{summary}");
        let flag = json_ok(app.get(&format!("/api/v1/feature-flags/{}", s.flag)).await).await;
        assert!(flag["lifecycle"]["last_evaluated_at"].is_string(), "{flag}");
        assert_eq!(flag["lifecycle"]["stale"], false);

        // CSV: the JSON's rows, as a download.
        for query in ["", "?step=minute", "?step=day"] {
            let json = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/insights{query}", s.flag, s.prod)).await).await;
            let sep = if query.is_empty() { "?" } else { "&" };
            let r = app.get(&format!("/api/v1/flags/{}/environments/{}/insights{query}{sep}format=csv", s.flag, s.prod)).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
            assert!(r.headers()["content-disposition"].to_str().unwrap().contains("counted-insights.csv"));
            let csv = r.text().await.unwrap();
            let mut lines = csv.lines();
            assert_eq!(lines.next(), Some("start,variation,metric,count,sum"));
            assert_eq!(lines.map(str::to_owned).collect::<Vec<_>>(), rows_of_json(&json), "{query}");
        }
        let csv = app.get(&format!("/api/v1/environments/{}/insights?format=csv", s.prod)).await.text().await.unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("flag_key,name,evaluations,last_evaluated_at,stale"));
        let row = lines.next().unwrap();
        assert!(row.starts_with(&format!("counted,counted,{},", server + 107)), "{row}");
        assert!(row.ends_with(",false"), "{row}");
    }

    async fn tracked_events_are_attributed_to_the_variation_each_user_is_bucketed_into(app) {
        let s = setup(&app, "checkout", json!({
            "enabled": true,
            "fallthrough": {"rollout": {"variations": [
                {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}},
            "watch_events": ["checkout_error", "purchase"]
        })).await;
        // The bucketing formula of docs/evaluation.md: salt (the flag key) "." targetingKey.
        let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
        let mut events = Vec::new();
        for i in 0..400 {
            let user = format!("user-{i}");
            let variation = if vexil_core::hash::bucket("checkout", &user) < 50_000 { "on" } else { "off" };
            *expected.entry(variation).or_default() += 1;
            events.push(json!({"key": "checkout_error", "context": {"targetingKey": user}, "value": 2.5}));
        }
        assert!(expected["on"] > 150 && expected["off"] > 150, "{expected:?}");
        // Over two requests, with an event key nobody watches.
        let (first, second) = events.split_at(250);
        let r = json_status(post_key(&app, &s.key, "/api/v1/track", json!({"events": first})).await, 202).await;
        assert_eq!(r["accepted"], 250);
        let mut rest = second.to_vec();
        rest.push(json!({"key": "unwatched", "context": {"targetingKey": "u1"}}));
        let r = json_status(post_key(&app, &s.key, "/api/v1/track", json!({"events": rest})).await, 202).await;
        assert_eq!(r["accepted"], 150);
        assert_eq!(r["ignored"], json!(["unwatched"]));

        // A client key's events are attributed by client-side flags only: this flag is not.
        let client_key = app.api_key(&s.project, &s.prod, "client").await;
        let r = json_status(post_key(&app, &client_key, "/api/v1/track", json!({"events": [
            {"key": "checkout_error", "context": {"targetingKey": "user-1"}}]})).await, 202).await;
        assert_eq!(r["accepted"], 0);
        let count = |v: &Value, variation: &str| v["variations"][variation]["events"]["checkout_error"]["count"].as_i64().unwrap_or(0);
        let series = insights_when(&app, &s, "", |v| count(v, "on") + count(v, "off") == 400).await;
        assert_eq!(count(&series, "on"), expected["on"], "{series}");
        assert_eq!(count(&series, "off"), expected["off"], "{series}");
        assert_eq!(series["variations"]["on"]["events"]["checkout_error"]["sum"].as_f64().unwrap(), 2.5 * expected["on"] as f64);
        // Attribution evaluates without counting evaluations.
        assert_eq!(evaluations(&series, "on") + evaluations(&series, "off"), 0);
        assert!(series["variations"]["on"]["events"].get("unwatched").is_none());
    }

    async fn bad_reports_and_events_are_refused_whole(app) {
        let s = setup(&app, "guarded", json!({"enabled": true})).await;
        let e = error_of(post_key(&app, &s.key, "/api/v1/sdk/metrics", json!({
            "start": crate::utc_in(0), "end": crate::utc_in(-60_000), "flags": {"guarded": {"on": 1}}
        })).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["end"].is_string(), "{e}");
        let e = error_of(post_key(&app, &s.key, "/api/v1/sdk/metrics", json!({
            "start": "yesterday", "end": crate::utc_in(0), "flags": {}
        })).await, 400, "invalid_request").await;
        // Counts and values are bounded, so that stored sums cannot overflow.
        let big = error_of(post_key(&app, &s.key, "/api/v1/sdk/metrics", json!({
            "start": crate::utc_in(-1000), "end": crate::utc_in(0), "flags": {"guarded": {"on": 9_223_372_036_854_775_807_u64}}
        })).await, 400, "invalid_request").await;
        assert!(big["details"]["fields"]["flags.guarded.on"].is_string(), "{big}");
        error_of(post_key(&app, &s.key, "/api/v1/track", json!({"events": [
            {"key": "ok", "context": {}, "value": 1e300}]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["start"].is_string(), "{e}");
        let many: Vec<Value> = (0..1001).map(|_| json!({"key": "x", "context": {}})).collect();
        error_of(post_key(&app, &s.key, "/api/v1/track", json!({"events": many})).await, 400, "invalid_request").await;
        let e = error_of(post_key(&app, &s.key, "/api/v1/track", json!({"events": [
            {"key": "ok", "context": {}}, {"key": "not ok", "context": {}}]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["events[1].key"].is_string(), "{e}");
        let r = app.anonymous(Method::POST, "/api/v1/track").json(&json!({"events": []})).send().await.unwrap();
        assert_eq!(r.status(), 401);
        // Watched event keys are checked like any configuration field.
        let e = error_of(app.patch(&format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod),
            json!({"watch_events": ["fine", "fine"]})).await, 400, "invalid_request").await;
        assert!(e["details"]["fields"]["watch_events[1]"].is_string(), "{e}");
        // Windows: to after from, not wider than the step allows, known parameters only.
        let base = format!("/api/v1/flags/{}/environments/{}/insights", s.flag, s.prod);
        error_of(app.get(&format!("{base}?step=minute&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")).await, 400, "invalid_request").await;
        error_of(app.get(&format!("{base}?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z")).await, 400, "invalid_request").await;
        let r = app.get(&format!("{base}?format=xml")).await;
        assert_eq!(r.status(), 400);
        let r = app.get(&format!("/api/v1/flags/{}/environments/nope/insights", s.flag)).await;
        assert_eq!(r.status(), 404);
    }
}

fn stale_now(config: &mut vexil_server::Config) {
    config.stale_unused_days = 1;
    config.stale_single_variation_days = 0;
    config.stale_temporary_days = 0;
}

async fn stale_rules(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, stale_now).await else {
        return;
    };
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let key = app.api_key(&project, &prod, "server").await;
    let mut ids = BTreeMap::new();
    for (flag, temporary) in [
        ("temp", true),
        ("one-way", false),
        ("split", false),
        ("fresh", false),
    ] {
        let f = json_status(
            app.post(
                &format!("/api/v1/projects/{project}/feature-flags"),
                json!({"key": flag, "temporary": temporary}),
            )
            .await,
            201,
        )
        .await;
        ids.insert(flag, f["id"].as_str().unwrap().to_owned());
    }
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{}/environments/{prod}/config", ids["split"]),
            json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
                {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
        )
        .await,
    )
    .await;
    // one-way serves `off` (disabled) to everyone; split serves both.
    for i in 0..40 {
        for flag in ["one-way", "split"] {
            json_ok(
                post_key(
                    &app,
                    &key,
                    &format!("/ofrep/v1/evaluate/flags/{flag}"),
                    json!({"context": {"targetingKey": format!("u{i}")}}),
                )
                .await,
            )
            .await;
        }
    }
    let list = format!("/api/v1/projects/{project}/feature-flags");
    let deadline = Instant::now() + Duration::from_secs(10);
    let stale = loop {
        let stale = json_ok(app.get(&format!("{list}?stale=true")).await).await;
        if stale["total"] == 2 {
            break stale;
        }
        assert!(Instant::now() < deadline, "{stale}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let keys: Vec<&str> = stale["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["one-way", "temp"]);
    let reasons = |f: &Value| f["lifecycle"]["reasons"].clone();
    assert_eq!(
        reasons(&stale["items"][0]),
        json!(["served only variation 'off' in every environment for 0 days"])
    );
    assert_eq!(
        reasons(&stale["items"][1]),
        json!(["temporary flag created more than 0 days ago"])
    );
    let fresh = json_ok(app.get(&format!("{list}?stale=false")).await).await;
    let keys: Vec<&str> = fresh["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["fresh", "split"]);
    assert_eq!(
        fresh["items"][0]["lifecycle"]["last_evaluated_at"],
        Value::Null
    );
    // Paged like any listing.
    let page = json_ok(
        app.get(&format!("{list}?stale=true&limit=1&offset=1"))
            .await,
    )
    .await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["key"], "temp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_rules_sqlite() {
    stale_rules(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_rules_postgres() {
    stale_rules(Backend::Postgres).await;
}

fn counting_off(config: &mut vexil_server::Config) {
    config.no_evaluation_counts = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_counting_off_only_sdk_reports_count() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, counting_off).await else {
        return;
    };
    let s = setup(&app, "quiet", json!({"enabled": true})).await;
    for _ in 0..10 {
        json_ok(
            post_key(
                &app,
                &s.key,
                "/ofrep/v1/evaluate/flags/quiet",
                json!({"context": {"targetingKey": "u1"}}),
            )
            .await,
        )
        .await;
    }
    json_status(
        post_key(
            &app,
            &s.key,
            "/api/v1/sdk/metrics",
            json!({"start": crate::utc_in(-1000), "end": crate::utc_in(0), "flags": {"quiet": {"on": 4}}}),
        )
        .await,
        202,
    )
    .await;
    let series = insights_when(&app, &s, "", |v| evaluations(v, "on") >= 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = insights_when(&app, &s, "", |_| true).await;
    assert_eq!(evaluations(&series, "on"), 4);
    assert_eq!(evaluations(&again, "on"), 4);
    let _ = s.project;
}
