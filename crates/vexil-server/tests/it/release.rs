//! Release control over HTTP: scheduled changes applied at their time (once, with two nodes;
//! at the next start when every node was down; `failed` when they no longer validate or the
//! author lost the role), and change requests with four-eyes approval (the author cannot
//! approve, a viewer cannot, a stale approval is refused, the kill switch is never held),
//! with the audit entries every step leaves.

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, error_of, json_ok, json_status, utc_in as in_ms};

/// A flag in the default project, with an API key for its production environment.
struct Setup {
    org: String,
    project: String,
    prod: String,
    dev: String,
    flag: String,
    key: String,
}

async fn setup(app: &TestApp, flag_key: &str) -> Setup {
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let dev = app.environment(&project, "development").await;
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": flag_key}),
        )
        .await,
        201,
    )
    .await;
    let key = app.api_key(&project, &prod, "server").await;
    let orgs = json_ok(app.get("/api/v1/organizations").await).await;
    Setup {
        org: orgs["items"][0]["id"].as_str().unwrap().to_owned(),
        project,
        prod,
        dev,
        flag: flag["id"].as_str().unwrap().to_owned(),
        key,
    }
}

/// What OFREP serves for `flag` with `key`.
async fn served(app: &TestApp, key: &str, flag: &str) -> Value {
    let r = app
        .anonymous(Method::POST, &format!("/ofrep/v1/evaluate/flags/{flag}"))
        .bearer_auth(key)
        .json(&json!({"context": {"targetingKey": "u1"}}))
        .send()
        .await
        .unwrap();
    json_ok(r).await["value"].clone()
}

/// Waits until OFREP serves `value` for `flag`; returns when it first did.
async fn until_served(
    app: &TestApp,
    key: &str,
    flag: &str,
    value: Value,
    limit: Duration,
) -> Instant {
    let started = Instant::now();
    loop {
        if served(app, key, flag).await == value {
            return Instant::now();
        }
        assert!(started.elapsed() < limit, "{flag} never served {value}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A service token of the organization with `role`, as a bearer credential.
async fn service_token(app: &TestApp, org: &str, name: &str, role: &str) -> String {
    let token = json_status(
        app.post(
            "/api/v1/tokens",
            json!({"name": name, "kind": "service", "organization_id": org, "role": role}),
        )
        .await,
        201,
    )
    .await;
    token["token"].as_str().unwrap().to_owned()
}

async fn send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut b = app.anonymous(method, path).bearer_auth(token);
    if let Some(body) = body {
        b = b.json(&body);
    }
    b.send().await.unwrap()
}

/// The actions of the audit entries filed under `resource_id`, oldest first.
async fn actions_of(app: &TestApp, resource_id: &str) -> Vec<(String, String, Option<String>)> {
    let page = json_ok(
        app.get(&format!(
            "/api/v1/audit-logs?resource_id={resource_id}&limit=100"
        ))
        .await,
    )
    .await;
    let mut items: Vec<(String, String, Option<String>)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"]["name"].as_str().unwrap().to_owned(),
                e["comment"].as_str().map(str::to_owned),
            )
        })
        .collect();
    items.reverse();
    items
}

