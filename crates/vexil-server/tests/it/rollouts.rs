//! Guarded staged rollouts (release plans) over HTTP, on both backends: the chat-widget
//! scenario — a plan keyed by `customerId` with an internal customer allow-listed and one
//! customer deny-listed; the share an SDK computes from the served ruleset matches each
//! stage's weight for 10,000 customers and nobody leaves the treatment when a stage rises;
//! tracked `error` events at 8 % for the treatment roll the plan back within a guard
//! interval and OFREP serves the control to everyone outside the allow list; healthy
//! traffic advances a plan by itself to 100 %. Also the plan's rules: validation, one live
//! plan, the fallthrough it owns, pause/resume/cancel, the audit trail.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use vexil_core::{Context, Ruleset, Snapshot};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

const CUSTOMERS: usize = 10_000;
const INTERNAL: &str = "acme-internal";
const DENIED: &str = "globex";

fn customer(i: usize) -> String {
    format!("customer-{i:05}")
}

/// A boolean flag with the allow rule (the internal customer gets `on`) and the deny rule
/// (one customer gets `off`) in production, and a server key there.
struct Setup {
    prod: String,
    flag: String,
    key: String,
    project: String,
}

async fn setup(app: &TestApp, flag_key: &str) -> Setup {
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let flag = app.create_flag(&project, flag_key).await;
    let rule = |value: &str, serve: &str| {
        json!({"clauses": [{"attribute": "customerId", "op": "in", "values": [value]}],
               "serve": {"variation": serve}})
    };
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{flag}/environments/{prod}/config"),
            json!({"rules": [rule(INTERNAL, "on"), rule(DENIED, "off")]}),
        )
        .await,
    )
    .await;
    let key = app.api_key(&project, &prod, "server").await;
    Setup {
        prod,
        flag,
        key,
        project,
    }
}

impl Setup {
    fn release(&self, rest: &str) -> String {
        format!(
            "/api/v1/flags/{}/environments/{}/release{rest}",
            self.flag, self.prod
        )
    }
}

async fn with_key(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = app.anonymous(method, path).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    // Reports and tracked events are accepted (202), evaluations answered (200).
    let status = response.status().as_u16();
    assert!(status == 200 || status == 202, "{path}: {status}");
    response.json().await.unwrap()
}

/// What an SDK would compute: the ruleset the server serves, evaluated locally.
async fn sdk_snapshot(app: &TestApp, key: &str) -> Snapshot {
    let ruleset = with_key(app, key, Method::GET, "/api/v1/sdk/config", None).await;
    let ruleset = Ruleset::from_json(&ruleset.to_string()).expect("a valid ruleset");
    Snapshot::compile(&ruleset).expect("it compiles")
}

fn ctx(customer: &str) -> Context {
    // The user differs from the customer: the plan moves whole customers.
    Context::try_from(
        json!({"targetingKey": format!("user-of-{customer}"), "customerId": customer}),
    )
    .unwrap()
}

fn serves(snapshot: &Snapshot, flag: &str, customer: &str) -> String {
    let detail = snapshot.evaluate(flag, &ctx(customer), 0);
    detail.variation.expect("a variation").to_owned()
}

/// The customers the SDK puts in the treatment, and a check of the allow and deny lists.
fn treated(snapshot: &Snapshot, flag: &str) -> BTreeSet<usize> {
    assert_eq!(
        serves(snapshot, flag, INTERNAL),
        "on",
        "the allow list always gets the treatment"
    );
    assert_eq!(
        serves(snapshot, flag, DENIED),
        "off",
        "the deny list never does"
    );
    (0..CUSTOMERS)
        .filter(|&i| serves(snapshot, flag, &customer(i)) == "on")
        .collect()
}

