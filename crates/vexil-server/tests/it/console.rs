//! The web console: its routes and headers over plain HTTP (on both backends), and the
//! work a person does in a real browser (headless Chromium over WebDriver, on SQLite):
//! sign in, create a flag, target and roll it out, evaluate it through OFREP with a key
//! made in the console, kill it, restore a revision, use a segment; a viewer sees no edit
//! controls and forged form posts are refused; 10,000 flags page and search; a webhook is
//! created, tested, its deliveries listed and redelivered, and refused to non-admins; a flag
//! template is created and a flag made from it, read-only for viewers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, redirect};

use serde_json::{Value, json};

use crate::webdriver::Browser;
use crate::{Backend, TestApp, both_backends, json_ok, json_status};

/// Adds a member with the instance token; returns the one-time password.
async fn add_member(app: &TestApp, email: &str, role: &str) -> String {
    let orgs = json_ok(app.get("/api/v1/organizations").await).await;
    let org = orgs["items"][0]["id"].as_str().expect("org").to_owned();
    let r = app
        .post(
            &format!("/api/v1/organizations/{org}/members"),
            json!({"email": email, "role": role}),
        )
        .await;
    json_status(r, 201).await["password"]
        .as_str()
        .expect("password")
        .to_owned()
}

/// A signed-in browser stand-in: the session cookie and the CSRF token of its forms.
struct Session<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

