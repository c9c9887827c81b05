//! Single sign-on against a small OpenID Connect provider started by the test itself:
//! authorization code + PKCE, the ID token's checks, user provisioning, and the refusals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Backend, TestApp, error_of, json_ok, json_status};

const CLIENT_ID: &str = "vexil-test";
const CLIENT_SECRET: &str = "provider-secret-123";

/// What the provider does with the next ID token, for the refusal cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Twist {
    None,
    WrongAudience,
    WrongNonce,
    Expired,
    Unverified,
}

#[derive(Default)]
struct Provider {
    base: String,
    /// code → (PKCE challenge, nonce, redirect_uri)
    codes: HashMap<String, (String, String, String)>,
    email: String,
    twist: Option<Twist>,
}

type Shared = Arc<Mutex<Provider>>;

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

async fn discovery(State(p): State<Shared>) -> Response {
    let base = p.lock().unwrap().base.clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
    }))
    .into_response()
}

async fn authorize(State(p): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].contains("openid"));
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    p.lock().unwrap().codes.insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q["nonce"].clone(),
            q["redirect_uri"].clone(),
        ),
    );
    let to = format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn token(State(p): State<Shared>, body: String) -> Response {
    let f: HashMap<String, String> = serde_urlencoded::from_str(&body).expect("a form body");
    let mut p = p.lock().unwrap();
    let Some((challenge, nonce, redirect)) = p.codes.remove(&f["code"]) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verifier_ok = b64(&Sha256::digest(f["code_verifier"].as_bytes())) == challenge;
    if f["client_secret"] != CLIENT_SECRET
        || f["grant_type"] != "authorization_code"
        || f["redirect_uri"] != redirect
        || !verifier_ok
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let twist = p.twist.unwrap_or(Twist::None);
    let now = vexil_server::store::now_ms() / 1000;
    let claims = json!({
        "iss": p.base,
        "sub": "user-123",
        "aud": if twist == Twist::WrongAudience { "someone-else" } else { CLIENT_ID },
        "exp": if twist == Twist::Expired { now - 10 } else { now + 300 },
        "iat": now,
        "nonce": if twist == Twist::WrongNonce { "replayed" } else { nonce.as_str() },
        "email": p.email,
        "email_verified": twist != Twist::Unverified,
        "name": "Sso User",
    });
    let mut claims = claims;
    if twist == Twist::Unverified {
        // Silence is not verification.
        claims.as_object_mut().unwrap().remove("email_verified");
    }
    let jwt = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"signature")
    );
    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": jwt}))
        .into_response()
}

/// The provider's address, for the server configuration (a `fn` pointer captures nothing).
static ISSUER: OnceLock<String> = OnceLock::new();

fn with_sso(config: &mut vexil_server::Config) {
    config.oidc_issuer = ISSUER.get().cloned();
    config.oidc_client_id = Some(CLIENT_ID.into());
    config.oidc_client_secret = Some(secrecy::SecretString::from(CLIENT_SECRET));
    config.oidc_organization = Some("default".into());
    config.oidc_role = "editor".into();
}

async fn start_provider() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared: Shared = Arc::new(Mutex::new(Provider {
        base: base.clone(),
        email: "sso@example.com".into(),
        ..Provider::default()
    }));
    let router = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    ISSUER.set(base).expect("one provider per test binary");
    shared
}

fn cookie_value(set_cookie: &str, name: &str) -> String {
    set_cookie
        .strip_prefix(&format!("{name}="))
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned()
}

