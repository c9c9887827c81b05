//! People and permissions over real HTTP: sessions (cookie flags, CSRF, idle and absolute
//! expiry), personal and service tokens (role caps, revocation, expiry), the role × action
//! matrix in normal and protected environments, cross-organization 404s, login limits and
//! the audit entries all of this leaves.

use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// One row of the role matrix: what, method, path, body (`{r}`: the role's name), and the
/// expected status for viewer, editor, admin and owner.
type Row<'a> = (&'a str, Method, String, Option<&'a str>, [u16; 4]);

/// A credential: a browser session (cookie + CSRF token) or a bearer token.
#[derive(Debug, Clone)]
enum Cred {
    Session { cookie: String, csrf: String },
    Token(String),
}

struct Caller<'a> {
    app: &'a TestApp,
    cred: Cred,
}

impl Caller<'_> {
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let b = self.app.anonymous(method, path);
        match &self.cred {
            Cred::Session { cookie, csrf } => b
                .header(COOKIE, cookie.as_str())
                .header("x-csrf-token", csrf),
            Cred::Token(t) => b.bearer_auth(t),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut b = self.req(method, path);
        if let Some(body) = body {
            b = b.json(&body);
        }
        b.send().await.expect("request sent")
    }
}

async fn login(app: &TestApp, email: &str, password: &str) -> Response {
    app.anonymous(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Logs in and returns the session credential (`cookie` is the whole `name=value` pair),
/// checking the cookie's attributes.
async fn session(app: &TestApp, email: &str, password: &str) -> Cred {
    let r = login(app, email, password).await;
    let set_cookie = r
        .headers()
        .get(SET_COOKIE)
        .expect("Set-Cookie on login")
        .to_str()
        .unwrap()
        .to_owned();
    let body = json_ok(r).await;
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .filter(|pair| {
            pair.starts_with("vexil_session=") || pair.starts_with("__Host-vexil_session=")
        })
        .expect("session cookie")
        .to_owned();
    Cred::Session {
        cookie,
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
    }
}

/// Adds a member to an organization with the instance token, creating the user; returns
/// their one-time password.
async fn add_user(app: &TestApp, org: &str, email: &str, role: &str) -> String {
    let r = app
        .post(
            &format!("/api/v1/organizations/{org}/members"),
            json!({"email": email, "role": role}),
        )
        .await;
    let member = json_status(r, 201).await;
    assert_eq!(member["role"], role);
    member["password"]
        .as_str()
        .expect("one-time password")
        .to_owned()
}

async fn default_org(app: &TestApp) -> String {
    let page = json_ok(app.get("/api/v1/organizations").await).await;
    page["items"][0]["id"].as_str().unwrap().to_owned()
}

struct World {
    org: String,
    project: String,
    dev: String,
    prod: String,
    flag: String,
    other_project: String,
    other_flag: String,
}

/// The default organization with a flag, and a second organization with its own project
/// and flag that the test users do not belong to.
async fn world(app: &TestApp) -> World {
    let org = default_org(app).await;
    let project = app.default_project().await;
    let dev = app.environment(&project, "development").await;
    let prod = app.environment(&project, "production").await;
    let env = json_ok(app.get(&format!("/api/v1/environments/{prod}")).await).await;
    assert_eq!(env["protected"], true, "production is protected by default");
    let flag = json_status(
        app.post(
            &format!("/api/v1/projects/{project}/feature-flags"),
            json!({"key": "checkout"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = json_status(
        app.post("/api/v1/organizations", json!({"key": "other"}))
            .await,
        201,
    )
    .await;
    let other_project = json_status(
        app.post(
            "/api/v1/projects",
            json!({"organization_id": other["id"], "key": "secret-project"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_flag = json_status(
        app.post(
            &format!("/api/v1/projects/{other_project}/feature-flags"),
            json!({"key": "secret"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    World {
        org,
        project,
        dev,
        prod,
        flag,
        other_project,
        other_flag,
    }
}

both_backends! {
    async fn every_role_can_do_exactly_what_its_role_allows(app) {
        let w = world(&app).await;
        let roles = ["viewer", "editor", "admin", "owner"];
        let mut callers = Vec::new();
        for role in roles {
            let email = format!("{role}@example.com");
            let password = add_user(&app, &w.org, &email, role).await;
            callers.push(Caller { app: &app, cred: session(&app, &email, &password).await });
        }
        let (f, d, p, o, pr) = (&w.flag, &w.dev, &w.prod, &w.org, &w.project);
        // (what, method, path, body, expected status for viewer, editor, admin, owner).
        // `{r}` in a body becomes the role's name, so that creations do not collide.
        let key_body = format!(r#"{{"name": "{{r}}", "type": "server", "environment_id": "{d}"}}"#);
        let service_body = format!(r#"{{"name": "{{r}}", "kind": "service", "organization_id": "{o}", "role": "viewer"}}"#);
        let matrix: Vec<Row> = vec![
            ("read a flag", Method::GET, format!("/api/v1/feature-flags/{f}"), None, [200, 200, 200, 200]),
            ("read the production config", Method::GET, format!("/api/v1/flags/{f}/environments/{p}/config"), None, [200, 200, 200, 200]),
            ("read the audit trail", Method::GET, "/api/v1/audit-logs".into(), None, [200, 200, 200, 200]),
            ("list members", Method::GET, format!("/api/v1/organizations/{o}/members"), None, [200, 200, 200, 200]),
            ("rename a flag", Method::PATCH, format!("/api/v1/feature-flags/{f}"), Some(r#"{"name": "by {r}"}"#), [403, 200, 200, 200]),
            ("create a flag", Method::POST, format!("/api/v1/projects/{pr}/feature-flags"), Some(r#"{"key": "flag-{r}"}"#), [403, 201, 201, 201]),
            ("create a segment", Method::POST, format!("/api/v1/projects/{pr}/segments"), Some(r#"{"key": "seg-{r}"}"#), [403, 201, 201, 201]),
            ("change config in development", Method::PATCH, format!("/api/v1/flags/{f}/environments/{d}/config"), Some(r#"{"comment": "{r}", "enabled": true}"#), [403, 200, 200, 200]),
            ("toggle in development", Method::PATCH, format!("/api/v1/flags/{f}/environments/{d}/config/toggle"), Some(r#"{"comment": "{r}"}"#), [403, 200, 200, 200]),
            ("change config in protected production", Method::PATCH, format!("/api/v1/flags/{f}/environments/{p}/config"), Some(r#"{"comment": "{r}", "rules": []}"#), [403, 403, 200, 200]),
            ("toggle in protected production", Method::PATCH, format!("/api/v1/flags/{f}/environments/{p}/config/toggle"), Some(r#"{"comment": "{r}"}"#), [403, 403, 200, 200]),
            ("create an API key", Method::POST, format!("/api/v1/projects/{pr}/api-keys"), Some(key_body.as_str()), [403, 403, 201, 201]),
            ("list webhooks", Method::GET, format!("/api/v1/projects/{pr}/webhooks"), None, [403, 403, 200, 200]),
            ("create a webhook", Method::POST, format!("/api/v1/projects/{pr}/webhooks"), Some(r#"{"name": "{r}", "url": "https://hooks.example.com/{r}"}"#), [403, 403, 201, 201]),
            ("create an environment", Method::POST, format!("/api/v1/projects/{pr}/environments"), Some(r#"{"key": "env-{r}"}"#), [403, 403, 201, 201]),
            ("rename the organization", Method::PATCH, format!("/api/v1/organizations/{o}"), Some(r#"{"name": "Renamed by {r}"}"#), [403, 403, 200, 200]),
            ("add a member", Method::POST, format!("/api/v1/organizations/{o}/members"), Some(r#"{"email": "new-{r}@example.com", "role": "viewer"}"#), [403, 403, 201, 201]),
            ("add an owner", Method::POST, format!("/api/v1/organizations/{o}/members"), Some(r#"{"email": "owner-{r}@example.com", "role": "owner"}"#), [403, 403, 403, 201]),
            ("create a service token", Method::POST, "/api/v1/tokens".into(), Some(service_body.as_str()), [403, 403, 201, 201]),
            ("create a personal token", Method::POST, "/api/v1/tokens".into(), Some(r#"{"name": "mine {r}"}"#), [201, 201, 201, 201]),
            // Still has projects (409), but only an owner gets as far as being told so.
            ("delete the organization", Method::DELETE, format!("/api/v1/organizations/{o}"), None, [403, 403, 403, 409]),
            // Another organization's resources do not exist for its non-members.
            ("read another organization's project", Method::GET, format!("/api/v1/projects/{}", w.other_project), None, [404, 404, 404, 404]),
            ("read another organization's flag", Method::GET, format!("/api/v1/feature-flags/{}", w.other_flag), None, [404, 404, 404, 404]),
            ("change another organization's flag", Method::PATCH, format!("/api/v1/feature-flags/{}", w.other_flag), Some(r#"{"name": "x"}"#), [404, 404, 404, 404]),
            ("list another organization's flags", Method::GET, format!("/api/v1/projects/{}/feature-flags", w.other_project), None, [404, 404, 404, 404]),
        ];
        for (what, method, path, body, expected) in &matrix {
            for (i, caller) in callers.iter().enumerate() {
                let body = body.map(|b| serde_json::from_str::<Value>(&b.replace("{r}", roles[i])).expect("test body"));
                let r = caller.send(method.clone(), path, body).await;
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                assert_eq!(status, expected[i], "{} may {what}? {method} {path} answered {status}: {text}", roles[i]);
                if status == 403 {
                    assert!(text.contains("\"forbidden\""), "{text}");
                }
                if status == 404 {
                    assert!(!text.contains("secret"), "a 404 must not describe the resource: {text}");
                }
            }
        }
        // Listings show only one's own organizations.
        let orgs = json_ok(callers[0].send(Method::GET, "/api/v1/organizations", None).await).await;
        assert_eq!(orgs["total"], 1, "{orgs}");
        let projects = json_ok(callers[3].send(Method::GET, "/api/v1/projects", None).await).await;
        assert!(projects["items"].as_array().unwrap().iter().all(|p| p["key"] != "secret-project"), "{projects}");
        // Creating a project in another organization: as if it did not exist.
        let r = callers[3].send(Method::POST, "/api/v1/projects", Some(json!({"organization_id": default_other(&app).await, "key": "sneaky"}))).await;
        error_of(r, 400, "invalid_request").await;
    }

    async fn editors_cannot_archive_what_a_protected_environment_serves_but_may_kill_it(app) {
        let w = world(&app).await;
        let password = add_user(&app, &w.org, "ed@example.com", "editor").await;
        let editor = Caller { app: &app, cred: session(&app, "ed@example.com", &password).await };
        // Enabled only in development: the editor may kill it there and archive it.
        json_ok(app.patch(&format!("/api/v1/flags/{}/environments/{}/config/toggle", w.flag, w.dev), json!({"enabled": true})).await).await;
        json_ok(editor.send(Method::POST, &format!("/api/v1/feature-flags/{}/kill-switch", w.flag), Some(json!({"reason": "dev only"}))).await).await;
        // Enabled in production: killing it there, archiving or deleting it needs admin.
        json_ok(app.patch(&format!("/api/v1/flags/{}/environments/{}/config/toggle", w.flag, w.prod), json!({"enabled": true})).await).await;
        let kill_dev = editor.send(Method::POST, &format!("/api/v1/feature-flags/{}/kill-switch", w.flag), Some(json!({"reason": "dev", "environment_id": w.dev}))).await;
        json_ok(kill_dev).await;
        error_of(editor.send(Method::PATCH, &format!("/api/v1/feature-flags/{}/archive", w.flag), None).await, 403, "forbidden").await;
        error_of(editor.send(Method::DELETE, &format!("/api/v1/feature-flags/{}", w.flag), None).await, 403, "forbidden").await;
        let bulk = editor.send(Method::POST, &format!("/api/v1/projects/{}/feature-flags/bulk", w.project), Some(json!({"action": "disable", "flag_ids": [w.flag]}))).await;
        error_of(bulk, 403, "forbidden").await;
        let bulk_enable = editor.send(Method::POST, &format!("/api/v1/projects/{}/feature-flags/bulk", w.project), Some(json!({"action": "enable", "flag_ids": [w.flag], "environment_id": w.prod}))).await;
        error_of(bulk_enable, 403, "forbidden").await;
        // The simple API follows the same rule: production is protected.
        let simple = editor.send(Method::PUT, "/v1/feature-flags/checkout", Some(json!({"enabled": false}))).await;
        error_of(simple, 403, "forbidden").await;
        json_ok(editor.send(Method::PUT, "/v1/feature-flags/checkout?environment=development", Some(json!({"enabled": true}))).await).await;
        // Nothing of the refused changes happened.
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", w.flag, w.prod)).await).await;
        assert_eq!(config["enabled"], true);
        // But stopping a flag is the safe direction: the editor's kill switch stops it in
        // production too, audited.
        let kill = json_ok(editor.send(Method::POST, &format!("/api/v1/feature-flags/{}/kill-switch", w.flag), Some(json!({"reason": "prod is on fire"}))).await).await;
        assert_eq!(kill["changed"], 2, "production and development: {kill}");
        let config = json_ok(app.get(&format!("/api/v1/flags/{}/environments/{}/config", w.flag, w.prod)).await).await;
        assert_eq!(config["enabled"], false);
        let audit = json_ok(app.get(&format!("/api/v1/audit-logs?action=flag.kill_switch&resource_id={}", w.flag)).await).await;
        assert_eq!(audit["items"][0]["comment"], "prod is on fire", "{audit}");
        // An unprotected production environment is the editors' again.
        json_ok(app.patch(&format!("/api/v1/environments/{}", w.prod), json!({"protected": false})).await).await;
        json_ok(editor.send(Method::PATCH, &format!("/api/v1/feature-flags/{}/archive", w.flag), None).await).await;
    }

    async fn cookie_sessions_need_csrf_for_changes_and_end_on_logout(app) {
        let w = world(&app).await;
        let password = add_user(&app, &w.org, "ann@example.com", "admin").await;
        let Cred::Session { cookie, csrf } = session(&app, "ann@example.com", &password).await else { unreachable!() };
        let with_cookie = |m: Method, path: &str| app.anonymous(m, path).header(COOKIE, cookie.as_str());
        // Reads need no CSRF token.
        let me = json_ok(with_cookie(Method::GET, "/api/v1/auth/session").send().await.unwrap()).await;
        assert_eq!(me["kind"], "session");
        assert_eq!(me["user"]["email"], "ann@example.com");
        assert_eq!(me["csrf_token"], csrf.as_str());
        assert_eq!(me["organizations"][0]["role"], "admin");
        assert!(me["user"].get("password_hash").is_none(), "{me}");
        // Changes without it, or with a wrong one, are refused and change nothing.
        let path = format!("/api/v1/feature-flags/{}", w.flag);
        let r = with_cookie(Method::PATCH, &path).json(&json!({"name": "csrf"})).send().await.unwrap();
        error_of(r, 403, "forbidden").await;
        let r = with_cookie(Method::PATCH, &path).header("x-csrf-token", "0".repeat(64)).json(&json!({"name": "csrf"})).send().await.unwrap();
        error_of(r, 403, "forbidden").await;
        let flag = json_ok(app.get(&path).await).await;
        assert_eq!(flag["name"], "checkout");
        let r = with_cookie(Method::PATCH, &path).header("x-csrf-token", &csrf).json(&json!({"name": "csrf ok"})).send().await.unwrap();
        json_ok(r).await;
        // Logout needs the token too, then the cookie is worthless.
        error_of(with_cookie(Method::POST, "/api/v1/auth/logout").send().await.unwrap(), 403, "forbidden").await;
        let out = with_cookie(Method::POST, "/api/v1/auth/logout").header("x-csrf-token", &csrf).send().await.unwrap();
        assert_eq!(out.status(), 204);
        assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
        error_of(with_cookie(Method::GET, "/api/v1/auth/session").send().await.unwrap(), 401, "unauthorized").await;
        // A made-up cookie is no session.
        let r = app.anonymous(Method::GET, "/api/v1/auth/session").header(COOKIE, "vexil_session=deadbeef").send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
    }

    async fn tokens_act_within_their_role_and_stop_at_once_when_revoked(app) {
        let w = world(&app).await;
        let password = add_user(&app, &w.org, "olga@example.com", "owner").await;
        let owner = Caller { app: &app, cred: session(&app, "olga@example.com", &password).await };
        // A personal token capped at viewer reads but does not write, though its user owns.
        let capped = json_status(owner.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci read-only", "role": "viewer"}))).await, 201).await;
        let secret = capped["token"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("vx_pat_"), "{secret}");
        assert_eq!(capped["prefix"], &secret[..12]);
        let reader = Caller { app: &app, cred: Cred::Token(secret.clone()) };
        json_ok(reader.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.flag), None).await).await;
        error_of(reader.send(Method::PATCH, &format!("/api/v1/feature-flags/{}", w.flag), Some(json!({"name": "x"}))).await, 403, "forbidden").await;
        let me = json_ok(reader.send(Method::GET, "/api/v1/auth/session", None).await).await;
        assert_eq!(me["kind"], "personal_token");
        assert_eq!(me["role_cap"], "viewer");
        // The secret is never shown again.
        let listed = json_ok(owner.send(Method::GET, "/api/v1/tokens", None).await).await;
        let text = listed.to_string();
        assert!(!text.contains(&secret) && !text.contains("token_hash"), "{text}");
        let record = json_ok(owner.send(Method::GET, &format!("/api/v1/tokens/{}", capped["id"].as_str().unwrap()), None).await).await;
        assert!(record["last_used_at"].is_string(), "use is recorded: {record}");
        // Revoked: refused on the very next request.
        json_ok(owner.send(Method::PATCH, &format!("/api/v1/tokens/{}/revoke", capped["id"].as_str().unwrap()), None).await).await;
        error_of(reader.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.flag), None).await, 401, "unauthorized").await;

        // A service token: editor of this organization only.
        let svc = json_status(owner.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "deployer", "kind": "service", "organization_id": w.org, "role": "editor"}))).await, 201).await;
        let bot = Caller { app: &app, cred: Cred::Token(svc["token"].as_str().unwrap().to_owned()) };
        json_ok(bot.send(Method::PATCH, &format!("/api/v1/flags/{}/environments/{}/config/toggle", w.flag, w.dev), Some(json!({}))).await).await;
        error_of(bot.send(Method::PATCH, &format!("/api/v1/flags/{}/environments/{}/config/toggle", w.flag, w.prod), Some(json!({}))).await, 403, "forbidden").await;
        error_of(bot.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.other_flag), None).await, 404, "not_found").await;
        error_of(bot.send(Method::POST, "/api/v1/organizations", Some(json!({"key": "bot-org"}))).await, 403, "forbidden").await;
        error_of(bot.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "mine"}))).await, 403, "forbidden").await;
        // Nor does it mint tokens that would outlive it, or create people.
        error_of(bot.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "x", "kind": "service", "organization_id": w.org, "role": "viewer"}))).await, 403, "forbidden").await;
        error_of(bot.send(Method::POST, &format!("/api/v1/organizations/{}/members", w.org), Some(json!({"email": "bot-made@example.com", "role": "viewer"}))).await, 403, "forbidden").await;
        // HEAD is allowed wherever GET is.
        assert_eq!(bot.req(Method::HEAD, &format!("/api/v1/feature-flags/{}", w.flag)).send().await.unwrap().status(), 200);
        // Its changes are audited under its name.
        let trail = json_ok(app.get(&format!("/api/v1/audit-logs?actor_id={}", svc["id"].as_str().unwrap())).await).await;
        assert_eq!(trail["items"][0]["actor"]["name"], "service token deployer", "{trail}");
        assert_eq!(trail["items"][0]["organization_id"], w.org.as_str());
        // No token outlives its role: an admin cannot mint an owner token.
        let pw = add_user(&app, &w.org, "adam@example.com", "admin").await;
        let admin = Caller { app: &app, cred: session(&app, "adam@example.com", &pw).await };
        error_of(admin.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "x", "kind": "service", "organization_id": w.org, "role": "owner"}))).await, 403, "forbidden").await;
        // Expiry: refused once past.
        let soon = vexil_core::time::format_rfc3339(vexil_server::store::now_ms() + 1500);
        let short = json_status(owner.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "short", "expires_at": soon}))).await, 201).await;
        let short = Caller { app: &app, cred: Cred::Token(short["token"].as_str().unwrap().to_owned()) };
        json_ok(short.send(Method::GET, "/api/v1/auth/session", None).await).await;
        tokio::time::sleep(Duration::from_millis(1700)).await;
        error_of(short.send(Method::GET, "/api/v1/auth/session", None).await, 401, "unauthorized").await;
        // Bad input is a clear 400.
        let past = json_status(owner.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}))).await, 400).await;
        assert!(past["error"]["details"]["fields"]["expires_at"].is_string(), "{past}");
        error_of(owner.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "x", "role": "god"}))).await, 400, "invalid_request").await;
        // Removing a member takes effect at once for their sessions and tokens.
        let pat = json_status(admin.send(Method::POST, "/api/v1/tokens", Some(json!({"name": "adam's"}))).await, 201).await;
        let adams = Caller { app: &app, cred: Cred::Token(pat["token"].as_str().unwrap().to_owned()) };
        json_ok(adams.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.flag), None).await).await;
        let adam_id = json_ok(admin.send(Method::GET, "/api/v1/users/me", None).await).await["user"]["id"].as_str().unwrap().to_owned();
        assert_eq!(owner.send(Method::DELETE, &format!("/api/v1/organizations/{}/members/{adam_id}", w.org), None).await.status(), 204);
        error_of(adams.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.flag), None).await, 404, "not_found").await;
        error_of(admin.send(Method::GET, &format!("/api/v1/feature-flags/{}", w.flag), None).await, 404, "not_found").await;
    }

    async fn failed_logins_are_limited_and_audited_without_the_password(app) {
        let w = world(&app).await;
        let password = add_user(&app, &w.org, "vic@example.com", "viewer").await;
        for _ in 0..5 {
            error_of(login(&app, "vic@example.com", "wrong password 123").await, 401, "invalid_credentials").await;
        }
        // Over the limit: refused without checking, even with the right password.
        let r = login(&app, "VIC@example.com", &password).await;
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 60, "{retry}");
        error_of(r, 429, "rate_limited").await;
        // An unknown account answers like a wrong password.
        error_of(login(&app, "nobody@example.com", "whatever 123456").await, 401, "invalid_credentials").await;
        // Malformed input is a 400, not a login attempt.
        error_of(login(&app, "not-an-email", "x").await, 400, "invalid_request").await;
        let failed = json_ok(app.get("/api/v1/audit-logs?action=user.login_failed").await).await;
        assert_eq!(failed["total"], 6, "{failed}");
        let everything = json_ok(app.get("/api/v1/audit-logs?limit=500").await).await.to_string();
        assert!(!everything.contains("wrong password") && !everything.contains(&password), "no password in the audit trail");
        // Other accounts are unaffected; a success is audited.
        let pw2 = add_user(&app, &w.org, "wes@example.com", "viewer").await;
        json_ok(login(&app, "wes@example.com", &pw2).await).await;
        let logins = json_ok(app.get("/api/v1/audit-logs?action=user.login").await).await;
        assert_eq!(logins["items"][0]["actor"]["name"], "wes@example.com");
        // Membership changes are audited too.
        let adds = json_ok(app.get("/api/v1/audit-logs?action=member.add").await).await;
        assert_eq!(adds["total"], 2, "{adds}");
        let verify = json_ok(app.get("/api/v1/audit-logs/verify").await).await;
        assert_eq!(verify["valid"], true, "{verify}");
    }

    async fn owners_are_protected_and_passwords_can_be_changed(app) {
        let w = world(&app).await;
        let pw = add_user(&app, &w.org, "own@example.com", "owner").await;
        let owner = Caller { app: &app, cred: session(&app, "own@example.com", &pw).await };
        let me = json_ok(owner.send(Method::GET, "/api/v1/users/me", None).await).await;
        let my_id = me["user"]["id"].as_str().unwrap().to_owned();
        // The only owner can neither leave nor be demoted.
        let r = owner.send(Method::PATCH, &format!("/api/v1/organizations/{}/members/{my_id}", w.org), Some(json!({"role": "admin"}))).await;
        error_of(r, 409, "conflict").await;
        let r = owner.send(Method::DELETE, &format!("/api/v1/organizations/{}/members/{my_id}", w.org), None).await;
        error_of(r, 409, "conflict").await;
        // An admin cannot touch an owner.
        let apw = add_user(&app, &w.org, "adm@example.com", "admin").await;
        let admin = Caller { app: &app, cred: session(&app, "adm@example.com", &apw).await };
        let r = admin.send(Method::DELETE, &format!("/api/v1/organizations/{}/members/{my_id}", w.org), None).await;
        error_of(r, 403, "forbidden").await;
        // Adding someone twice is a conflict; a bad role a 400.
        let r = owner.send(Method::POST, &format!("/api/v1/organizations/{}/members", w.org), Some(json!({"email": "adm@example.com", "role": "viewer"}))).await;
        error_of(r, 409, "conflict").await;
        let r = owner.send(Method::POST, &format!("/api/v1/organizations/{}/members", w.org), Some(json!({"email": "x@example.com", "role": "root"}))).await;
        error_of(r, 400, "invalid_request").await;
        // An account whose password an admin of one organization knows joins no other
        // organization until its user sets their own password.
        let known = add_user(&app, &w.org, "fresh@example.com", "viewer").await;
        let other = default_other(&app).await;
        let r = owner.send(Method::POST, "/api/v1/organizations", Some(json!({"key": "mallory"}))).await;
        let mallory_org = json_status(r, 201).await["id"].as_str().unwrap().to_owned();
        let r = owner.send(Method::POST, &format!("/api/v1/organizations/{mallory_org}/members"), Some(json!({"email": "fresh@example.com", "role": "viewer"}))).await;
        error_of(r, 409, "conflict").await;
        let fresh = Caller { app: &app, cred: session(&app, "fresh@example.com", &known).await };
        let r = fresh.send(Method::PUT, "/api/v1/users/me/password", Some(json!({"current_password": known, "new_password": "my very own password"}))).await;
        assert_eq!(r.status(), 204);
        let r = owner.send(Method::POST, &format!("/api/v1/organizations/{mallory_org}/members"), Some(json!({"email": "fresh@example.com", "role": "viewer"}))).await;
        json_status(r, 201).await;
        let _ = other;
        // Users create organizations and own them.
        let created = json_status(owner.send(Method::POST, "/api/v1/organizations", Some(json!({"key": "mine"}))).await, 201).await;
        let members = json_ok(owner.send(Method::GET, &format!("/api/v1/organizations/{}/members", created["id"].as_str().unwrap()), None).await).await;
        assert_eq!(members["items"][0]["role"], "owner");
        assert_eq!(owner.send(Method::DELETE, &format!("/api/v1/organizations/{}", created["id"].as_str().unwrap()), None).await.status(), 204);
        // Password change: the wrong current password is refused; the right one ends sessions.
        let r = owner.send(Method::PUT, "/api/v1/users/me/password", Some(json!({"current_password": "nope nope nope", "new_password": "a brand new password"}))).await;
        let err = error_of(r, 401, "invalid_credentials").await;
        assert_eq!(err["message"], "the current password is wrong", "not a login failure");
        let r = owner.send(Method::PUT, "/api/v1/users/me/password", Some(json!({"current_password": pw, "new_password": "short"}))).await;
        error_of(r, 400, "invalid_request").await;
        let r = owner.send(Method::PUT, "/api/v1/users/me/password", Some(json!({"current_password": pw, "new_password": "a brand new password"}))).await;
        assert_eq!(r.status(), 204);
        error_of(owner.send(Method::GET, "/api/v1/users/me", None).await, 401, "unauthorized").await;
        error_of(login(&app, "own@example.com", &pw).await, 401, "invalid_credentials").await;
        json_ok(login(&app, "own@example.com", "a brand new password").await).await;
    }

    async fn unauthenticated_requests_get_401_everywhere(app) {
        let w = world(&app).await;
        for path in ["/api/v1/organizations".to_owned(), format!("/api/v1/feature-flags/{}", w.flag), "/api/v1/tokens".into(), "/api/v1/users/me".into(), "/api/v1/audit-logs".into(), "/v1/feature-flags/".into()] {
            let r = app.anonymous(Method::GET, &path).send().await.unwrap();
            error_of(r, 401, "unauthorized").await;
            let r = app.anonymous(Method::GET, &path).bearer_auth("vx_pat_not-a-real-token").send().await.unwrap();
            error_of(r, 401, "unauthorized").await;
        }
    }
}

/// The id of organization `other` (created by `world`).
async fn default_other(app: &TestApp) -> String {
    let page = json_ok(app.get("/api/v1/organizations").await).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "other")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn short_sessions(config: &mut vexil_server::Config) {
    config.session_idle_timeout = 1;
    config.session_lifetime = 3;
    config.secure_cookies = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_and_at_their_absolute_limit() {
    let app = TestApp::spawn_with(crate::Backend::Sqlite, short_sessions)
        .await
        .expect("sqlite app");
    let org = default_org(&app).await;
    let pw = add_user(&app, &org, "sam@example.com", "viewer").await;
    let r = login(&app, "sam@example.com", &pw).await;
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure"),
        "configured for TLS"
    );
    drop(r);
    // Idle for longer than the timeout: gone.
    let idle = Caller {
        app: &app,
        cred: session(&app, "sam@example.com", &pw).await,
    };
    json_ok(idle.send(Method::GET, "/api/v1/auth/session", None).await).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    error_of(
        idle.send(Method::GET, "/api/v1/auth/session", None).await,
        401,
        "unauthorized",
    )
    .await;
    // Busy, but past the absolute lifetime: gone too.
    let busy = Caller {
        app: &app,
        cred: session(&app, "sam@example.com", &pw).await,
    };
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2600) {
        json_ok(busy.send(Method::GET, "/api/v1/auth/session", None).await).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    error_of(
        busy.send(Method::GET, "/api/v1/auth/session", None).await,
        401,
        "unauthorized",
    )
    .await;
}

fn behind_proxy(config: &mut vexil_server::Config) {
    config.trusted_proxies = Some("127.0.0.1".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_from_trusted_proxies_only() {
    let failed_from = |app: &TestApp, forwarded: &'static str| {
        let r = app
            .anonymous(Method::POST, "/api/v1/auth/login")
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": "nobody@example.com", "password": "wrong password 1"}))
            .send();
        async move { error_of(r.await.unwrap(), 401, "invalid_credentials").await }
    };
    // Directly exposed: a client's X-Forwarded-For proves nothing.
    let direct = TestApp::spawn(crate::Backend::Sqlite).await.expect("app");
    failed_from(&direct, "198.51.100.7").await;
    let trail = json_ok(
        direct
            .get("/api/v1/audit-logs?action=user.login_failed")
            .await,
    )
    .await;
    assert_eq!(trail["items"][0]["ip"], "127.0.0.1", "{trail}");
    // Behind a trusted proxy: the address it saw, for the audit trail and the limits.
    let proxied = TestApp::spawn_with(crate::Backend::Sqlite, behind_proxy)
        .await
        .expect("app");
    failed_from(&proxied, "6.6.6.6, 198.51.100.7").await;
    let trail = json_ok(
        proxied
            .get("/api/v1/audit-logs?action=user.login_failed")
            .await,
    )
    .await;
    assert_eq!(trail["items"][0]["ip"], "198.51.100.7", "{trail}");
}