/// The plan once `done` holds, or a failure after `within`.
async fn plan_when(
    app: &TestApp,
    s: &Setup,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let plan = json_ok(app.get(&s.release("")).await).await;
        if done(&plan) {
            return plan;
        }
        assert!(
            Instant::now() < deadline,
            "the plan never got there: {plan:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An SDK's report of what it served, and `errors` tracked `error` events from customers
/// it served `variation`.
async fn traffic(app: &TestApp, s: &Setup, counts: Value, errors: &[String]) {
    let events: Vec<Value> = errors
        .iter()
        .map(|c| json!({"key": "error", "context": {"targetingKey": format!("user-of-{c}"), "customerId": c}}))
        .collect();
    app.report_and_track(&s.key, counts, &events).await;
}

async fn ofrep(app: &TestApp, s: &Setup, flag: &str, customer: &str) -> Value {
    let body =
        json!({"context": {"targetingKey": format!("user-of-{customer}"), "customerId": customer}});
    with_key(
        app,
        &s.key,
        Method::POST,
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        Some(body),
    )
    .await
}

both_backends! {
    async fn the_chat_widget_ramps_by_customer_and_rolls_back_when_errors_pass_five_percent(app) {
        let s = setup(&app, "chat-widget").await;
        let started = json_status(app.post(&s.release(""), json!({
            "bucket_by": "customerId",
            "auto_advance": false,
            "guard": {"event": "error", "max_rate": 0.05, "window": "1h", "min_samples": 200},
            "comment": "chat widget for everyone"
        })).await, 201).await;
        assert_eq!(started["status"], "running");
        assert_eq!(started["treatment"], "on");
        assert_eq!(started["control"], "off");
        assert_eq!(started["stage"], 0);
        let weights: Vec<u64> = started["stages"].as_array().unwrap().iter().map(|st| st["weight"].as_u64().unwrap()).collect();
        assert_eq!(weights, [1000, 10000, 50000, 100000], "the default tiers");
        // The plan turned the flag on, owns the fallthrough and watches the guard's event.
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod)).await).await;
        assert_eq!(config["enabled"], true);
        assert_eq!(config["fallthrough"]["rollout"]["bucket_by"], "customerId");
        assert_eq!(config["watch_events"], json!(["error"]));
        assert_eq!(config["rules"].as_array().unwrap().len(), 2, "the person's rules stay");

        // Each stage: the SDK-side share is exactly the bucketing formula's, close to the
        // weight, and grows without anyone leaving.
        let mut before = BTreeSet::new();
        for (stage, weight) in [(0, 1000u32), (1, 10000), (2, 50000)] {
            if stage > 0 {
                let plan = json_ok(app.post(&s.release("/advance"), json!({})).await).await;
                assert_eq!(plan["stage"], stage);
                assert_eq!(plan["weight"], weight);
            }
            let now = treated(&sdk_snapshot(&app, &s.key).await, "chat-widget");
            let expected: BTreeSet<usize> = (0..CUSTOMERS)
                .filter(|&i| vexil_core::hash::bucket("chat-widget", &customer(i)) < weight)
                .collect();
            assert_eq!(now, expected, "stage {stage}: the bucketing formula decides");
            let share = now.len() as f64 / CUSTOMERS as f64;
            let target = f64::from(weight) / 100_000.0;
            assert!((share - target).abs() < 0.015, "stage {stage}: {share} of customers for {target}");
            assert!(before.is_subset(&now), "stage {stage}: a customer left the treatment");
            before = now;
        }

        // 8 % of the treatment's evaluations end in an error: the guard rolls back.
        let treated_now: Vec<String> = before.iter().map(|&i| customer(i)).collect();
        let failing: Vec<String> = treated_now.iter().enumerate().filter(|(i, _)| i % 25 < 2).map(|(_, c)| c.clone()).collect();
        let plan = json_ok(app.get(&s.release("")).await).await;
        assert_eq!(plan["readings"]["verdict"], "waiting", "no evaluations yet: {plan:#}");
        let report_at = Instant::now();
        traffic(&app, &s, json!({"chat-widget": {"on": treated_now.len(), "off": CUSTOMERS - treated_now.len()}}), &failing).await;
        let plan = plan_when(&app, &s, Duration::from_secs(10), |p| p["status"] == "rolled_back").await;
        let took = report_at.elapsed();
        eprintln!("guard: events tracked to rollback in {took:?}");
        // The test server checks every 250 ms; a loaded CI machine may be slower.
        assert!(took < Duration::from_secs(8), "rolled back after {took:?} (the guard checks every 250 ms)");
        assert!(plan["reason"].as_str().unwrap().contains("error rate of on"), "{plan:#}");
        assert_eq!(plan["readings"]["verdict"], "tripped");
        assert!(plan["readings"]["variations"]["on"]["rate"].as_f64().unwrap() > 0.05);

        // OFREP serves the control to everyone outside the allow list.
        for c in treated_now.iter().step_by(25) {
            let r = ofrep(&app, &s, "chat-widget", c).await;
            assert_eq!(r["value"], false, "{c} after the rollback: {r}");
        }
        assert_eq!(ofrep(&app, &s, "chat-widget", INTERNAL).await["value"], true);
        assert_eq!(ofrep(&app, &s, "chat-widget", DENIED).await["value"], false);

        // The rollback is an audited configuration change with its revision, and a
        // `release.rollback` entry with the readings, by the release guard.
        let revisions = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config/revisions", s.flag, s.prod)).await).await;
        let latest = &revisions["items"][0];
        assert_eq!(latest["config"]["fallthrough"], json!({"variation": "off"}));
        assert!(latest["comment"].as_str().unwrap().starts_with("release plan rolled back: the guard tripped"), "{latest}");
        let audit = json_ok(app.get("/api/v1/audit-logs?resource_type=release").await).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["release.rollback", "release.advance", "release.advance", "release.start"]);
        let entry = &audit["items"][0];
        assert_eq!(entry["actor"]["name"], "release guard");
        assert_eq!(entry["after"]["readings"]["verdict"], "tripped");

        // Nothing more to do with it.
        error_of(app.post(&s.release("/advance"), json!({})).await, 409, "conflict").await;
        let _ = s.project;
    }

    async fn healthy_traffic_advances_a_plan_by_itself_to_one_hundred_percent(app) {
        let s = setup(&app, "chat-widget").await;
        json_status(app.post(&s.release(""), json!({
            "bucket_by": "customerId",
            "stages": [{"weight": 1000, "min_duration": "1s"}, {"weight": 10000, "min_duration": "1s"},
                       {"weight": 50000, "min_duration": "1s"}, {"weight": 100000}],
            "guard": {"event": "error", "max_rate": 0.05, "window": "1h", "min_samples": 100}
        })).await, 201).await;
        // Without evaluations the guard waits, and so does the plan.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let plan = json_ok(app.get(&s.release("")).await).await;
        assert_eq!(plan["stage"], 0, "{plan:#}");
        assert_eq!(plan["readings"]["verdict"], "waiting");
        assert!(plan["next_advance_at"].is_string());
        // 1 % errors: healthy. The plan climbs to 100 % and completes.
        let some: Vec<String> = (0..10).map(|i| customer(i * 997)).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stages_seen = BTreeSet::new();
        let plan = loop {
            let plan = json_ok(app.get(&s.release("")).await).await;
            stages_seen.insert(plan["stage"].as_u64().unwrap());
            if plan["status"] != "running" {
                break plan;
            }
            assert!(Instant::now() < deadline, "never completed: {plan:#}");
            traffic(&app, &s, json!({"chat-widget": {"on": 1000, "off": 1000}}), &some).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert_eq!(plan["status"], "completed", "{plan:#}");
        assert_eq!(plan["stage"], 3);
        assert!(stages_seen.contains(&0));
        // One stage at a time, each by the release guard.
        let audit = json_ok(app.get("/api/v1/audit-logs?resource_type=release").await).await;
        let steps: Vec<(String, u64, String)> = audit["items"].as_array().unwrap().iter().rev()
            .map(|e| (e["action"].as_str().unwrap().to_owned(), e["after"]["stage"].as_u64().unwrap(), e["actor"]["name"].as_str().unwrap().to_owned()))
            .collect();
        let guard = "release guard".to_owned();
        assert_eq!(steps[1..], [("release.advance".into(), 1, guard.clone()), ("release.advance".into(), 2, guard.clone()), ("release.complete".into(), 3, guard)]);
        assert_eq!(plan["readings"]["verdict"], "healthy", "a completed plan keeps its last readings");
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod)).await).await;
        assert_eq!(config["fallthrough"], json!({"variation": "on"}));
        for i in [1, 500, 9999] {
            assert_eq!(ofrep(&app, &s, "chat-widget", &customer(i)).await["value"], true);
        }
        assert_eq!(ofrep(&app, &s, "chat-widget", DENIED).await["value"], false, "the deny list stays");
        // The project's list shows it; a running filter does not.
        let all = json_ok(app.get(&format!("/api/v1/projects/{}/releases", s.project)).await).await;
        assert_eq!(all["total"], 1);
        let running = json_ok(app.get(&format!("/api/v1/projects/{}/releases?status=running,paused", s.project)).await).await;
        assert_eq!(running["total"], 0);
    }

    async fn a_plan_owns_the_fallthrough_is_alone_and_refuses_bad_input_whole(app) {
        let s = setup(&app, "chat-widget").await;
        error_of(app.get(&s.release("")).await, 404, "not_found").await;
        for (body, field) in [
            (json!({"treatment": "maybe"}), "treatment"),
            (json!({"treatment": "on", "control": "on"}), "control"),
            (json!({"stages": []}), "stages"),
            (json!({"stages": [{"weight": 5000, "min_duration": "1h"}, {"weight": 1000}]}), "stages[1].weight"),
            (json!({"stages": [{"weight": 100001}]}), "stages[0].weight"),
            (json!({"stages": [{"weight": 1000}, {"weight": 100000}]}), "stages[0].min_duration"),
            (json!({"stages": [{"weight": 1000, "min_duration": "soon"}, {"weight": 100000}]}), "stages[0].min_duration"),
            (json!({"stages": [{"weight": 1000, "min_duration": "1h"}, {"weight": 100000, "min_duration": "1h"}]}), "stages[1].min_duration"),
            (json!({"guard": {"event": "bad key!", "max_rate": 0.05}}), "guard.event"),
            (json!({"guard": {"event": "error", "max_rate": 1.5}}), "guard.max_rate"),
            (json!({"guard": {"event": "error", "max_rate": 0.05, "window": "30s"}}), "guard.window"),
            (json!({"guard": {"event": "error", "max_rate": 0.05, "min_samples": 0}}), "guard.min_samples"),
            (json!({"bucket_by": ""}), "bucket_by"),
            (json!({"bucket_by": " customerId"}), "bucket_by"),
            (json!({"stages": [{"weight": 1000, "min_duration": "1h"}, {"weight": 50000}]}), "stages[1].weight"),
        ] {
            let e = error_of(app.post(&s.release(""), body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].get(field).is_some(), "{body} → {e}");
        }
        // Nothing was started by the refusals.
        error_of(app.get(&s.release("")).await, 404, "not_found").await;

        json_status(app.post(&s.release(""), json!({"auto_advance": false})).await, 201).await;
        error_of(app.post(&s.release(""), json!({})).await, 409, "conflict").await;
        // The person keeps targets and rules but not the fallthrough.
        let config = format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod);
        error_of(app.patch(&config, json!({"fallthrough": {"variation": "on"}})).await, 409, "release_running").await;
        json_ok(app.patch(&config, json!({"targets": [{"variation": "on", "values": ["qa-user"]}]})).await).await;
        // Pause and resume; a paused plan cannot be paused again.
        assert_eq!(json_ok(app.post(&s.release("/pause"), json!({})).await).await["status"], "paused");
        error_of(app.post(&s.release("/pause"), json!({})).await, 409, "conflict").await;
        assert_eq!(json_ok(app.post(&s.release("/resume"), json!({})).await).await["status"], "running");
        // A rollback needs a reason.
        error_of(app.post(&s.release("/rollback"), json!({"reason": " "})).await, 400, "invalid_request").await;
        // Cancel leaves the configuration as it is, and gives the fallthrough back.
        let before = json_ok(app.get(&config).await).await;
        let cancelled = json_ok(app.delete(&s.release("")).await).await;
        assert_eq!(cancelled["status"], "cancelled");
        let after = json_ok(app.get(&config).await).await;
        assert_eq!(after["version"], before["version"]);
        json_ok(app.patch(&config, json!({"fallthrough": {"variation": "on"}})).await).await;
        // A person's rollback of a new plan, with the reason in the audit trail.
        json_status(app.post(&s.release(""), json!({"auto_advance": false})).await, 201).await;
        // A step on a plan that moved meanwhile (If-Match of an older version) is refused.
        let plan = json_ok(app.get(&s.release("")).await).await;
        let stale = format!("\"{}\"", plan["version"].as_i64().unwrap());
        json_ok(app.request(Method::POST, &s.release("/advance")).header("if-match", &stale).send().await.unwrap()).await;
        let r = app.request(Method::POST, &s.release("/advance")).header("if-match", &stale).send().await.unwrap();
        error_of(r, 412, "version_mismatch").await;
        assert_eq!(json_ok(app.get(&s.release("")).await).await["stage"], 1, "one advance, not two");
        // What the plan owns: the guard's event stays watched.
        json_ok(app.delete(&s.release("")).await).await;
        json_status(app.post(&s.release(""), json!({"auto_advance": false, "guard": {"event": "error", "max_rate": 0.05}})).await, 201).await;
        error_of(app.patch(&config, json!({"watch_events": []})).await, 409, "release_running").await;
        json_ok(app.patch(&config, json!({"watch_events": ["error", "slow"]})).await).await;
        // Neither archiving the flag nor requiring approval while it runs.
        error_of(app.request(Method::PATCH, &format!("/api/v1/feature-flags/{}/archive", s.flag)).send().await.unwrap(), 409, "release_running").await;
        error_of(app.patch(&format!("/api/v1/environments/{}", s.prod), json!({"requires_approval": true})).await, 409, "release_running").await;
        let rolled = json_ok(app.post(&s.release("/rollback"), json!({"reason": "  support tickets doubled "})).await).await;
        assert_eq!(rolled["status"], "rolled_back");
        assert_eq!(rolled["reason"], "support tickets doubled");
        assert_eq!(rolled["readings"]["verdict"], "waiting", "the readings of the moment are kept");
        assert_eq!(json_ok(app.get(&config).await).await["fallthrough"], json!({"variation": "off"}));
        // Where approval is required, or the flag is archived, no plan starts.
        json_ok(app.patch(&format!("/api/v1/environments/{}", s.prod), json!({"requires_approval": true})).await).await;
        error_of(app.post(&s.release(""), json!({})).await, 409, "approval_required").await;
        json_ok(app.patch(&format!("/api/v1/environments/{}", s.prod), json!({"requires_approval": false})).await).await;
        json_ok(app.request(Method::PATCH, &format!("/api/v1/feature-flags/{}/archive", s.flag)).send().await.unwrap()).await;
        error_of(app.post(&s.release(""), json!({})).await, 409, "conflict").await;
    }
}

