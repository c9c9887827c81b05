//! OpenID Connect single sign-on (authorization code flow with PKCE):
//! `GET /api/v1/auth/oidc/login?return_to=/path` redirects to the provider;
//! `GET /api/v1/auth/oidc/callback` exchanges the code at the provider's token endpoint,
//! checks the ID token's issuer, audience, expiry and nonce, finds or creates the user by
//! verified email, and opens a session like a password login.
//!
//! The flow's state (state, nonce, PKCE verifier, return path) travels in a short-lived
//! HttpOnly cookie rather than server memory, so the callback may reach any cluster node.
//! The ID token comes straight from the token endpoint over the server's own TLS
//! connection, so — as OpenID Connect Core §3.1.3.7 allows — its issuer is established by
//! that connection rather than by checking its signature.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::AppState;
use super::auth::AuthSettings;
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::sessions::start_session;
use crate::access::Role;
use crate::audit::RequestMeta;
use crate::credentials::{self, constant_time_eq};
use crate::manage::fields::check_email;
use crate::manage::{By, users};
use crate::store::{Store, now_ms};

/// The flow cookie's name; it lives only on the OIDC paths, for ten minutes.
const FLOW_COOKIE: &str = "vexil_oidc";
const FLOW_PATH: &str = "/api/v1/auth/oidc";
const FLOW_SECONDS: u64 = 600;
/// Largest response accepted from the provider.
const MAX_PROVIDER_BODY: usize = 256 * 1024;

/// Single sign-on settings (`--oidc-*`).
#[derive(Debug)]
pub(crate) struct OidcSettings {
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    redirect_url: Option<String>,
    /// Organization key and role for users new to Vexil.
    provision: Option<(String, Role)>,
    http: reqwest_tls::Client,
    discovery: OnceCell<Discovery>,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

impl OidcSettings {
    /// `None` unless issuer, client id and secret are all configured.
    pub(crate) fn from_config(c: &crate::Config) -> anyhow::Result<Option<OidcSettings>> {
        let (Some(issuer), Some(client_id), Some(secret)) =
            (&c.oidc_issuer, &c.oidc_client_id, &c.oidc_client_secret)
        else {
            anyhow::ensure!(
                c.oidc_issuer.is_none() && c.oidc_client_id.is_none(),
                "single sign-on needs --oidc-issuer, --oidc-client-id and VEXIL_OIDC_CLIENT_SECRET together"
            );
            return Ok(None);
        };
        let provision = match &c.oidc_organization {
            Some(org) => Some((
                org.clone(),
                Role::parse(&c.oidc_role).ok_or_else(|| {
                    anyhow::anyhow!("--oidc-role must be owner, admin, editor or viewer")
                })?,
            )),
            None => None,
        };
        anyhow::ensure!(
            secure_url(issuer),
            "--oidc-issuer must be an https:// URL (plain http only on loopback)"
        );
        let http = reqwest_tls::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest_tls::redirect::Policy::none())
            .build()?;
        Ok(Some(OidcSettings {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.clone(),
            client_secret: secret.clone(),
            redirect_url: c.oidc_redirect_url.clone(),
            provision,
            http,
            discovery: OnceCell::new(),
        }))
    }

    async fn discovery(&self) -> ApiResult<&Discovery> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc: Discovery = fetch_json(self.http.get(&url)).await?;
                // The ID token's trust rests on this TLS connection (see the module docs).
                if !secure_url(&doc.token_endpoint) || !secure_url(&doc.authorization_endpoint) {
                    tracing::error!("OIDC discovery names a non-https endpoint");
                    return Err(provider_error());
                }
                if doc.issuer.trim_end_matches('/') != self.issuer {
                    tracing::error!(expected = %self.issuer, got = %doc.issuer, "OIDC discovery names another issuer");
                    return Err(provider_error());
                }
                Ok(doc)
            })
            .await
    }
}