/// Walks the browser's part of the flow; returns the callback's response.
async fn sign_in(app: &TestApp, tamper_state: bool) -> reqwest::Response {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(app.url("/api/v1/auth/oidc/login?return_to=/flags"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let to_provider = start.headers()[LOCATION].to_str().unwrap().to_owned();
    let flow = start.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        flow.contains("HttpOnly") && flow.contains("SameSite=Lax"),
        "{flow}"
    );
    let flow = cookie_value(&flow, "vexil_oidc");
    let at_provider = browser.get(&to_provider).send().await.unwrap();
    let mut back = at_provider.headers()[LOCATION].to_str().unwrap().to_owned();
    if tamper_state {
        back = back.replace("state=", "state=x");
    }
    browser
        .get(&back)
        .header(COOKIE, format!("vexil_oidc={flow}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_with_pkce_creates_the_user_and_opens_a_session() {
    let provider = start_provider().await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_sso)
        .await
        .expect("app");

    let done = sign_in(&app, false).await;
    assert_eq!(done.status(), 303, "{:?}", done.text().await);
    assert_eq!(done.headers()[LOCATION], "/flags");
    let cookies: Vec<String> = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("vexil_session="))
        .expect("a session cookie");
    assert!(
        cookies.iter().any(|c| c.starts_with("vexil_oidc=;")),
        "the flow cookie is cleared: {cookies:?}"
    );
    let me = json_ok(
        app.anonymous(Method::GET, "/api/v1/auth/session")
            .header(
                COOKIE,
                format!("vexil_session={}", cookie_value(session, "vexil_session")),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["user"]["email"], "sso@example.com");
    assert_eq!(me["user"]["name"], "Sso User");
    assert_eq!(
        me["organizations"][0]["role"], "editor",
        "joined the configured organization: {me}"
    );
    // A second sign-on finds the same user.
    assert_eq!(sign_in(&app, false).await.status(), 303);
    let users = json_ok(app.get("/api/v1/audit-logs?action=user.create").await).await;
    assert_eq!(users["total"], 1, "{users}");
    let logins = json_ok(app.get("/api/v1/audit-logs?action=user.login").await).await;
    assert_eq!(logins["items"][0]["after"]["method"], "oidc");

    // Refusals: a forged state, and ID tokens that are not for us, replayed, expired or
    // without a verified email. None creates a session.
    let forged = sign_in(&app, true).await;
    assert!(forged.headers().get(SET_COOKIE).is_none());
    error_of(forged, 400, "invalid_request").await;
    for twist in [
        Twist::WrongAudience,
        Twist::WrongNonce,
        Twist::Expired,
        Twist::Unverified,
    ] {
        provider.lock().unwrap().twist = Some(twist);
        provider.lock().unwrap().email = format!("{twist:?}@example.com").to_lowercase();
        let r = sign_in(&app, false).await;
        assert!(
            r.headers()
                .get_all(SET_COOKIE)
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("vexil_session")),
            "{twist:?}"
        );
        let e = error_of(r, 403, "forbidden").await;
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("single sign-on failed"),
            "{twist:?}: {e}"
        );
    }
    // An account an organization admin created (password known to them) is claimed by
    // the person the provider vouches for: the admin's password stops working.
    provider.lock().unwrap().twist = None;
    provider.lock().unwrap().email = "made@example.com".into();
    let org = json_ok(app.get("/api/v1/organizations").await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = json_status(
        app.post(
            &format!("/api/v1/organizations/{org}/members"),
            json!({"email": "made@example.com", "role": "viewer"}),
        )
        .await,
        201,
    )
    .await;
    let known = made["password"].as_str().unwrap().to_owned();
    let login = |pw: String| {
        app.anonymous(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": "made@example.com", "password": pw}))
            .send()
    };
    assert_eq!(login(known.clone()).await.unwrap().status(), 200);
    assert_eq!(sign_in(&app, false).await.status(), 303);
    assert_eq!(
        login(known).await.unwrap().status(),
        401,
        "the admin-set password is dead"
    );
    let claimed = json_ok(app.get("/api/v1/audit-logs?action=user.claimed").await).await;
    assert_eq!(claimed["total"], 1, "{claimed}");

    // No sign-in in progress: a clear 400.
    let r = app
        .anonymous(Method::GET, "/api/v1/auth/oidc/callback?code=x&state=y")
        .send()
        .await
        .unwrap();
    error_of(r, 400, "invalid_request").await;
    let r = app
        .anonymous(
            Method::GET,
            "/api/v1/auth/oidc/callback?error=access_denied&error_description=user+said+no",
        )
        .send()
        .await
        .unwrap();
    let e: Value = error_of(r, 403, "forbidden").await;
    assert!(
        e["message"].as_str().unwrap().contains("access_denied"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_single_sign_on_is_not_found() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let r = app
        .anonymous(Method::GET, "/api/v1/auth/oidc/login")
        .send()
        .await
        .unwrap();
    error_of(r, 404, "not_found").await;
}
