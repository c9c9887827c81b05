//! Environment promotion over HTTP, on both backends: copying flag configurations from
//! development into production (every flag, or the named ones) makes production serve the
//! same, with a revision and an audit entry per changed configuration naming the source;
//! copying again changes nothing; bad input and a copy that fails half-way change nothing.

use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

struct Setup {
    project: String,
    dev: String,
    prod: String,
    checkout: String,
    banner: String,
}

fn config_path(flag: &str, env: &str) -> String {
    format!("/api/v1/flags/{flag}/environments/{env}/config")
}

/// Development: the checkout on for Acme staff (a segment) and 25 % of everyone else; the
/// banner on; an archived flag that is on there.
async fn setup(app: &TestApp) -> Setup {
    let project = app.default_project().await;
    let dev = app.environment(&project, "development").await;
    let prod = app.environment(&project, "production").await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/segments"),
            json!({"key": "staff", "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]}]}),
        )
        .await,
        201,
    )
    .await;
    let checkout = app.create_flag(&project, "new-checkout").await;
    let banner = app.create_flag(&project, "banner").await;
    let old = app.create_flag(&project, "old-thing").await;
    json_ok(
        app.patch(
            &config_path(&checkout, &dev),
            json!({"enabled": true,
                   "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["staff"]}], "serve": {"variation": "on"}}],
                   "fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}}),
        )
        .await,
    )
    .await;
    json_ok(
        app.patch(&config_path(&banner, &dev), json!({"enabled": true}))
            .await,
    )
    .await;
    json_ok(
        app.patch(&config_path(&old, &dev), json!({"enabled": true}))
            .await,
    )
    .await;
    json_ok(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/feature-flags/{old}/archive"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    Setup {
        project,
        dev,
        prod,
        checkout,
        banner,
    }
}

impl Setup {
    fn copy(&self) -> String {
        format!(
            "/api/v1/projects/{}/environments/{}/copy",
            self.project, self.prod
        )
    }
}

/// A configuration without what differs between environments by nature.
fn served(config: &Value) -> Value {
    let mut c = config.clone();
    for k in ["environment_id", "environment_key", "version", "updated_at"] {
        c.as_object_mut().unwrap().remove(k);
    }
    c
}

both_backends! {
    async fn promotion_copies_development_into_production_all_or_nothing(app) {
        let s = setup(&app).await;
        let keys = |v: &Value, field: &str| -> Vec<String> {
            v[field].as_array().unwrap().iter().map(|c| c.as_str().map_or_else(|| c["flag_key"].as_str().unwrap().to_owned(), str::to_owned)).collect()
        };

        // Bad input changes nothing.
        for (body, field) in [
            (json!({"from_environment_id": "nope"}), "from_environment_id"),
            (json!({"from_environment_id": s.prod}), "from_environment_id"),
            (json!({"from_environment_id": s.dev, "flag_ids": ["nope"]}), "flag_ids[0]"),
            (json!({"from_environment_id": s.dev, "flag_ids": [s.banner, s.banner]}), "flag_ids[1]"),
        ] {
            let e = error_of(app.post(&s.copy(), body.clone()).await, 400, "invalid_request").await;
            assert!(e["details"]["fields"].get(field).is_some(), "{body} → {e}");
        }

        // Every flag that is not archived.
        let copied = json_ok(app.post(&s.copy(), json!({"from_environment_id": s.dev, "comment": "release 42"})).await).await;
        assert_eq!(keys(&copied, "changed"), ["banner", "new-checkout"]);
        assert_eq!(keys(&copied, "unchanged"), Vec::<String>::new());
        for flag in [&s.checkout, &s.banner] {
            let dev = json_ok(app.get(&config_path(flag, &s.dev)).await).await;
            let prod = json_ok(app.get(&config_path(flag, &s.prod)).await).await;
            assert_eq!(served(&prod), served(&dev), "production serves what development does");
        }
        let revisions = json_ok(app.get(&format!("{}/revisions", config_path(&s.checkout, &s.prod))).await).await;
        assert_eq!(revisions["items"][0]["comment"], "copied from development: release 42");
        // Production evaluates it: staff by the segment, a key for production.
        let key = app.api_key(&s.project, &s.prod, "server").await;
        let r = app.anonymous(reqwest::Method::POST, "/api/v1/evaluate").bearer_auth(&key)
            .json(&json!({"flag_key": "new-checkout", "context": {"targetingKey": "ann", "email": "ann@acme.com"}}))
            .send().await.unwrap();
        assert_eq!(json_ok(r).await["reason"]["kind"], "RULE_MATCH");

        // Again: nothing to change.
        let again = json_ok(app.post(&s.copy(), json!({"from_environment_id": s.dev})).await).await;
        assert_eq!(keys(&again, "changed"), Vec::<String>::new());
        assert_eq!(keys(&again, "unchanged"), ["banner", "new-checkout"]);

        // Named flags only.
        json_ok(app.patch(&config_path(&s.banner, &s.dev), json!({"enabled": false})).await).await;
        json_ok(app.patch(&config_path(&s.checkout, &s.dev), json!({"fallthrough": {"variation": "on"}})).await).await;
        let named = json_ok(app.post(&s.copy(), json!({"from_environment_id": s.dev, "flag_ids": [s.banner]})).await).await;
        assert_eq!(keys(&named, "changed"), ["banner"]);
        assert_eq!(json_ok(app.get(&config_path(&s.checkout, &s.prod)).await).await["fallthrough"]["rollout"]["variations"][0]["weight"], 25000);

        // All or nothing: a release plan owns production's checkout default, so copying
        // every flag fails on it, and the banner (changed again in development) stays.
        json_status(app.post(&format!("/api/v1/flags/{}/environments/{}/release", s.checkout, s.prod), json!({"auto_advance": false})).await, 201).await;
        json_ok(app.patch(&config_path(&s.banner, &s.dev), json!({"enabled": true})).await).await;
        let banner_before = json_ok(app.get(&config_path(&s.banner, &s.prod)).await).await["version"].clone();
        let e = error_of(app.post(&s.copy(), json!({"from_environment_id": s.dev})).await, 409, "release_running").await;
        assert!(e["message"].as_str().unwrap().starts_with("flag 'new-checkout': "), "{e}");
        assert_eq!(json_ok(app.get(&config_path(&s.banner, &s.prod)).await).await["version"], banner_before);

        // A target that requires approval refuses copies (propose each change instead).
        json_ok(app.patch(&format!("/api/v1/environments/{}", s.dev), json!({"requires_approval": true})).await).await;
        let back = format!("/api/v1/projects/{}/environments/{}/copy", s.project, s.dev);
        error_of(app.post(&back, json!({"from_environment_id": s.prod})).await, 409, "approval_required").await;
    }
}