impl Session<'_> {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.app.url(path))
            .header("cookie", &self.cookie)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.request(Method::POST, path)
            .form(form)
            .send()
            .await
            .expect("POST")
    }
}

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// Signs in through the console's own form.
async fn sign_in<'a>(app: &'a TestApp, email: &str, password: &str) -> Session<'a> {
    let client = no_redirects();
    let form = client
        .get(app.url("/ui/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(form.status(), 200);
    let login_cookie = set_cookie(&form, "vexil_login");
    let html = form.text().await.expect("html");
    let token = between(&html, "name=\"token\" value=\"", "\"");
    let r = client
        .post(app.url("/ui/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("token", token.as_str()),
            ("next", "/ui/"),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 303);
    let cookie = set_cookie(&r, "vexil_session");
    let mut session = Session {
        app,
        client,
        cookie,
        csrf: String::new(),
    };
    let html = session.get("/ui/account").await.text().await.expect("html");
    session.csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    session
}

/// A member's first sign-in with the one-time password an admin got: the console sends
/// them to choose their own password (and nowhere else) first; then they sign in again.
async fn signed_in<'a>(app: &'a TestApp, email: &str, one_time: &str) -> Session<'a> {
    let first = sign_in(app, email, one_time).await;
    let r = first.get("/ui/default/default/flags").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/account");
    let own = format!("{one_time}-mine");
    let r = first
        .post(
            "/ui/account/password",
            &[
                ("csrf", &first.csrf),
                ("current_password", one_time),
                ("new_password", &own),
                ("repeat_password", &own),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login?done=password");
    // Every session ended with the change.
    assert_eq!(first.get("/ui/default/default/flags").await.status(), 303);
    let session = sign_in(app, email, &own).await;
    assert_eq!(session.get("/ui/default/default/flags").await.status(), 200);
    session
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("'{start}' not in:\n{text}"))
        + start.len();
    let to = text[from..].find(end).expect("end") + from;
    text[from..to].to_owned()
}

both_backends! {
    async fn the_console_is_behind_sign_in_with_its_own_policy(app) {
        let plain = no_redirects();
        let r = plain.get(app.url("/")).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/ui/");
        let r = plain.get(app.url("/ui/default/default/flags?q=x")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/ui/login?next=/ui/default/default/flags%3Fq%3Dx");
        let r = plain.get(app.url("/ui/login")).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");

        let password = add_member(&app, "ada@example.com", "admin").await;
        let ada = signed_in(&app, "ada@example.com", &password).await;
        // A form post without the session's CSRF token (as from another site) is refused,
        // and changes nothing.
        let r = ada.post("/ui/default/default/flags", &[("key", "forged")]).await;
        assert_eq!(r.status(), 403);
        let wrong = "0".repeat(64);
        let r = ada.post("/ui/default/default/flags", &[("csrf", &wrong), ("key", "forged")]).await;
        assert_eq!(r.status(), 403);
        let r = ada.post("/ui/default/default/flags", &[("csrf", &ada.csrf), ("key", "made-here")]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
        let project = app.default_project().await;
        let flags = json_ok(app.get(&format!("/api/v1/projects/{project}/feature-flags")).await).await;
        let keys: Vec<&str> = flags["items"].as_array().unwrap().iter().filter_map(|f| f["key"].as_str()).collect();
        assert_eq!(keys, ["made-here"]);

        // A viewer's valid form post is refused by the policy table, as the API would.
        let password = add_member(&app, "vic@example.com", "viewer").await;
        let vic = signed_in(&app, "vic@example.com", &password).await;
        let r = vic.post("/ui/default/default/flags/made-here/in/development/toggle", &[("csrf", &vic.csrf), ("to", "on")]).await;
        assert_eq!(r.status(), 403);
        let page = vic.get("/ui/default/default/flags/made-here/in/development").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(!html.contains("Save Development") && !html.contains("Kill switch"), "a viewer sees edit controls");
        // Keys of unknown or invisible things are "not found", as HTML.
        let r = vic.get("/ui/nope/default/flags").await;
        assert_eq!(r.status(), 404);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        // Assets are served under their hash with long-lived caching.
        let css = between(&html, "<link rel=\"stylesheet\" href=\"", "\"");
        let r = vic.get(&css).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    }
}

both_backends! {
    async fn people_settings_playground_and_audit_pages_work(app) {
        let password = add_member(&app, "ann@example.com", "admin").await;
        let ann = signed_in(&app, "ann@example.com", &password).await;
        let csrf = ann.csrf.clone();
        // People: a new member's one-time password is shown once.
        let r = ann.post("/ui/default/default/people", &[("csrf", &csrf), ("email", "bo@example.com"), ("role", "editor")]).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("One-time password for bo@example.com"), "{html}");
        let page = ann.get("/ui/default/default/people").await.text().await.unwrap();
        assert!(page.contains("bo@example.com") && !page.contains("One-time password"));
        let bo = signed_in(&app, "bo@example.com", between(&html, "readonly value=\"", "\"").as_str()).await;
        // A personal token, its secret shown once; it then works on the API.
        let r = bo.post("/ui/default/default/tokens", &[("csrf", &bo.csrf), ("name", "laptop"), ("kind", "personal")]).await;
        let html = r.text().await.unwrap();
        let token = between(&html, "readonly value=\"", "\"");
        let me = app.anonymous(Method::GET, "/api/v1/users/me").bearer_auth(&token).send().await.unwrap();
        assert_eq!(me.status(), 200);
        // An editor may not add members: the policy table says admin.
        let r = bo.post("/ui/default/default/people", &[("csrf", &bo.csrf), ("email", "x@example.com"), ("role", "viewer")]).await;
        assert_eq!(r.status(), 403);

        // Settings: a new environment, and every flag gets a configuration there.
        let r = ann.post("/ui/default/default/flags", &[("csrf", &csrf), ("key", "banner")]).await;
        assert_eq!(r.status(), 303);
        let r = ann.post("/ui/default/default/environments", &[("csrf", &csrf), ("key", "staging"), ("name", "Staging")]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
        let r = ann.get("/ui/default/default/flags/banner/in/staging").await;
        assert_eq!(r.status(), 200);
        let r = ann.post("/ui/default/default/environments", &[("csrf", &csrf), ("key", "bad key!")]).await;
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("key"));

        // Playground: every flag with value, variation and reason.
        let r = ann.get("/ui/default/default/playground?env=staging&context=%7B%22targetingKey%22%3A%22u1%22%7D").await;
        let html = r.text().await.unwrap();
        assert!(html.contains("banner") && html.contains("OFF"), "{html}");
        let r = ann.get("/ui/default/default/playground?env=staging&context=%7Bnope").await;
        assert!(r.text().await.unwrap().contains("not a valid evaluation context"));

        // Audit log: the organization's entries, the chain verified for admins.
        let html = ann.get("/ui/default/default/audit?resource=environment&verify=1").await.text().await.unwrap();
        assert!(html.contains("environment.create") && html.contains("chain verified"), "{html}");
        let html = bo.get("/ui/default/default/audit").await.text().await.unwrap();
        assert!(html.contains("flag.create") && !html.contains("chain verified"));
    }
}

#[test]
fn every_console_route_has_an_access_policy() {
    for (method, path) in vexil_server::ui::ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        assert!(
            vexil_server::http::authz::policy(&method, path).is_some(),
            "{method} {path} has no policy"
        );
    }
}

/// Evaluates `flag` through OFREP with `key` for a context.
async fn ofrep(app: &TestApp, key: &str, flag: &str, context: Value) -> Value {
    let r = app
        .anonymous(Method::POST, &format!("/ofrep/v1/evaluate/flags/{flag}"))
        .bearer_auth(key)
        .json(&json!({"context": context}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status == StatusCode::OK, "{status}: {body}");
    body
}

/// Where the browser tests leave screenshots: `VEXIL_SCREENSHOTS` (the README's come from
/// a run with `VEXIL_SCREENSHOTS=docs`), else a temporary directory.
fn screenshots() -> PathBuf {
    std::env::var_os("VEXIL_SCREENSHOTS").map_or_else(std::env::temp_dir, PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_releases_a_flag_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let password = add_member(&app, "alice@example.com", "admin").await;
    let ui = |path: &str| app.url(path);

    // Sign in: the console sends a stranger to the sign-in form and back.
    b.goto(&ui("/ui/")).await;
    assert!(b.url().await.contains("/ui/login"), "{}", b.url().await);
    b.fill("#email", "alice@example.com").await;
    b.fill("#password", &password).await;
    b.click("form button[type=submit]").await;
    // An admin set this password: choose one's own first, then sign in with it.
    b.wait_for_text("Choose your own").await;
    let own = "alice's own passphrase";
    b.fill("#current", &password).await;
    b.fill("#new", own).await;
    b.fill("#repeat", own).await;
    b.click("form[action='/ui/account/password'] button").await;
    b.wait_for_text("Password changed").await;
    b.fill("#email", "alice@example.com").await;
    b.fill("#password", own).await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("This project has no flags yet").await;
    assert!(
        b.url().await.ends_with("/ui/default/default/flags"),
        "{}",
        b.url().await
    );

    // A boolean flag.
    b.click("#new-flag summary").await;
    b.fill("#nf-key", "checkout").await;
    b.fill("#nf-name", "New checkout").await;
    b.click("#new-flag button[type=submit]").await;
    b.wait_for_text("Individual targets").await;
    assert!(
        b.url().await.contains("/flags/checkout/in/production"),
        "{}",
        b.url().await
    );

    // A rule `email ends_with @acme.com → on` and a 25 % rollout for everyone else.
    b.click("button[value=add_rule]").await;
    b.wait_for_text("Rule 1").await;
    b.fill("#r0c0-attr", "email").await;
    b.select("#r0c0-op", "ends_with").await;
    b.fill("#r0c0-vals", "@acme.com").await;
    b.select("[id='rules[0].serve-variation']", "on").await;
    b.click("input[name='fallthrough.mode'][value=rollout]")
        .await;
    b.fill("[id='fallthrough-w-0']", "25").await;
    b.fill("[id='fallthrough-w-1']", "75").await;
    b.click("input[name=enabled]").await;
    b.fill("#comment", "launch for acme, 25 % of the rest")
        .await;
    b.click(".save-bar button[value=save]").await;
    b.wait_for_text("Saved.").await;
    b.screenshot(&screenshots().join("console-flag.png")).await;

    // A server key made in the console: its secret is shown once.
    b.goto(&ui("/ui/default/default/keys")).await;
    b.click("details summary").await;
    b.fill("#k-name", "checkout service").await;
    b.select("#k-env", "production").await;
    b.click("details button[type=submit]").await;
    b.wait_for_text("shown only this once").await;
    let key = b.value("[data-secret]").await;
    assert!(key.len() > 20, "{key}");
    b.goto(&ui("/ui/default/default/keys")).await;
    assert!(!b.page_text().await.contains(&key));
    assert!(
        !b.script("return document.documentElement.outerHTML", json!([]))
            .await
            .as_str()
            .unwrap()
            .contains(&key)
    );

    // What OFREP now answers.
    let acme = ofrep(
        &app,
        &key,
        "checkout",
        json!({"targetingKey": "u1", "email": "x@acme.com"}),
    )
    .await;
    assert_eq!(
        (acme["value"].clone(), acme["reason"].clone()),
        (json!(true), json!("TARGETING_MATCH")),
        "{acme}"
    );
    let mut on = 0;
    for i in 0..400 {
        let r = ofrep(
            &app,
            &key,
            "checkout",
            json!({"targetingKey": format!("user-{i}")}),
        )
        .await;
        assert_eq!(r["reason"], "SPLIT", "{r}");
        on += usize::from(r["value"] == json!(true));
    }
    assert!((60..=140).contains(&on), "{on} of 400 in a 25 % rollout");

    // The kill switch: OFREP says DISABLED.
    b.goto(&ui("/ui/default/default/flags/checkout/in/production"))
        .await;
    b.accept_dialogs("").await;
    b.click(".danger-zone summary").await;
    b.fill("#kill-reason", "checkout errors").await;
    b.click(".danger-zone button[type=submit]").await;
    b.wait_for_text("Kill switch engaged").await;
    let killed = ofrep(
        &app,
        &key,
        "checkout",
        json!({"targetingKey": "u1", "email": "x@acme.com"}),
    )
    .await;
    assert_eq!(killed["reason"], "DISABLED", "{killed}");

    // History: restore the version before the kill.
    b.goto(&ui(
        "/ui/default/default/flags/checkout/in/production/history",
    ))
    .await;
    b.wait_for_text("version").await;
    b.accept_dialogs("").await;
    b.click("form[action$='/history/2/restore'] button").await;
    b.wait_for_text("Restored.").await;
    let back = ofrep(
        &app,
        &key,
        "checkout",
        json!({"targetingKey": "u1", "email": "x@acme.com"}),
    )
    .await;
    assert_eq!(back["reason"], "TARGETING_MATCH", "{back}");

    // A segment, then a rule that uses it.
    b.goto(&ui("/ui/default/default/segments")).await;
    b.fill("#s-key", "testers").await;
    b.click("form[aria-label='New segment'] button").await;
    b.wait_for_text("Used by").await;
    b.fill("#sg-inc", "u-42").await;
    b.click(".save-bar button[value=save]").await;
    b.wait_for_text("Saved.").await;
    b.goto(&ui("/ui/default/default/flags/checkout/in/production"))
        .await;
    b.click("button[value=add_rule]").await;
    b.wait_for_text("Rule 2").await;
    b.select("#r1c0-op", "in_segment").await;
    b.fill("#r1c0-vals", "testers").await;
    b.select("[id='rules[1].serve-variation']", "on").await;
    b.click(".save-bar button[value=save]").await;
    b.wait_for_text("Saved.").await;
    let tester = ofrep(&app, &key, "checkout", json!({"targetingKey": "u-42"})).await;
    assert_eq!(
        (tester["value"].clone(), tester["reason"].clone()),
        (json!(true), json!("TARGETING_MATCH")),
        "{tester}"
    );
    b.goto(&ui("/ui/default/default/segments/testers")).await;
    b.wait_for_text("flag checkout in production").await;

    // The flags list shows the switch per environment; a phone-width look for the README.
    b.goto(&ui("/ui/default/default/flags")).await;
    b.wait_for_text("checkout").await;
    b.screenshot(&screenshots().join("console-flags.png")).await;
    b.set_window(390, 844).await;
    b.goto(&ui("/ui/default/default/flags/checkout/in/production"))
        .await;
    b.screenshot(&screenshots().join("console-phone.png")).await;
    b.set_window(1280, 1000).await;

    // A viewer sees the configuration but no edit controls.
    b.click("form[action='/ui/logout'] button").await;
    b.wait_for_text("Sign in to Vexil").await;
    browser_sign_in(&b, &app, "vic@example.com", "viewer").await;
    assert!(b.find_all("#new-flag").await.is_empty());
    b.goto(&ui("/ui/default/default/flags/checkout/in/production"))
        .await;
    b.wait_for_text("Individual targets").await;
    assert!(b.find_all("button[value=save]").await.is_empty());
    assert!(b.find_all(".danger-zone").await.is_empty());
    assert!(b.find_all("form[action$='/toggle']").await.is_empty());
    // A form post forged from the page (right token, wrong role) is refused.
    let cookie = b.cookie("vexil_session").await.expect("session cookie");
    let csrf = b.value("input[name=csrf]").await;
    let r = app
        .anonymous(
            Method::POST,
            "/ui/default/default/flags/checkout/in/production/toggle",
        )
        .header("cookie", format!("vexil_session={cookie}"))
        .form(&[("csrf", csrf.as_str()), ("to", "off")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let still = ofrep(
        &app,
        &key,
        "checkout",
        json!({"targetingKey": "u1", "email": "x@acme.com"}),
    )
    .await;
    assert_eq!(still["value"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_flags_page_and_search_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    // 10,000 flags through the API's bulk-free path would take minutes in a debug build;
    // the import of a whole project is not there yet, so the flags go in 8 at a time.
    let started = Instant::now();
    let mut pending = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt as _;
    for i in 0..10_000 {
        let path = format!("/api/v1/projects/{project}/feature-flags");
        let body = json!({"key": format!("flag-{i:05}"), "tags": [if i % 2 == 0 { "even" } else { "odd" }]});
        let app = &app;
        pending.push(async move { app.post(&path, body).await.status() });
        if pending.len() >= 8 {
            assert_eq!(pending.next().await, Some(StatusCode::CREATED));
        }
    }
    while let Some(s) = pending.next().await {
        assert_eq!(s, StatusCode::CREATED);
    }
    eprintln!("10,000 flags created in {:?}", started.elapsed());
    browser_sign_in(&b, &app, "pat@example.com", "editor").await;
    b.wait_for_text("Flags 10000").await;
    b.wait_for_text("Page 1 of 200").await;
    b.click("a[rel=next]").await;
    b.wait_for_text("Page 2 of 200").await;
    b.wait_for_text("flag-00050").await;
    b.fill("#f-q", "flag-0999").await;
    b.click("form[aria-label='Filter flags'] button[type=submit]")
        .await;
    b.wait_for_text("Flags 10\n").await;
    b.fill("#f-q", "").await;
    b.fill("#f-tag", "odd").await;
    b.select("#f-sort", "-created_at").await;
    b.click("form[aria-label='Filter flags'] button[type=submit]")
        .await;
    b.wait_for_text("Flags 5000").await;
    let first = b.find_all("a.flag-key").await;
    assert_eq!(first.len(), 50);
    b.wait_for_text("flag-09999").await;
    // The live banner: a change made elsewhere is announced without reloading (and not
    // before).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hidden = b
        .script(
            "return document.querySelector('[data-live-banner]').hidden",
            json!([]),
        )
        .await;
    assert_eq!(
        hidden,
        json!(true),
        "the live banner showed without a change"
    );
    b.fill("#f-tag", "typed but not sent").await;
    let flag = json_ok(
        app.get(&format!(
            "/api/v1/projects/{project}/feature-flags?q=flag-09999"
        ))
        .await,
    )
    .await;
    let id = flag["items"][0]["id"].as_str().unwrap().to_owned();
    let env = app.environment(&project, "development").await;
    let r = app
        .patch(
            &format!("/api/v1/flags/{id}/environments/{env}/config/toggle"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    loop {
        let shown = b
            .script(
                "return !document.querySelector('[data-live-banner]').hidden",
                json!([]),
            )
            .await;
        if shown == json!(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the live banner did not appear"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_configuration_unchanged_keeps_it_exactly() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    let env = app.environment(&project, "development").await;
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "other"}),
        )
        .await,
        201,
    )
    .await;
    assert!(flag["id"].is_string());
    let body = json!({"key": "theme", "type": "string",
        "variations": [{"key": "light", "value": "light"}, {"key": "dark", "value": "dark"}, {"key": "blue", "value": "blue"}]});
    let flag = json_status(
        app.post(&format!("/api/v1/projects/{project}/feature-flags"), body)
            .await,
        201,
    )
    .await;
    let id = flag["id"].as_str().unwrap().to_owned();
    let config = json!({
        "enabled": true,
        "off_variation": "light",
        "targets": [{"variation": "dark", "values": ["acme,inc", " spaced"]}],
        "rules": [
            {"description": "plans", "clauses": [
                {"attribute": "plan", "op": "in", "values": [42, "  padded", "gold"]},
                {"attribute": "country", "op": "starts_with", "values": ["N"], "negate": true, "case_insensitive": true}],
             "serve": {"rollout": {"bucket_by": "customerId", "seed": "s1",
                 "variations": [{"variation": "dark", "weight": 60000}, {"variation": "light", "weight": 40000}]}}},
            {"clauses": [{"attribute": "age", "op": "gte", "values": [18]}], "serve": {"variation": "blue"}}
        ],
        "fallthrough": {"rollout": {"variations": [{"variation": "blue", "weight": 33333}, {"variation": "light", "weight": 66667}]}},
        "prerequisites": [{"flag": "other", "variations": ["off"]}]
    });
    let path = format!("/api/v1/flags/{id}/environments/{env}/config");
    let before = json_ok(app.patch(&path, config).await).await;

    let password = add_member(&app, "sam@example.com", "admin").await;
    b.goto(&app.url("/ui/login")).await;
    b.fill("#email", "sam@example.com").await;
    b.fill("#password", &password).await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("Choose your own").await;
    b.fill("#current", &password).await;
    b.fill("#new", "sam's own passphrase").await;
    b.fill("#repeat", "sam's own passphrase").await;
    b.click("form[action='/ui/account/password'] button").await;
    b.wait_for_text("Password changed").await;
    b.fill("#email", "sam@example.com").await;
    b.fill("#password", "sam's own passphrase").await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("Flags").await;
    b.goto(&app.url("/ui/default/default/flags/theme/in/development"))
        .await;
    b.wait_for_text("Rule 2").await;
    // Pressing Enter in the comment saves (it does not add a row).
    b.fill("#comment", "nothing changes\n").await;
    b.wait_for_text("Saved.").await;
    let after = json_ok(app.get(&path).await).await;
    for field in [
        "enabled",
        "off_variation",
        "targets",
        "rules",
        "fallthrough",
        "prerequisites",
        "version",
    ] {
        assert_eq!(
            after[field], before[field],
            "{field} changed on an unchanged save"
        );
    }

    // "Add rule" then save without a condition: refused, nothing stored.
    b.click("button[value=add_rule]").await;
    b.wait_for_text("Rule 3").await;
    b.click(".save-bar button[value=save]").await;
    b.wait_for_text("at least one condition").await;
    let still = json_ok(app.get(&path).await).await;
    assert_eq!(still["rules"], before["rules"]);

    // "Edit flag" keeps string values as they are.
    b.goto(&app.url("/ui/default/default/flags/theme/in/development"))
        .await;
    b.click(".lifecycle details:last-of-type summary").await;
    b.click("form[action$='/edit'] button[type=submit]").await;
    b.wait_for_text("Saved.").await;
    let flag = json_ok(app.get(&format!("/api/v1/feature-flags/{id}")).await).await;
    assert_eq!(flag["variations"][0]["value"], "light", "{flag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_tls_the_sign_in_token_cookie_is_host_bound() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| c.secure_cookies = true).await else {
        return;
    };
    let r = no_redirects()
        .get(app.url("/ui/login"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-vexil_login="), "{cookie}");
    assert!(
        cookie.contains("Path=/;") && cookie.contains("Secure"),
        "{cookie}"
    );
    // The unprefixed cookie (as a sibling subdomain could set it) is not accepted.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    let r = no_redirects()
        .post(app.url("/ui/login"))
        .header("cookie", format!("vexil_login={token}"))
        .form(&[
            ("token", token.as_str()),
            ("email", "a@example.com"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Adds a member and signs them in through the browser (choosing their own password
/// first), ending on the project's flags.
async fn browser_sign_in(b: &Browser, app: &TestApp, email: &str, role: &str) {
    let password = add_member(app, email, role).await;
    b.goto(&app.url("/ui/login")).await;
    b.fill("#email", email).await;
    b.fill("#password", &password).await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("Choose your own").await;
    let own = format!("{email}'s own passphrase");
    b.fill("#current", &password).await;
    b.fill("#new", &own).await;
    b.fill("#repeat", &own).await;
    b.click("form[action='/ui/account/password'] button").await;
    b.wait_for_text("Password changed").await;
    b.fill("#email", email).await;
    b.fill("#password", &own).await;
    b.click("form button[type=submit]").await;
    b.wait_for_text("Flags").await;
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) `secs` seconds from now, as a `datetime-local` field holds it.
fn local_field_in(secs: i64) -> String {
    crate::utc_in(secs * 1000)[..19].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_scheduled_and_another_approved_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    let dev = app.environment(&project, "development").await;
    let prod = app.environment(&project, "production").await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "banner"}),
        )
        .await,
        201,
    )
    .await;
    let dev_key = app.api_key(&project, &dev, "server").await;
    let prod_key = app.api_key(&project, &prod, "server").await;
    let ui = |path: &str| app.url(path);

    // An editor schedules "on" in development a few seconds ahead.
    browser_sign_in(&b, &app, "ed@example.com", "editor").await;
    b.goto(&ui("/ui/default/default/flags/banner/in/development"))
        .await;
    b.click("input[name=enabled]").await;
    b.fill("#comment", "turn the banner on").await;
    b.script(
        "document.querySelector('#execute_at').value = arguments[0]",
        json!([local_field_in(4)]),
    )
    .await;
    b.click("button[formaction$='/schedule']").await;
    b.wait_for_text("Scheduled: it is applied at its time")
        .await;
    b.wait_for_text("Waiting in Development").await;
    b.wait_for_text("by ed@example.com").await;
    b.screenshot(&screenshots().join("console-schedule.png"))
        .await;
    assert_eq!(
        ofrep(&app, &dev_key, "banner", json!({"targetingKey": "u1"})).await["value"],
        false
    );
    let started = Instant::now();
    while ofrep(&app, &dev_key, "banner", json!({"targetingKey": "u1"})).await["value"] != true {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the schedule never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Production requires approval: the editor proposes instead of saving.
    json_ok(
        app.patch(
            &format!("/api/v1/environments/{prod}"),
            json!({"requires_approval": true}),
        )
        .await,
    )
    .await;
    b.goto(&ui("/ui/default/default/flags/banner/in/production"))
        .await;
    b.wait_for_text("requires approval").await;
    assert!(b.find_all(".save-bar button[value=save]").await.is_empty());
    b.click("input[name=enabled]").await;
    b.fill("#comment", "banner in production").await;
    b.click(".save-bar button[formaction$='/propose']").await;
    b.wait_for_text("Proposed: another member reviews it").await;
    // Its author cannot approve it.
    b.goto(&ui("/ui/default/default/changes")).await;
    b.wait_for_text("banner in production").await;
    assert!(b.find_all("form[action$='/approve']").await.is_empty());

    // An admin approves it from the project's queue, then applies it.
    b.click("form[action='/ui/logout'] button").await;
    b.wait_for_text("Sign in to Vexil").await;
    browser_sign_in(&b, &app, "ada@example.com", "admin").await;
    b.goto(&ui("/ui/default/default/changes")).await;
    b.wait_for_text("by ed@example.com").await;
    b.fill("input[name=comment]", "looks right").await;
    b.click("form[action$='/approve'] button.primary").await;
    b.wait_for_text("Approved.").await;
    b.wait_for_text("approved by ada@example.com: looks right")
        .await;
    b.screenshot(&screenshots().join("console-approval.png"))
        .await;
    assert_eq!(
        ofrep(&app, &prod_key, "banner", json!({"targetingKey": "u1"})).await["value"],
        false
    );
    b.click("form[action$='/apply'] button").await;
    b.wait_for_text("Applied.").await;
    b.wait_for_text("Nothing is waiting").await;
    assert_eq!(
        ofrep(&app, &prod_key, "banner", json!({"targetingKey": "u1"})).await["value"],
        true
    );
}

fn temporary_flags_stale_at_once(config: &mut vexil_server::Config) {
    config.stale_temporary_days = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insights_tab_charts_evaluations_and_events_per_variation() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, temporary_flags_stale_at_once).await
    else {
        return;
    };
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "checkout"}),
        )
        .await,
        201,
    )
    .await;
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "old-banner", "temporary": true}),
        )
        .await,
        201,
    )
    .await;
    json_ok(
        app.patch(
            &format!("/api/v1/flags/{}/environments/{prod}/config", flag["id"].as_str().unwrap()),
            json!({"enabled": true, "watch_events": ["checkout_error"],
                "fallthrough": {"rollout": {"variations": [
                    {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
        )
        .await,
    )
    .await;
    let key = app.api_key(&project, &prod, "server").await;
    let mut events = Vec::new();
    for i in 0..120 {
        let user = format!("user-{i}");
        ofrep(&app, &key, "checkout", json!({"targetingKey": user})).await;
        // The new checkout fails more often.
        let on = vexil_core::hash::bucket("checkout", &user) < 50_000;
        if i % if on { 4 } else { 12 } == 0 {
            events.push(json!({"key": "checkout_error", "context": {"targetingKey": user}}));
        }
    }
    let r = app
        .anonymous(Method::POST, "/api/v1/track")
        .bearer_auth(&key)
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // After a flush (every 250 ms in tests).
    tokio::time::sleep(Duration::from_millis(800)).await;

    browser_sign_in(&b, &app, "vi@example.com", "viewer").await;
    b.goto(&app.url("/ui/default/default/flags?stale=yes"))
        .await;
    b.wait_for_text("old-banner").await;
    assert_eq!(b.find_all(".pill.stale").await.len(), 1);
    assert!(!b.page_text().await.contains("checkout"));

    b.goto(&app.url("/ui/default/default/flags/checkout/in/production"))
        .await;
    b.click("nav.tabs a[href$='/insights']").await;
    b.wait_for_text("Evaluations by variation").await;
    b.wait_for_text("120 in the window").await;
    // One line per variation in each chart: evaluations, and checkout_error per 100.
    assert_eq!(b.find_all("svg.chart").await.len(), 2);
    assert_eq!(b.find_all("svg.chart polyline").await.len(), 4);
    b.wait_for_text("per 100 evaluations").await;
    b.screenshot(&screenshots().join("console-insights.png"))
        .await;
    b.script(
        "document.documentElement.setAttribute('data-theme', 'dark')",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-insights-dark.png"))
        .await;
    // The CSV download is the API's, with the browser's session.
    let csv = b
        .script(
            "const r = new XMLHttpRequest(); r.open('GET', document.querySelector('a[download]').href, false); r.send(); return [r.status, r.getResponseHeader('content-type'), r.responseText];",
            json!([]),
        )
        .await;
    assert_eq!(csv[0], 200, "{csv}");
    assert_eq!(csv[1], "text/csv; charset=utf-8");
    assert!(
        csv[2]
            .as_str()
            .unwrap()
            .starts_with("start,variation,metric,count,sum"),
        "{csv}"
    );
    assert!(csv[2].as_str().unwrap().contains(",event:checkout_error,"));

    b.goto(&app.url("/ui/default/default/insights")).await;
    b.wait_for_text("Most evaluated").await;
    b.wait_for_text("Stale flags").await;
    let text = b.page_text().await;
    assert!(
        text.contains("temporary flag created more than 0 days ago"),
        "{text}"
    );
    b.screenshot(&screenshots().join("console-insights-overview.png"))
        .await;
}

/// An SDK's report (with a server key) of `counts` evaluations of `flag` per variation,
/// and a tracked `error` event from each of `users`.
async fn sdk_traffic(app: &TestApp, key: &str, flag: &str, counts: Value, users: &[String]) {
    let events: Vec<Value> = users
        .iter()
        .map(|u| json!({"key": "error", "context": {"targetingKey": u}}))
        .collect();
    app.report_and_track(key, json!({flag: counts}), &events)
        .await;
}

/// Reloads `url` until its text contains `text` (the guard and the insights flush work in
/// the background), for up to 10 s.
async fn reload_until(b: &Browser, url: &str, text: &str) {
    let started = Instant::now();
    loop {
        b.goto(url).await;
        let page = b.page_text().await;
        if page.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "'{text}' never showed on {url}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The text of the current stage in the page's first progress bar.
async fn current_stage(b: &Browser) -> String {
    b.script(
        "const s = document.querySelector('ol.stages [aria-current=step]'); return s ? s.textContent : '';",
        json!([]),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_started_advanced_and_rolled_back_by_its_guard_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    let prod = app.environment(&project, "production").await;
    let dev = app.environment(&project, "development").await;
    let mut ids = Vec::new();
    for key in ["chat-widget", "new-checkout"] {
        ids.push(app.create_flag(&project, key).await);
    }
    // Another flag's plan, started over the API in development (for the project's list).
    json_status(
        app.post(
            &format!("/api/v1/flags/{}/environments/{dev}/release", ids[1]),
            json!({"guard": {"event": "error", "max_rate": 0.02}, "comment": "new checkout"}),
        )
        .await,
        201,
    )
    .await;
    let key = app.api_key(&project, &prod, "server").await;
    // Production is protected: an admin releases there.
    browser_sign_in(&b, &app, "rel@example.com", "admin").await;
    let tab = app.url("/ui/default/default/flags/chat-widget/in/production");
    b.goto(&tab).await;
    b.wait_for_text("No release plan in Production yet").await;

    // The form: a stage that goes backwards is refused by the domain, beside the stages,
    // with everything typed kept.
    b.click("#start-release summary").await;
    assert_eq!(b.value("#rl-treatment").await, "on");
    assert_eq!(b.value("#rl-control").await, "off");
    assert_eq!(b.value("#rl-bucket").await, "targetingKey");
    b.fill("#rl-stages", "1% 1h, 10% 24h, 5% 24h, 100%").await;
    b.fill("#rl-event", "error").await;
    b.fill("#rl-max", "5").await;
    b.fill("#rl-samples", "20").await;
    b.fill("#rl-comment", "chat widget for everyone").await;
    b.click("#start-release button[type=submit]").await;
    b.wait_for_text("stage 3 (5% 24h): the percentage must be more than the stage before")
        .await;
    assert_eq!(b.value("#rl-stages").await, "1% 1h, 10% 24h, 5% 24h, 100%");
    assert_eq!(b.value("#rl-event").await, "error");
    assert_eq!(b.value("#rl-samples").await, "20");
    assert_eq!(b.value("#rl-comment").await, "chat widget for everyone");
    // Text that is no stage at all is the console's own field error.
    b.fill("#rl-stages", "1% 1h, lots").await;
    b.click("#start-release button[type=submit]").await;
    b.wait_for_text("stage 2 (lots): 'lots' is not a percentage")
        .await;
    b.fill("#rl-stages", "1% 1h, 10% 24h, 50% 24h, 100%").await;
    b.click("#start-release button[type=submit]").await;
    b.wait_for_text("Release started").await;
    assert_eq!(b.find_all("ol.stages li").await.len(), 4);
    assert!(
        current_stage(&b).await.starts_with("1%"),
        "{}",
        current_stage(&b).await
    );
    b.wait_for_text("waiting for 20 evaluations of on").await;
    let plan = json_ok(
        app.get(&format!(
            "/api/v1/flags/{}/environments/{prod}/release",
            ids[0]
        ))
        .await,
    )
    .await;
    assert_eq!(plan["guard"]["max_rate"], 0.05, "{plan}");
    assert_eq!(plan["guard"]["min_samples"], 20);
    assert_eq!(
        plan["stages"][1],
        json!({"weight": 10000, "min_duration": "24h"})
    );

    // Advance by hand to the second stage.
    b.click(".release-actions form[action$='/release/advance'] button")
        .await;
    b.wait_for_text("Advanced to the next stage").await;
    assert!(
        current_stage(&b).await.starts_with("10%"),
        "{}",
        current_stage(&b).await
    );
    assert_eq!(b.find_all("ol.stages li.done").await.len(), 1);

    // Traffic: 2 % errors for the treatment is healthy.
    let treated: Vec<String> = (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| vexil_core::hash::bucket("chat-widget", u) < 10_000)
        .take(12)
        .collect();
    sdk_traffic(
        &app,
        &key,
        "chat-widget",
        json!({"on": 100, "off": 900}),
        &treated[..2],
    )
    .await;
    reload_until(&b, &tab, "within 5%").await;
    b.find(".release-readings .pill.healthy, h3 .pill.healthy")
        .await;
    assert_eq!(b.find_all(".guard-charts svg.chart").await.len(), 2);
    b.script(
        "document.getElementById('release').scrollIntoView()",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-release.png"))
        .await;

    // 12 % errors: the guard rolls the plan back by itself.
    sdk_traffic(&app, &key, "chat-widget", json!({}), &treated[2..]).await;
    reload_until(&b, &tab, "Rolled back at").await;
    let banner = b
        .script(
            "return document.querySelector('.rollback-banner[role=alert]').textContent",
            json!([]),
        )
        .await;
    assert!(
        banner
            .as_str()
            .unwrap()
            .contains("the guard tripped: error rate of on is 12%"),
        "{banner}"
    );
    b.wait_for_text("Readings at the rollback").await;
    b.find("h3 .pill.tripped").await;
    assert!(current_stage(&b).await.starts_with("10%"));
    // A new plan can be started below the banner.
    assert_eq!(b.find_all("#start-release").await.len(), 1);
    assert!(b.find_all(".release-actions").await.is_empty());

    // The other flag's plan: pause it; a rollback without a reason is refused beside it.
    let other = app.url("/ui/default/default/flags/new-checkout/in/development");
    b.goto(&other).await;
    b.click(".release-actions form[action$='/release/pause'] button")
        .await;
    b.wait_for_text("Paused: the plan no longer advances by itself")
        .await;
    assert!(b.find_all("form[action$='/release/resume']").await.len() == 1);
    b.fill("#rb-reason", "   ").await;
    b.click(".rollback-form button").await;
    b.wait_for_text("is required: say why the release is rolled back")
        .await;
    // The editor still saves targets and rules while the plan owns the default.
    b.wait_for_text("A release plan owns the default").await;
    b.fill("#t-0", "qa-user").await;
    b.click(".save-bar button[value=save]").await;
    b.wait_for_text("Saved.").await;
    let config = json_ok(
        app.get(&format!(
            "/api/v1/flags/{}/environments/{dev}/config",
            ids[1]
        ))
        .await,
    )
    .await;
    assert_eq!(
        config["targets"][0]["values"],
        json!(["qa-user"]),
        "{config}"
    );
    assert_eq!(
        config["fallthrough"]["rollout"]["variations"][0]["weight"],
        1000
    );

    // The project's releases: the live (paused) plan first, then the one rolled back.
    b.click("nav[aria-label=Sections] a[href$='/releases']")
        .await;
    b.wait_for_text("Ended").await;
    let text = b.page_text().await;
    let live_at = text.find("new-checkout").expect("the live plan is listed");
    let ended_at = text.find("chat-widget").expect("the ended plan is listed");
    assert!(live_at < ended_at, "{text}");
    assert!(
        text.contains("paused") && text.contains("rolled back"),
        "{text}"
    );
    assert!(text.contains("the guard tripped"), "{text}");
    assert_eq!(
        b.find_all("a[href='/ui/default/default/flags/chat-widget/in/production']")
            .await
            .len(),
        1
    );
    b.screenshot(&screenshots().join("console-releases.png"))
        .await;

    // A viewer sees the plan but neither its buttons nor the form.
    b.click("form[action='/ui/logout'] button").await;
    b.wait_for_text("Sign in to Vexil").await;
    browser_sign_in(&b, &app, "viv@example.com", "viewer").await;
    b.goto(&other).await;
    b.wait_for_text("Release").await;
    assert_eq!(b.find_all("ol.stages").await.len(), 1);
    assert!(b.find_all(".release-actions").await.is_empty());
    assert!(
        b.find_all("form[action$='/release/rollback']")
            .await
            .is_empty()
    );
    b.goto(&tab).await;
    b.wait_for_text("Rolled back at").await;
    assert!(b.find_all("#start-release").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_are_copied_and_promoted_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    let dev = app.environment(&project, "development").await;
    let prod = app.environment(&project, "production").await;
    let mut ids = Vec::new();
    for key in ["checkout", "banner"] {
        ids.push(app.create_flag(&project, key).await);
    }
    let config = |flag: &str, env: &str| format!("/api/v1/flags/{flag}/environments/{env}/config");
    // The checkout is configured in development only.
    json_ok(
        app.patch(
            &config(&ids[0], &dev),
            json!({"enabled": true,
                "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}],
                           "serve": {"variation": "on"}}],
                "fallthrough": {"rollout": {"variations": [
                    {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}}),
        )
        .await,
    )
    .await;
    let ui = |path: &str| app.url(&format!("/ui/default/default{path}"));

    // Production is protected: an admin copies the checkout from its production tab.
    browser_sign_in(&b, &app, "ada@example.com", "admin").await;
    b.goto(&ui("/flags/checkout/in/production")).await;
    b.click("#copy-from summary").await;
    b.wait_for_text("Development serves: on, 1 rule, default: on 25 %, off 75 % rollout")
        .await;
    assert_eq!(b.value("#copy-from-env").await, "development");
    b.click("#copy-from .copy-sources details summary").await;
    b.screenshot(&screenshots().join("console-copy.png")).await;
    assert!(b.find_all("#r0c0-attr").await.is_empty());
    b.fill("#copy-comment", "ship the checkout").await;
    b.accept_dialogs("").await;
    b.click("#copy-from button[type=submit]").await;
    b.wait_for_text("Copied: this environment now has").await;
    assert_eq!(b.value("#r0c0-attr").await, "email");
    let copied = json_ok(app.get(&config(&ids[0], &prod)).await).await;
    assert_eq!(copied["enabled"], true, "{copied}");
    assert_eq!(
        copied["fallthrough"]["rollout"]["variations"][0]["weight"],
        25000
    );
    // Now the same: the control says so.
    b.click("#copy-from summary").await;
    b.wait_for_text("same as Production").await;
    b.click("nav.tabs a[href$='/history']").await;
    b.wait_for_text("copied from development: ship the checkout")
        .await;

    // The whole project: the banner, switched on in development, is promoted with it.
    json_ok(
        app.patch(&config(&ids[1], &dev), json!({"enabled": true}))
            .await,
    )
    .await;
    b.goto(&ui("/settings")).await;
    assert_eq!(b.value("#pr-from").await, "development");
    assert_eq!(b.value("#pr-into").await, "production");
    b.fill("#pr-comment", "release train").await;
    b.accept_dialogs("").await;
    b.click("#promote button[type=submit]").await;
    b.wait_for_text(
        "Copied Development into Production: 1 configuration changed, 1 already equal.",
    )
    .await;
    b.wait_for_text("checkout was already equal").await;
    let banner = json_ok(app.get(&config(&ids[1], &prod)).await).await;
    assert_eq!(banner["enabled"], true, "{banner}");
    // Again: nothing changes.
    b.accept_dialogs("").await;
    b.click("#promote button[type=submit]").await;
    b.wait_for_text(
        "Nothing changed: Production already served what Development serves (2 flags).",
    )
    .await;

    // A live release plan owns the banner's default in production: a promotion that would
    // change it is refused, said on the page, with the form as it was.
    json_status(
        app.post(
            &format!("/api/v1/flags/{}/environments/{prod}/release", ids[1]),
            json!({"auto_advance": false}),
        )
        .await,
        201,
    )
    .await;
    json_ok(
        app.patch(
            &config(&ids[1], &dev),
            json!({"fallthrough": {"variation": "off"}}),
        )
        .await,
    )
    .await;
    b.fill("#pr-comment", "second train").await;
    b.accept_dialogs("").await;
    b.click("#promote button[type=submit]").await;
    b.wait_for_text("Not copied: flag 'banner': ").await;
    let alert = b
        .script(
            "return document.querySelector('#promote .error[role=alert]').textContent",
            json!([]),
        )
        .await;
    assert!(
        alert.as_str().unwrap().contains("release"),
        "the release plan is named: {alert}"
    );
    assert_eq!(b.value("#pr-comment").await, "second train");
    assert_eq!(b.value("#pr-into").await, "production");
    let still = json_ok(app.get(&config(&ids[1], &prod)).await).await;
    assert!(still["fallthrough"]["rollout"].is_object(), "{still}");
    b.script(
        "document.getElementById('promote').scrollIntoView()",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-promote.png"))
        .await;
    b.script(
        "document.documentElement.setAttribute('data-theme', 'dark')",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-promote-dark.png"))
        .await;

    // An editor: no copy into protected production, neither from the tab nor the form.
    b.click("form[action='/ui/logout'] button").await;
    b.wait_for_text("Sign in to Vexil").await;
    browser_sign_in(&b, &app, "ed@example.com", "editor").await;
    b.goto(&ui("/flags/checkout/in/production")).await;
    b.wait_for_text("only admins change its configuration")
        .await;
    assert!(b.find_all("#copy-from").await.is_empty());
    b.goto(&ui("/flags/banner/in/development")).await;
    b.find("#copy-from").await;
    b.goto(&ui("/settings")).await;
    b.accept_dialogs("").await;
    b.click("#promote button[type=submit]").await;
    b.wait_for_text("Production is protected: copying into it needs the admin role")
        .await;
}

/// A loopback receiver for webhooks: the headers and body of every request, in order; it
/// answers every request with `status`.
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Receiver {
    async fn start(status: axum::http::StatusCode) -> Receiver {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = got.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((headers, body));
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, got }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Request `i`: its headers and its body as JSON.
    fn request(&self, i: usize) -> (axum::http::HeaderMap, Value) {
        let got = self.got.lock().unwrap();
        let (headers, body) = &got[i];
        (headers.clone(), serde_json::from_str(body).unwrap())
    }

    /// Whether request `i` carries the Standard Webhooks signature made with `secret`
    /// (HMAC-SHA256 written out here, independently of the server's).
    fn signed_with(&self, i: usize, secret: &str) -> bool {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        let b64 = base64::engine::general_purpose::STANDARD;
        let got = self.got.lock().unwrap();
        let (headers, body) = &got[i];
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        let key = b64
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .unwrap();
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(&key);
        let message = format!(
            "{}.{}.{body}",
            header("webhook-id"),
            header("webhook-timestamp")
        );
        let inner = Sha256::new()
            .chain_update(block.map(|b| b ^ 0x36))
            .chain_update(message)
            .finalize();
        let mac = Sha256::new()
            .chain_update(block.map(|b| b ^ 0x5c))
            .chain_update(inner)
            .finalize();
        header("webhook-signature") == format!("v1,{}", b64.encode(mac))
    }

    /// Waits up to 10 s for `n` requests.
    async fn wait_for(&self, n: usize) {
        let started = Instant::now();
        while self.count() < n {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the receiver got {} of {n} requests",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The text of each row of the page's deliveries table, newest first.
async fn delivery_rows(b: &Browser) -> Vec<String> {
    let rows = b
        .script(
            "return [...document.querySelectorAll('table.deliveries tbody tr')].map(r => r.innerText.replace(/\\s+/g, ' '));",
            json!([]),
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn webhooks_give_up_after_a_second(config: &mut vexil_server::Config) {
    config.webhook_retry_for_secs = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_created_tested_and_its_deliveries_redelivered_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, webhooks_give_up_after_a_second).await
    else {
        return;
    };
    let project = app.default_project().await;
    let receiver = Receiver::start(axum::http::StatusCode::OK).await;
    let down = Receiver::start(axum::http::StatusCode::SERVICE_UNAVAILABLE).await;
    let ui = |path: &str| app.url(&format!("/ui/default/default{path}"));

    // An admin finds Webhooks in the header; the form is open while there is none.
    browser_sign_in(&b, &app, "ada@example.com", "admin").await;
    b.click("nav[aria-label=Sections] a[href$='/webhooks']")
        .await;
    b.wait_for_text("No webhooks yet").await;
    assert_eq!(b.value("#nw-events").await, "*");
    assert_eq!(b.value("#nw-format").await, "standard");
    b.click("#nw-events-help summary").await;
    b.wait_for_text("release.*: release.started").await;

    // Problems are shown beside their fields, with everything typed kept.
    b.fill("#nw-name", "ops").await;
    b.fill("#nw-url", "ftp://hooks.example.com").await;
    b.fill("#nw-events", "flag.* nope.*").await;
    b.click("#new-webhook button[type=submit]").await;
    b.wait_for_text("The webhook was not created: see the fields below.")
        .await;
    let problem = |id: &str| {
        let script = format!("return document.getElementById('{id}').textContent");
        let b = &b;
        async move {
            b.script(&script, json!([]))
                .await
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert!(problem("nw-url-err").await.contains("http://"));
    assert!(problem("nw-events-err").await.contains("'nope.*'"));
    assert_eq!(problem("nw-name-err").await, "");
    assert_eq!(b.value("#nw-name").await, "ops");
    assert_eq!(b.value("#nw-events").await, "flag.* nope.*");

    // Created: the signing secret is shown this once.
    b.fill("#nw-url", &receiver.url).await;
    b.fill("#nw-events", "flag.*, config.updated").await;
    b.click("#new-webhook button[type=submit]").await;
    b.wait_for_text("Webhook “ops” created").await;
    b.wait_for_text("webhook-signature").await;
    let secret = b.value("#new-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hooks = json_ok(
        app.get(&format!("/api/v1/projects/{project}/webhooks"))
            .await,
    )
    .await;
    assert_eq!(
        hooks["items"][0]["events"],
        json!(["flag.*", "config.updated"])
    );
    let ops = hooks["items"][0]["id"].as_str().unwrap().to_owned();
    b.screenshot(&screenshots().join("console-webhooks-created.png"))
        .await;
    b.goto(&ui("/webhooks")).await;
    b.wait_for_text("flag.* config.updated").await;
    assert!(b.find_all("#new-secret").await.is_empty());
    assert!(!b.page_text().await.contains(&secret));

    // A test event, delivered and signed with that secret.
    b.click(&format!("table.webhooks a[href$='/webhooks/{ops}']"))
        .await;
    b.wait_for_text("Recent deliveries").await;
    b.wait_for_text("Nothing delivered yet").await;
    b.click(".lifecycle form[action$='/test'] button").await;
    b.wait_for_text("Test event delivered: the receiver answered 200 in")
        .await;
    receiver.wait_for(1).await;
    assert_eq!(receiver.request(0).1["type"], "webhook.test");
    assert!(
        receiver.signed_with(0, &secret),
        "not signed with the secret shown"
    );
    let rows = delivery_rows(&b).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with("webhook.test delivered 1 200"),
        "{rows:?}"
    );

    // A change to a flag is delivered; it shows in the list (newest first).
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/webhooks"),
            json!({"name": "down", "url": down.url, "events": ["flag.*"]}),
        )
        .await,
        201,
    )
    .await;
    app.create_flag(&project, "banner").await;
    receiver.wait_for(2).await;
    let (first, event) = receiver.request(1);
    assert_eq!(event["type"], "flag.created");
    let here = b.url().await;
    let started = Instant::now();
    loop {
        b.goto(&here).await;
        let rows = delivery_rows(&b).await;
        if rows.len() == 2 && rows[0].starts_with("flag.created delivered 1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the delivery never showed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Redelivered by hand: the same message again.
    b.click("table.deliveries tbody tr:first-child form[action$='/redeliver'] button")
        .await;
    b.wait_for_text("Redelivery of flag.created delivered: the receiver answered 200")
        .await;
    receiver.wait_for(3).await;
    let (again, body) = receiver.request(2);
    assert_eq!(body, event);
    assert_eq!(again["webhook-id"], first["webhook-id"]);
    let rows = delivery_rows(&b).await;
    assert!(
        rows[0].starts_with("flag.created delivered 2 200"),
        "{rows:?}"
    );
    b.script(
        "document.getElementById('deliveries').scrollIntoView()",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-webhook.png"))
        .await;

    // The edit form: a bad pattern is refused beside the field, then the filter saved.
    b.click("#edit-webhook summary").await;
    b.fill("#wh-events", "config.updated bogus").await;
    b.click("#edit-webhook button[type=submit]").await;
    b.wait_for_text("Not saved: see the fields below.").await;
    assert!(problem("wh-events-err").await.contains("'bogus'"));
    assert_eq!(b.value("#wh-events").await, "config.updated bogus");
    b.fill("#wh-events", "config.updated").await;
    b.click("#edit-webhook button[type=submit]").await;
    b.wait_for_text("Saved.").await;
    assert_eq!(b.value("#wh-events").await, "config.updated");
    assert!(b.find_all("#edit-webhook[open]").await.is_empty());
    let facts = b
        .script(
            "return document.querySelector('.plan-facts').innerText",
            json!([]),
        )
        .await;
    assert!(
        facts.as_str().unwrap().contains("config.updated"),
        "{facts}"
    );

    // The receiver that keeps answering 503: the server disables its webhook and the list
    // says why, as an alert.
    let list = ui("/webhooks");
    reload_until(&b, &list, "down is off — disabled by the server").await;
    let alert = b
        .script(
            "return document.querySelector('.rollback-banner[role=alert]').textContent",
            json!([]),
        )
        .await;
    assert!(
        alert
            .as_str()
            .unwrap()
            .contains("the receiver answered 503"),
        "{alert}"
    );
    assert!(down.count() >= 2, "retried before giving up");
    b.screenshot(&screenshots().join("console-webhooks.png"))
        .await;
    b.script(
        "document.documentElement.setAttribute('data-theme', 'dark')",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("console-webhooks-dark.png"))
        .await;

    // Disabled by hand: nothing more is sent.
    b.goto(&here).await;
    b.click(".lifecycle form[action$='/toggle'] button").await;
    b.wait_for_text("Disabled: nothing more is sent").await;
    let pill = b
        .script(
            "return document.querySelector('.lifecycle .pill').textContent",
            json!([]),
        )
        .await;
    assert_eq!(pill, "disabled");
    let read = json_ok(app.get(&format!("/api/v1/webhooks/{ops}")).await).await;
    assert_eq!(read["enabled"], false, "{read}");
    b.find(".lifecycle form[action$='/toggle'] input[name=to][value=on]")
        .await;

    // Deleted, after a confirmation.
    b.goto(&list).await;
    b.click("table.webhooks tbody tr:last-child td:first-child a")
        .await;
    b.wait_for_text("Webhook down").await;
    b.accept_dialogs("").await;
    b.click(".lifecycle form[action$='/delete'] button").await;
    b.wait_for_text("Deleted.").await;
    assert!(!b.page_text().await.contains("down is off"));
    let hooks = json_ok(
        app.get(&format!("/api/v1/projects/{project}/webhooks"))
            .await,
    )
    .await;
    assert_eq!(hooks["total"], 1, "{hooks}");

    // An editor sees no Webhooks link and is refused the page.
    b.click("form[action='/ui/logout'] button").await;
    b.wait_for_text("Sign in to Vexil").await;
    browser_sign_in(&b, &app, "ed@example.com", "editor").await;
    assert!(
        b.find_all("nav[aria-label=Sections] a[href$='/webhooks']")
            .await
            .is_empty()
    );
    b.goto(&ui("/webhooks")).await;
    b.wait_for_text("403 Forbidden").await;

    // A viewer's pages and valid form posts are refused too; nothing is sent.
    let password = add_member(&app, "vic@example.com", "viewer").await;
    let vic = signed_in(&app, "vic@example.com", &password).await;
    let hook = format!("/ui/default/default/webhooks/{ops}");
    assert_eq!(vic.get("/ui/default/default/webhooks").await.status(), 403);
    assert_eq!(vic.get(&hook).await.status(), 403);
    let r = vic
        .post(&format!("{hook}/test"), &[("csrf", &vic.csrf)])
        .await;
    assert_eq!(r.status(), 403);
    let r = vic
        .post(
            &format!("{hook}/toggle"),
            &[("csrf", &vic.csrf), ("to", "on")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(receiver.count(), 3);
    // An admin asking for a webhook that is not there: not found.
    let password = add_member(&app, "ann@example.com", "admin").await;
    let ann = signed_in(&app, "ann@example.com", &password).await;
    assert_eq!(
        ann.get("/ui/default/default/webhooks/nope").await.status(),
        404
    );
    assert_eq!(ann.get(&hook).await.status(), 200);
}

/// The text of the element with this id (a field's problem).
async fn text_of(b: &Browser, id: &str) -> String {
    b.script(
        "return document.getElementById(arguments[0]).textContent",
        json!([id]),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_is_created_and_a_flag_made_from_it_in_the_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let project = app.default_project().await;
    let ui = |path: &str| app.url(&format!("/ui/default/default{path}"));
    // A template another editor made through the API, which starts on in production (a
    // protected environment).
    json_status(
        app.post(
            &format!("/api/v1/projects/{project}/flag-templates"),
            json!({"key": "kill-switch", "name": "Kill switch", "tags": ["ops"],
                "environments": {"production": {"enabled": true, "off_variation": "off",
                    "fallthrough": {"variation": "on"}}}}),
        )
        .await,
        201,
    )
    .await;

    // An editor finds Templates in the header.
    browser_sign_in(&b, &app, "ed@example.com", "editor").await;
    b.click("nav[aria-label=Sections] a[href$='/templates']")
        .await;
    b.wait_for_text("kill-switch").await;
    b.click("a[data-open=new-template]").await;

    // A string template without variations: refused beside the field, with the input kept.
    b.fill("#nt-key", "checkout-theme").await;
    b.fill("#nt-name", "Checkout theme").await;
    b.select("#nt-type", "string").await;
    b.fill("#nt-tags", "ui, checkout").await;
    b.click("#new-template input[name=temporary]").await;
    b.select("#nt-state-development", "on").await;
    b.fill("#nt-serve-development", "purple").await;
    b.click("#new-template button[type=submit]").await;
    b.wait_for_text("The template was not created: see the fields below.")
        .await;
    assert!(
        text_of(&b, "nt-vars-err")
            .await
            .contains("at least two variations")
    );
    assert_eq!(b.value("#nt-key").await, "checkout-theme");
    assert_eq!(b.value("#nt-type").await, "string");
    assert_eq!(b.value("#nt-tags").await, "ui, checkout");
    assert_eq!(b.value("#nt-state-development").await, "on");
    assert_eq!(b.value("#nt-serve-development").await, "purple");
    assert!(
        !b.find_all("#new-template input[name=temporary]:checked")
            .await
            .is_empty()
    );

    // Variations given, but development would serve one the template does not have.
    b.fill("#nt-vars", "light = light\ndark = dark").await;
    b.click("#new-template button[type=submit]").await;
    b.wait_for_text("The template was not created").await;
    let problem = text_of(&b, "nt-serve-development-err").await;
    assert!(problem.contains("purple"), "{problem}");
    assert_eq!(text_of(&b, "nt-vars-err").await, "");
    assert_eq!(b.value("#nt-vars").await, "light = light\ndark = dark");

    // Created: it starts on serving dark in development, off elsewhere.
    b.fill("#nt-serve-development", "dark").await;
    b.click("#new-template button[type=submit]").await;
    b.wait_for_text("Created.").await;
    let row = b
        .script(
            "return [...document.querySelectorAll('table.templates tbody tr')].map(r => r.innerText.replace(/\\s+/g, ' ')).find(t => t.startsWith('checkout-theme'))",
            json!([]),
        )
        .await;
    let row = row.as_str().unwrap_or_default();
    for part in [
        "Checkout theme",
        "string",
        "light, dark",
        "ui",
        "checkout",
        "temporary",
        "Development: on serving dark",
    ] {
        assert!(row.contains(part), "{part} not in {row}");
    }
    assert!(!row.contains("Production"), "{row}");
    let templates = json_ok(
        app.get(&format!("/api/v1/projects/{project}/flag-templates"))
            .await,
    )
    .await;
    assert_eq!(templates["total"], 2, "{templates}");
    b.screenshot(&screenshots().join("console-templates.png"))
        .await;

    // Its page: everything it holds, as the API shows it.
    b.click("table.templates a[href*='/templates/']:not([href$='delete'])")
        .await;
    b.wait_for_text("As the API shows it").await;
    b.wait_for_text("\"fallthrough\"").await;

    // A flag from the template that starts on in production: an editor may not.
    b.goto(&ui("/flags")).await;
    b.click("a[data-open=new-flag]").await;
    b.select("#nf-template", "kill-switch").await;
    b.fill("#nf-key", "payments-kill").await;
    b.click("#new-flag button[type=submit]").await;
    b.wait_for_text("The flag was not created").await;
    assert!(
        text_of(&b, "nf-template-err").await.contains("production"),
        "{}",
        text_of(&b, "nf-template-err").await
    );
    assert_eq!(b.value("#nf-key").await, "payments-kill");
    assert_eq!(b.value("#nf-template").await, "kill-switch");

    // A flag from the checkout template: its shape, tags and starting configurations.
    b.select("#nf-template", "checkout-theme").await;
    b.fill("#nf-key", "new-checkout").await;
    b.click("#new-flag button[type=submit]").await;
    b.wait_for_text("Created.").await;
    b.goto(&ui("/flags/new-checkout/in/development")).await;
    b.wait_for_text("Serve targeting").await;
    let badges = b
        .script(
            "return document.querySelector('.badges').innerText",
            json!([]),
        )
        .await;
    let badges = badges.as_str().unwrap_or_default();
    for tag in ["string", "temporary", "ui", "checkout"] {
        assert!(badges.contains(tag), "{tag} not in {badges}");
    }
    assert!(
        !b.find_all("input[name=enabled]:checked").await.is_empty(),
        "not on in development"
    );
    let flags = json_ok(
        app.get(&format!(
            "/api/v1/projects/{project}/feature-flags?q=new-checkout"
        ))
        .await,
    )
    .await;
    let flag = flags["items"][0]["id"].as_str().unwrap().to_owned();
    let dev = app.environment(&project, "development").await;
    let prod = app.environment(&project, "production").await;
    let config = |env: String| {
        let app = &app;
        let flag = flag.clone();
        async move {
            json_ok(
                app.get(&format!("/api/v1/flags/{flag}/environments/{env}/config"))
                    .await,
            )
            .await
        }
    };
    let d = config(dev).await;
    assert_eq!(
        (&d["enabled"], &d["fallthrough"]["variation"]),
        (&json!(true), &json!("dark")),
        "{d}"
    );
    assert_eq!(config(prod).await["enabled"], false);

    // Deleted, after a confirmation; the flag made from it stays.
    b.goto(&ui("/templates")).await;
    b.accept_dialogs("").await;
    b.click("form[data-confirm*='kill-switch'] button").await;
    b.wait_for_text("Deleted.").await;
    assert!(!b.page_text().await.contains("kill-switch"));

    // A viewer sees the list, but no forms; the posts are refused.
    let password = add_member(&app, "vic@example.com", "viewer").await;
    let vic = signed_in(&app, "vic@example.com", &password).await;
    let r = vic.get("/ui/default/default/templates").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("checkout-theme") && html.contains("serving dark"));
    assert!(!html.contains("method=\"post\" action=\"/ui/default/default/templates"));
    assert!(!html.contains("New template"));
    let html = vic
        .get("/ui/default/default/flags")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("nf-template"));
    let r = vic
        .post(
            "/ui/default/default/templates",
            &[("csrf", &vic.csrf), ("key", "sneaky")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let id = templates["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "checkout-theme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let here = format!("/ui/default/default/templates/{id}");
    assert_eq!(vic.get(&here).await.status(), 200);
    let r = vic
        .post(&format!("{here}/delete"), &[("csrf", &vic.csrf)])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        vic.get("/ui/default/default/templates/nope").await.status(),
        404
    );
    let templates = json_ok(
        app.get(&format!("/api/v1/projects/{project}/flag-templates"))
            .await,
    )
    .await;
    assert_eq!(templates["total"], 1, "{templates}");
}