both_backends! {
    async fn a_scheduled_change_applies_at_its_time_once(app) {
        let s = setup(&app, "launch").await;
        let at = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.prod);
        assert_eq!(served(&app, &s.key, "launch").await, false);

        // Validated when made: a time that is not in the future, a missing time, a patch
        // naming an unknown variation.
        let bad = error_of(app.post(&at, json!({"execute_at": in_ms(-1000), "patch": {"enabled": true}})).await, 400, "invalid_request").await;
        assert!(bad["details"]["fields"]["execute_at"].is_string(), "{bad}");
        error_of(app.post(&at, json!({"patch": {"enabled": true}})).await, 400, "invalid_request").await;
        let bad = error_of(app.post(&at, json!({"execute_at": in_ms(5000), "patch": {"fallthrough": {"variation": "maybe"}}})).await, 400, "invalid_request").await;
        assert!(bad["details"]["fields"].as_object().unwrap().keys().any(|k| k.starts_with("patch.fallthrough")), "{bad}");

        let execute_at = in_ms(2000);
        let made = json_status(app.post(&at, json!({"execute_at": execute_at, "patch": {"enabled": true}, "comment": "launch day"})).await, 201).await;
        assert_eq!(made["status"], "pending");
        assert_eq!(made["patch"], json!({"enabled": true}));
        assert_eq!(made["created_by"]["name"], "bootstrap");
        let id = made["id"].as_str().unwrap();
        // Listed under the flag and the project.
        let listed = json_ok(app.get(&at).await).await;
        assert_eq!(listed["total"], 1);
        let project = json_ok(app.get(&format!("/api/v1/projects/{}/scheduled-changes?status=pending", s.project)).await).await;
        assert_eq!(project["items"][0]["id"], id);

        // Nothing happens before its time; within a second after it, OFREP serves it.
        assert_eq!(served(&app, &s.key, "launch").await, false);
        until_served(&app, &s.key, "launch", json!(true), Duration::from_secs(6)).await;
        let done = json_ok(app.get(&format!("/api/v1/scheduled-changes/{id}")).await).await;
        assert_eq!(done["status"], "applied", "{done}");
        assert!(done["applied_at"].as_str().unwrap() >= execute_at.as_str());

        // One new version, made by the scheduler for the person who scheduled it.
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod)).await).await;
        assert_eq!(config["version"], 2);
        let trail = actions_of(&app, &s.flag).await;
        let updates: Vec<_> = trail.iter().filter(|(a, _, _)| a == "flag_config.update").collect();
        assert_eq!(updates.len(), 1, "{trail:?}");
        assert_eq!(updates[0].1, "scheduler");
        assert_eq!(updates[0].2.as_deref(), Some("scheduled by bootstrap: launch day"));
        let steps: Vec<String> = actions_of(&app, id).await.into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(steps, ["scheduled_change.create", "scheduled_change.apply"]);

        // Settled: it cannot be cancelled any more.
        error_of(app.delete(&format!("/api/v1/scheduled-changes/{id}")).await, 409, "conflict").await;
    }

    async fn a_cancelled_schedule_never_applies_and_a_broken_one_fails_with_its_reason(app) {
        let s = setup(&app, "promo").await;
        let at = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.dev);
        let cancelled = json_status(app.post(&at, json!({"execute_at": in_ms(1500), "patch": {"enabled": true}})).await, 201).await;
        let id = cancelled["id"].as_str().unwrap();
        let gone = json_ok(app.delete(&format!("/api/v1/scheduled-changes/{id}")).await).await;
        assert_eq!(gone["status"], "cancelled");

        // A rule on a segment that is deleted before the change's time.
        let segment = json_status(app.post(&format!("/api/v1/projects/{}/segments", s.project),
            json!({"key": "beta", "included": ["u1"]})).await, 201).await;
        let patch = json!({"enabled": true, "rules": [{"clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}]});
        let broken = json_status(app.post(&at, json!({"execute_at": in_ms(1500), "patch": patch})).await, 201).await;
        json_status(app.delete(&format!("/api/v1/segments/{}", segment["id"].as_str().unwrap())).await, 204).await;

        tokio::time::sleep(Duration::from_millis(2500)).await;
        let broken = json_ok(app.get(&format!("/api/v1/scheduled-changes/{}", broken["id"].as_str().unwrap())).await).await;
        assert_eq!(broken["status"], "failed", "{broken}");
        assert!(broken["error"].as_str().unwrap().contains("beta"), "{broken}");
        let cancelled = json_ok(app.get(&format!("/api/v1/scheduled-changes/{id}")).await).await;
        assert_eq!(cancelled["status"], "cancelled");
        // Neither changed the configuration.
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.dev)).await).await;
        assert_eq!(config["version"], 1);
        let steps: Vec<String> = actions_of(&app, broken["id"].as_str().unwrap()).await.into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(steps, ["scheduled_change.create", "scheduled_change.fail"]);
        let failed = json_ok(app.get(&format!("/api/v1/projects/{}/scheduled-changes?status=failed", s.project)).await).await;
        assert_eq!(failed["total"], 1);
        error_of(app.get(&format!("/api/v1/projects/{}/scheduled-changes?status=later", s.project)).await, 400, "invalid_request").await;
    }

    async fn the_authors_role_is_checked_again_when_the_change_runs(app) {
        let s = setup(&app, "gated").await;
        let editor = service_token(&app, &s.org, "planner", "editor").await;
        let at = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.dev);
        // A viewer may not schedule; an editor may (development is not protected), but not
        // in protected production.
        let viewer = service_token(&app, &s.org, "reader", "viewer").await;
        error_of(send(&app, &viewer, Method::POST, &at, Some(json!({"execute_at": in_ms(1500), "patch": {"enabled": true}}))).await, 403, "forbidden").await;
        let prod_at = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.prod);
        error_of(send(&app, &editor, Method::POST, &prod_at, Some(json!({"execute_at": in_ms(1500), "patch": {"enabled": true}}))).await, 403, "forbidden").await;
        let made = json_status(send(&app, &editor, Method::POST, &at, Some(json!({"execute_at": in_ms(1500), "patch": {"enabled": true}}))).await, 201).await;
        // The token is revoked before the time comes.
        let tokens = json_ok(app.get("/api/v1/tokens?limit=500").await).await;
        let planner = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "planner").unwrap();
        json_ok(app.patch(&format!("/api/v1/tokens/{}/revoke", planner["id"].as_str().unwrap()), json!({})).await).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let made = json_ok(app.get(&format!("/api/v1/scheduled-changes/{}", made["id"].as_str().unwrap())).await).await;
        assert_eq!(made["status"], "failed", "{made}");
        assert!(made["error"].as_str().unwrap().contains("revoked"), "{made}");
    }

    async fn a_schedule_whose_time_passed_while_the_server_was_down_applies_at_start(app) {
        let s = setup(&app, "overnight").await;
        let at = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.prod);
        json_status(app.post(&at, json!({"execute_at": in_ms(1000), "patch": {"enabled": true}})).await, 201).await;
        app.stop().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        app.restart().await;
        until_served(&app, &s.key, "overnight", json!(true), Duration::from_secs(3)).await;
        let listed = json_ok(app.get(&at).await).await;
        assert_eq!(listed["items"][0]["status"], "applied");
    }

    async fn change_requests_need_another_members_approval(app) {
        let s = setup(&app, "checkout").await;
        let env_path = format!("/api/v1/environments/{}", s.prod);
        // On in production (version 2) before admins set requires_approval there.
        let config = format!("/api/v1/flags/{}/environments/{}/config", s.flag, s.prod);
        json_ok(app.patch(&config, json!({"enabled": true})).await).await;
        let editor = service_token(&app, &s.org, "ada", "editor").await;
        let admin = service_token(&app, &s.org, "grace", "admin").await;
        let viewer = service_token(&app, &s.org, "vic", "viewer").await;
        error_of(send(&app, &editor, Method::PATCH, &env_path, Some(json!({"requires_approval": true}))).await, 403, "forbidden").await;
        let env = json_ok(send(&app, &admin, Method::PATCH, &env_path, Some(json!({"requires_approval": true}))).await).await;
        assert_eq!(env["requires_approval"], true);

        // Direct changes are refused there, and so is scheduling one; the kill switch is not.
        let refused = error_of(app.patch(&config, json!({"enabled": true})).await, 409, "approval_required").await;
        assert!(refused["message"].as_str().unwrap().contains("change request"), "{refused}");
        error_of(app.patch(&format!("{config}/toggle"), json!({})).await, 409, "approval_required").await;
        error_of(app.post(&format!("{config}/revisions/1/restore"), json!({})).await, 409, "approval_required").await;
        let bulk = json!({"action": "disable", "flag_ids": [s.flag], "environment_id": s.prod});
        error_of(app.post(&format!("/api/v1/projects/{}/feature-flags/bulk", s.project), bulk).await, 409, "approval_required").await;
        error_of(app.put("/v1/feature-flags/checkout?environment=production", json!({"enabled": false})).await, 409, "approval_required").await;
        let scheduled = format!("/api/v1/flags/{}/environments/{}/scheduled-changes", s.flag, s.prod);
        error_of(app.post(&scheduled, json!({"execute_at": in_ms(5000), "patch": {"enabled": true}})).await, 409, "approval_required").await;

        // Proposed by an editor (a viewer may not propose).
        let requests = format!("/api/v1/flags/{}/environments/{}/change-requests", s.flag, s.prod);
        let body = json!({"patch": {"enabled": true, "fallthrough": {"variation": "on"}}, "comment": "go live"});
        error_of(send(&app, &viewer, Method::POST, &requests, Some(body.clone())).await, 403, "forbidden").await;
        let cr = json_status(send(&app, &editor, Method::POST, &requests, Some(body)).await, 201).await;
        assert_eq!(cr["status"], "open");
        assert_eq!(cr["base_version"], 2);
        let id = cr["id"].as_str().unwrap().to_owned();
        let cr_path = format!("/api/v1/change-requests/{id}");

        // Not applied before approval; a viewer cannot approve, nor an editor in protected
        // production (the change needs an admin), nor the author.
        error_of(send(&app, &editor, Method::POST, &format!("{cr_path}/apply"), None).await, 409, "conflict").await;
        error_of(send(&app, &editor, Method::POST, &format!("{cr_path}/approve"), Some(json!({}))).await, 403, "forbidden").await;
        let mine = json_status(app.post(&requests, json!({"patch": {"enabled": true}})).await, 201).await;
        let own = error_of(app.post(&format!("/api/v1/change-requests/{}/approve", mine["id"].as_str().unwrap()), json!({})).await, 403, "forbidden").await;
        assert!(own["message"].as_str().unwrap().contains("another member"), "{own}");
        json_ok(app.delete(&format!("/api/v1/change-requests/{}", mine["id"].as_str().unwrap())).await).await;
        error_of(send(&app, &viewer, Method::POST, &format!("{cr_path}/approve"), None).await, 403, "forbidden").await;
        let other_editor = service_token(&app, &s.org, "bob", "editor").await;
        error_of(send(&app, &other_editor, Method::POST, &format!("{cr_path}/approve"), None).await, 403, "forbidden").await;

        // An admin approves at version 2.
        let approved = json_ok(send(&app, &admin, Method::POST, &format!("{cr_path}/approve"), Some(json!({"comment": "ship it"}))).await).await;
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["approved_version"], 2);
        assert_eq!(approved["reviews"][0]["decision"], "approve");
        assert_eq!(approved["reviews"][0]["comment"], "ship it");
        // Approving it again changes nothing.
        let again = json_ok(send(&app, &admin, Method::POST, &format!("{cr_path}/approve"), None).await).await;
        assert_eq!(again["reviews"].as_array().unwrap().len(), 1, "{again}");

        // The kill switch is never held: it changes the configuration (version 3)…
        json_ok(app.post(&format!("/api/v1/feature-flags/{}/kill-switch", s.flag), json!({"reason": "incident"})).await).await;
        let now = json_ok(app.get(&config).await).await;
        assert_eq!(now["version"], 3);
        // …so the approval is stale: refused, and the request is open again.
        let stale = error_of(send(&app, &editor, Method::POST, &format!("{cr_path}/apply"), None).await, 409, "stale").await;
        assert!(stale["message"].as_str().unwrap().contains("new approval"), "{stale}");
        let reopened = json_ok(app.get(&cr_path).await).await;
        assert_eq!(reopened["status"], "open");

        // Approved again, applied by its author.
        json_ok(send(&app, &admin, Method::POST, &format!("{cr_path}/approve"), None).await).await;
        let applied = json_ok(send(&app, &editor, Method::POST, &format!("{cr_path}/apply"), None).await).await;
        assert_eq!(applied["status"], "applied");
        assert_eq!(served(&app, &s.key, "checkout").await, true);
        let now = json_ok(app.get(&config).await).await;
        assert_eq!(now["version"], 4);

        // Every step is audited; the configuration change names the author and approver.
        let steps: Vec<String> = actions_of(&app, &id).await.into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(steps, ["change_request.create", "change_request.approve", "change_request.stale",
            "change_request.approve", "change_request.apply"]);
        let trail = actions_of(&app, &s.flag).await;
        let last = trail.iter().rev().find(|(a, _, _)| a == "flag_config.update").unwrap();
        assert_eq!(last.1, "service token ada");
        assert_eq!(last.2.as_deref(), Some("change request by service token ada, approved by service token grace, service token grace: go live"));

        // A rejected request is final; the project's queue lists what is open.
        let second = json_status(send(&app, &editor, Method::POST, &requests, Some(json!({"patch": {"enabled": false}}))).await, 201).await;
        let open = json_ok(app.get(&format!("/api/v1/projects/{}/change-requests?status=open", s.project)).await).await;
        assert_eq!(open["total"], 1);
        assert_eq!(open["items"][0]["id"], second["id"]);
        let second_path = format!("/api/v1/change-requests/{}", second["id"].as_str().unwrap());
        let rejected = json_ok(send(&app, &admin, Method::POST, &format!("{second_path}/reject"), Some(json!({"comment": "not now"}))).await).await;
        assert_eq!(rejected["status"], "rejected");
        error_of(send(&app, &admin, Method::POST, &format!("{second_path}/approve"), None).await, 409, "conflict").await;
        // A third one is cancelled by its author.
        let third = json_status(send(&app, &editor, Method::POST, &requests, Some(json!({"patch": {"enabled": false}}))).await, 201).await;
        let cancelled = json_ok(send(&app, &editor, Method::DELETE, &format!("/api/v1/change-requests/{}", third["id"].as_str().unwrap()), None).await).await;
        assert_eq!(cancelled["status"], "cancelled");
        // A scheduled change's id is not a change request's.
        error_of(app.get(&format!("/api/v1/scheduled-changes/{id}")).await, 404, "not_found").await;
    }

    async fn an_approved_request_with_a_time_applies_then(app) {
        let s = setup(&app, "timed").await;
        let admin = service_token(&app, &s.org, "grace", "admin").await;
        let requests = format!("/api/v1/flags/{}/environments/{}/change-requests", s.flag, s.prod);
        let cr = json_status(app.post(&requests, json!({"patch": {"enabled": true}, "execute_at": in_ms(1500)})).await, 201).await;
        let path = format!("/api/v1/change-requests/{}", cr["id"].as_str().unwrap());
        json_ok(send(&app, &admin, Method::POST, &format!("{path}/approve"), None).await).await;
        until_served(&app, &s.key, "timed", json!(true), Duration::from_secs(4)).await;
        let done = json_ok(app.get(&path).await).await;
        assert_eq!(done["status"], "applied");
        let trail = actions_of(&app, &s.flag).await;
        let update = trail.iter().rev().find(|(a, _, _)| a == "flag_config.update").unwrap();
        assert_eq!(update.1, "scheduler");
    }
}