/// `https://`, or `http://` to a loopback address (a provider on the same machine).
fn secure_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn provider_error() -> ApiError {
    ApiError::Unavailable
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    request: reqwest_tls::RequestBuilder,
) -> ApiResult<T> {
    let response = request.send().await.map_err(|e| {
        tracing::warn!(error = %e, "the OIDC provider is unreachable");
        provider_error()
    })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|_| provider_error())?;
    if body.len() > MAX_PROVIDER_BODY {
        return Err(provider_error());
    }
    if !status.is_success() {
        tracing::warn!(status = %status, "the OIDC provider refused a request");
        return Err(ApiError::Forbidden(
            "the identity provider refused the sign-in; start again".into(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        tracing::warn!(error = %e, "the OIDC provider answered something unexpected");
        provider_error()
    })
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/oidc/login", get(oidc_login))
        .route("/api/v1/auth/oidc/callback", get(oidc_callback))
}

fn settings(auth: &AuthSettings) -> ApiResult<&OidcSettings> {
    auth.oidc
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("single sign-on is not configured".into()))
}

/// A path on this server to return to (never another site).
fn safe_return(path: Option<&str>) -> String {
    match path {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 512
                && !p.contains(['\\', ' '])
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn redirect_url(s: &OidcSettings, auth: &AuthSettings, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(url) = &s.redirect_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', '\\', '@', ' ']))
        .ok_or_else(|| ApiError::invalid("a Host header is needed to build the callback URL"))?;
    let scheme = if auth.secure_cookies { "https" } else { "http" };
    Ok(format!("{scheme}://{host}{FLOW_PATH}/callback"))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

fn pkce_challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/login", tag = "auth", security(()),
    params(("return_to" = Option<String>, Query, description = "A path on this server to land on after signing in (default `/`)")),
    responses(super::openapi::errors::Invalid,
        (status = 303, description = "To the identity provider (authorization code + PKCE); a short-lived HttpOnly cookie carries the flow's state", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 404, description = "Single sign-on is not configured (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 503, description = "The identity provider is unreachable (`unavailable`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn oidc_login(
    State(auth): State<Arc<AuthSettings>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> ApiResult<Response> {
    let s = settings(&auth)?;
    let discovery = s.discovery().await?;
    let state = credentials::random_secret("");
    let nonce = credentials::random_secret("");
    let verifier = credentials::random_secret("");
    let return_to = safe_return(q.return_to.as_deref());
    let redirect_uri = redirect_url(s, &auth, &headers)?;
    let params = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", s.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", "openid email profile"),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", pkce_challenge(&verifier).as_str()),
        ("code_challenge_method", "S256"),
    ])
    .map_err(|e| ApiError::Internal(e.into()))?;
    let separator = if discovery.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{separator}{params}", discovery.authorization_endpoint);
    let flow = format!(
        "{state}.{nonce}.{verifier}.{}",
        base64url(return_to.as_bytes())
    );
    let secure = if auth.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{FLOW_COOKIE}={flow}; Path={FLOW_PATH}; HttpOnly; SameSite=Lax; Max-Age={FLOW_SECONDS}{secure}"
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|e| ApiError::Internal(e.into()))?,
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The flow cookie: (state, nonce, verifier, return path).
fn flow_cookie(headers: &HeaderMap) -> Option<(String, String, String, String)> {
    let value = super::auth::cookie_value(headers, FLOW_COOKIE)?;
    let mut parts = value.split('.');
    let (state, nonce, verifier, back) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let back = String::from_utf8(base64url_decode(back)?).ok()?;
    Some((
        state.into(),
        nonce.into(),
        verifier.into(),
        safe_return(Some(&back)),
    ))
}

fn refused(message: &str) -> ApiError {
    ApiError::Forbidden(format!("single sign-on failed: {message}"))
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/callback", tag = "auth", security(()),
    params(("code" = Option<String>, Query, description = "From the identity provider"), ("state" = Option<String>, Query, description = "From the identity provider")),
    responses(
        (status = 303, description = "Signed in: a session cookie, and on to the `return_to` path", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "No sign-in in progress in this browser, or its state does not match (start again)", body = super::openapi::errors::ErrorBody),
        (status = 403, description = "The provider refused, or its ID token is not for this client, expired, replayed, or has no verified email", body = super::openapi::errors::ErrorBody),
        (status = 404, description = "Single sign-on is not configured (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 503, description = "The identity provider or the database is unreachable (`unavailable`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn oidc_callback(
    State(store): State<Arc<Store>>,
    State(auth): State<Arc<AuthSettings>>,
    headers: HeaderMap,
    meta: RequestMeta,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let s = settings(&auth)?;
    let (email, name, return_to) = identify(s, &auth, &headers, q).await?;
    let by = By {
        actor: crate::audit::Actor::system(),
        meta: meta.clone(),
    };
    let provision = s
        .provision
        .as_ref()
        .map(|(org, role)| (org.as_str(), *role));
    let user = users::find_or_create_by_sso(&store, &by, &email, &name, provision).await?;
    let mut response = start_session(&store, &auth, &user, &meta, "oidc", Some(&return_to)).await?;
    let clear = format!("{FLOW_COOKIE}=; Path={FLOW_PATH}; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Completes the flow with the provider: the verified email, the name and the path to
/// return to, or why the sign-in is refused.
async fn identify(
    s: &OidcSettings,
    auth: &AuthSettings,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> ApiResult<(String, String, String)> {
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        let text: String = format!("{error} {detail}").chars().take(200).collect();
        return Err(refused(text.trim()));
    }
    let (state, nonce, verifier, return_to) = flow_cookie(headers).ok_or_else(|| {
        ApiError::invalid(
            "no single sign-on in progress in this browser (or it expired); start again",
        )
    })?;
    let given_state = q.state.unwrap_or_default();
    if !constant_time_eq(given_state.as_bytes(), state.as_bytes()) {
        return Err(ApiError::invalid(
            "the sign-in state does not match; start again",
        ));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ApiError::invalid_field("code", "missing"))?;
    let discovery = s.discovery().await?;
    let redirect_uri = redirect_url(s, auth, headers)?;
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", s.client_id.as_str()),
        ("client_secret", s.client_secret.expose_secret()),
        ("code_verifier", verifier.as_str()),
    ])
    .map_err(|e| ApiError::Internal(e.into()))?;
    let tokens: Value = fetch_json(
        s.http
            .post(&discovery.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form),
    )
    .await?;
    let claims = tokens["id_token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .and_then(base64url_decode)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .ok_or_else(|| refused("the provider sent no readable ID token"))?;
    check_claims(s, &claims, &nonce)?;
    let email = claims["email"]
        .as_str()
        .ok_or_else(|| refused("the ID token has no email (request the email scope)"))?;
    // Accounts are matched by email: only an address the provider vouches for will do.
    if claims["email_verified"] != json!(true) {
        return Err(refused(
            "the provider does not say this email address is verified",
        ));
    }
    let email = check_email("email", email)?;
    let name = claims["name"]
        .as_str()
        .unwrap_or(&email)
        .chars()
        .take(200)
        .collect::<String>();
    Ok((email, name, return_to))
}

fn check_claims(s: &OidcSettings, claims: &Value, nonce: &str) -> ApiResult<()> {
    if claims["iss"].as_str().map(|i| i.trim_end_matches('/')) != Some(s.issuer.as_str()) {
        return Err(refused("the ID token is from another issuer"));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => *a == s.client_id,
        Value::Array(list) => list
            .iter()
            .any(|a| a.as_str() == Some(s.client_id.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(refused("the ID token is for another client"));
    }
    let now_secs = now_ms() / 1000;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now_secs) {
        return Err(refused("the ID token has expired"));
    }
    let given = claims["nonce"].as_str().unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), nonce.as_bytes()) {
        return Err(refused("the ID token's nonce does not match this sign-in"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_matches_rfc_7636() {
        for text in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "/a/path?x=1",
        ] {
            assert_eq!(
                base64url_decode(&base64url(text.as_bytes())).unwrap(),
                text.as_bytes()
            );
        }
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return(Some("/flags?x=1")), "/flags?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "evil",
            "/a b",
            "/\t/evil.example",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return(None), "/");
    }

    #[test]
    fn only_tls_or_loopback_providers() {
        assert!(secure_url("https://login.example.com/realms/x"));
        assert!(secure_url("http://127.0.0.1:8081"));
        assert!(secure_url("http://localhost/x"));
        assert!(!secure_url("http://login.example.com"));
        assert!(!secure_url("http://127.0.0.1.evil.example/"));
        assert!(!secure_url("ftp://x"));
    }
}