/// Two nodes on one PostgreSQL database: the events tracked and evaluations counted on
/// node B reach the guard, whichever node holds its lease, and the rollback happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_roll_a_plan_back_once() {
    let Some(a) = TestApp::spawn(crate::Backend::Postgres).await else {
        return;
    };
    let b = a.sibling().await;
    let s = setup(&a, "chat-widget").await;
    json_status(
        a.post(
            &s.release(""),
            json!({"bucket_by": "customerId", "auto_advance": false,
                   "stages": [{"weight": 50000}, {"weight": 100000}],
                   "guard": {"event": "error", "max_rate": 0.05, "min_samples": 100}}),
        )
        .await,
        201,
    )
    .await;
    // Node B serves the traffic: OFREP evaluations it counts, and the errors it receives.
    let mut treated = Vec::new();
    for i in 0..400 {
        let c = customer(i);
        let r = ofrep(&b, &s, "chat-widget", &c).await;
        if r["value"] == true {
            treated.push(c);
        }
    }
    let failing: Vec<String> = treated.iter().step_by(10).cloned().collect();
    let events: Vec<Value> = failing
        .iter()
        .map(|c| json!({"key": "error", "context": {"targetingKey": format!("user-of-{c}"), "customerId": c}}))
        .collect();
    with_key(
        &b,
        &s.key,
        Method::POST,
        "/api/v1/track",
        Some(json!({"events": events})),
    )
    .await;
    let plan = plan_when(&a, &s, Duration::from_secs(10), |p| {
        p["status"] == "rolled_back"
    })
    .await;
    assert!(
        plan["reason"].as_str().unwrap().contains(&format!(
            "({} of {})",
            failing.len(),
            treated.len()
        )),
        "{plan:#}"
    );
    // Both nodes serve the control now, and the rollback was taken once.
    for node in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while ofrep(node, &s, "chat-widget", &treated[0]).await["value"] != false {
            assert!(
                Instant::now() < deadline,
                "a node still serves the treatment"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let audit = json_ok(
        a.get("/api/v1/audit-logs?resource_type=release&action=release.rollback")
            .await,
    )
    .await;
    assert_eq!(audit["total"], 1, "{audit:#}");
}