/// Two nodes on one PostgreSQL database: each scheduled change is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_nodes_each_scheduled_change_applies_once() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.sibling().await;
    let s = setup(&a, "twin").await;
    let at = format!(
        "/api/v1/flags/{}/environments/{}/scheduled-changes",
        s.flag, s.dev
    );
    // Alternating values at the same instant and just after: every one must apply once.
    let when = in_ms(2000);
    let mut ids = Vec::new();
    for (i, variation) in ["on", "off", "on", "off", "on"].iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let made = json_status(
            node.post(&at, json!({"execute_at": when, "patch": {"enabled": true, "fallthrough": {"variation": variation}}}))
                .await,
            201,
        )
        .await;
        ids.push(made["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for id in &ids {
        let done = json_ok(b.get(&format!("/api/v1/scheduled-changes/{id}")).await).await;
        assert_eq!(done["status"], "applied", "{done}");
        let steps: Vec<String> = actions_of(&a, id)
            .await
            .into_iter()
            .map(|(a, _, _)| a)
            .collect();
        assert_eq!(steps, ["scheduled_change.create", "scheduled_change.apply"]);
    }
    // Five changes, five versions (the first enables and sets `on`; each next one flips).
    let config = json_ok(
        a.get(&format!(
            "/api/v1/flags/{}/environments/{}/config",
            s.flag, s.dev
        ))
        .await,
    )
    .await;
    assert_eq!(config["version"], 6, "{config}");
    let trail = actions_of(&a, &s.flag).await;
    let updates = trail
        .iter()
        .filter(|(a, _, _)| a == "flag_config.update")
        .count();
    assert_eq!(updates, 5, "{trail:?}");
}
