//! Authentication of the management plane: `Authorization: Bearer <token>` (instance,
//! personal or service token, looked up by SHA-256 hash), or the browser's session cookie,
//! whose mutations must also carry the session's CSRF token in `X-CSRF-Token`. The
//! authenticated [`Principal`] (and its [`Actor`]) go into the request's extensions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::eval_auth::{EvalKey, presented_key};
use crate::access::{Principal, Role, Subject, TokenKind};
use crate::audit::{Actor, hash_secret};
use crate::credentials::constant_time_eq;
use crate::keys::{KeyRing, Refusal};
use crate::login_limit::LoginLimiter;
use crate::store::{Store, now_rfc3339, sessions, tokens, users};

/// The session cookie's name; behind TLS (`--secure-cookies`) it carries the `__Host-`
/// prefix, which browsers accept only from this host over HTTPS with `Path=/` — so a
/// sibling subdomain cannot plant a session of its own.
pub(crate) const SESSION_COOKIE: &str = "vexil_session";
pub(crate) const SECURE_SESSION_COOKIE: &str = "__Host-vexil_session";
/// The header that carries the CSRF token on cookie-authenticated mutations.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Longest credential accepted (a bound on work per request).
const MAX_CREDENTIAL: usize = 256;
/// `last_used_at` and a session's `last_seen_at` are written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Session and login settings, shared by the handlers.
#[derive(Debug)]
pub(crate) struct AuthSettings {
    pub(crate) session_idle: Duration,
    pub(crate) session_lifetime: Duration,
    pub(crate) secure_cookies: bool,
    pub(crate) limiter: LoginLimiter,
    /// Single sign-on, when configured.
    pub(crate) oidc: Option<super::oidc::OidcSettings>,
    /// The hash of `VEXIL_METRICS_TOKEN`, when `/metrics` needs it.
    pub(crate) metrics_token_hash: Option<String>,
}

impl AuthSettings {
    pub(crate) fn from_config(c: &crate::Config) -> anyhow::Result<AuthSettings> {
        Ok(AuthSettings {
            session_idle: Duration::from_secs(c.session_idle_timeout.max(1)),
            session_lifetime: Duration::from_secs(c.session_lifetime.max(1)),
            secure_cookies: c.secure_cookies,
            limiter: LoginLimiter::default(),
            oidc: super::oidc::OidcSettings::from_config(c)?,
            metrics_token_hash: c
                .metrics_token
                .as_ref()
                .map(|t| crate::audit::hash_secret(secrecy::ExposeSecret::expose_secret(t))),
        })
    }
}

/// The CSRF token of a session: derived from its secret, so nothing more is stored and a
/// script on another site, which cannot read the cookie, cannot compute it.
pub(crate) fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"vexil-csrf\0");
    h.update(session_secret.as_bytes());
    hex::encode(h.finalize())
}

impl AuthSettings {
    pub(crate) fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }
}

/// The value of cookie `name` in the `Cookie` headers, if any (and not oversized).
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 4096)
}

/// The session secret from the `Cookie` header, if any.
pub(crate) fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_value(headers, name).filter(|v| v.len() <= MAX_CREDENTIAL)
}

fn bearer(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_CREDENTIAL)
        .map(str::to_owned);
    Some(token.ok_or(ApiError::Unauthorized))
}

/// For the Simple API: its reads also take an environment API key (the front ends it was
/// written for hold one), which then fixes the environment; anything else, and every
/// write, is authenticated as by [`require_auth`].
pub(crate) async fn require_auth_or_api_key(
    State(keys): State<Arc<KeyRing>>,
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    mut req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD)
        && let Some(secret) = presented_key(req.headers())
    {
        match keys.authenticate(secret) {
            Ok(key) => {
                req.extensions_mut().insert(EvalKey(key));
                return next.run(req).await;
            }
            Err(Refusal::RateLimited { retry_after_secs }) => {
                return ApiError::TooManyRequests { retry_after_secs }.into_response();
            }
            // Not an API key: perhaps a management token.
            Err(Refusal::Invalid) => {}
        }
    }
    require_auth(State(store), State(settings), req, next).await
}

/// Rejects the request with 401 unless it carries a valid token or session (and, for a
/// session's mutation, its CSRF token: 403 without).
pub(crate) async fn require_auth(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    mut req: Request,
    next: Next,
) -> Response {
    // Only owned data is taken into the awaits: a `&Request` would make the future non-Send.
    let headers = req.headers();
    let bearer = bearer(headers);
    let cookie = session_cookie(headers, settings.cookie_name());
    // A cookie-authenticated change must prove it comes from our own pages.
    let csrf =
        (!matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)).then(|| {
            headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        });
    let result = match (bearer, cookie) {
        (Some(Ok(token)), _) => authenticate_token(&store, &token).await,
        (Some(Err(e)), _) => Err(e),
        (None, Some(secret)) => {
            authenticate_session(&store, &settings, &secret, csrf.as_deref()).await
        }
        (None, None) => Err(ApiError::Unauthorized),
    };
    match result {
        Ok(principal) => {
            req.extensions_mut().insert(principal.actor.clone());
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

fn expired(at: Option<&str>, now: &str) -> bool {
    at.is_some_and(|at| at <= now)
}

fn stale(last: Option<&str>) -> bool {
    let Some(last) = last else { return true };
    let threshold = vexil_core::time::format_rfc3339(
        crate::store::now_ms() - i64::try_from(TOUCH_EVERY.as_millis()).unwrap_or(60_000),
    );
    last <= threshold.as_str()
}

async fn authenticate_token(store: &Store, token: &str) -> Result<Principal, ApiError> {
    // Lookup by hash: the database compares digests, never the secret itself, so the
    // comparison leaks nothing useful about the secret through timing.
    let mut conn = store.read().await?;
    let row = tokens::find_by_hash(&mut conn, &hash_secret(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let now = now_rfc3339();
    if row.revoked_at.is_some() || expired(row.expires_at.as_deref(), &now) {
        return Err(ApiError::Unauthorized);
    }
    let cap = row.role;
    let (subject, actor, cap) = match row.kind {
        TokenKind::Personal => {
            let user_id = row.user_id.clone().ok_or(ApiError::Unauthorized)?;
            let user = users::get(&mut conn, &user_id)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            let actor = Actor {
                id: user.id.clone(),
                name: format!("{} (token {})", user.email, row.name),
            };
            (Subject::User { user_id }, actor, cap)
        }
        TokenKind::Service => {
            let organization_id = row.organization_id.clone().ok_or(ApiError::Unauthorized)?;
            let actor = Actor {
                id: row.id.clone(),
                name: format!("service token {}", row.name),
            };
            (Subject::Service { organization_id }, actor, cap)
        }
        // The instance token predates roles: it is the operator's, an owner everywhere.
        TokenKind::Instance => {
            let actor = Actor {
                id: row.id.clone(),
                name: row.name.clone(),
            };
            (Subject::Instance, actor, Role::Owner)
        }
    };
    if stale(row.last_used_at.as_deref()) {
        // Not a `Store::write`: a usage stamp is not an audited mutation.
        let _ = tokens::touch(&mut conn, &row.id, &now).await;
    }
    Ok(Principal {
        actor,
        subject,
        cap,
        token_id: Some(row.id),
        session_id: None,
    })
}

/// A live session for this cookie secret, checked for expiry and, for a change (`csrf` is
/// the header's value, empty when absent), its CSRF token.
pub(crate) async fn authenticate_session(
    store: &Store,
    settings: &AuthSettings,
    secret: &str,
    csrf: Option<&str>,
) -> Result<Principal, ApiError> {
    let mut conn = store.read().await?;
    let session = sessions::find_by_hash(&mut conn, &hash_secret(secret))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let now = now_rfc3339();
    let idle_ms = i64::try_from(settings.session_idle.as_millis()).unwrap_or(i64::MAX / 2);
    let idle_end = crate::store::rfc3339_plus_ms(&session.last_seen_at, idle_ms);
    if session.expires_at <= now || idle_end.is_none_or(|end| end <= now) {
        let _ = sessions::delete(&mut conn, &session.id).await;
        return Err(ApiError::Unauthorized);
    }
    if let Some(given) = csrf
        && !constant_time_eq(given.as_bytes(), csrf_token(secret).as_bytes())
    {
        return Err(ApiError::Forbidden(
            "missing or wrong X-CSRF-Token: cookie-authenticated changes must carry the session's CSRF token".into(),
        ));
    }
    let user = users::get(&mut conn, &session.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    // Idle expiry needs a fresh stamp; write it at most once a minute (or once per tenth
    // of a short idle timeout).
    let touch_after = (idle_ms / 10).min(60_000);
    if crate::store::rfc3339_plus_ms(&session.last_seen_at, touch_after).is_none_or(|t| t <= now) {
        let _ = sessions::touch(&mut conn, &session.id, &now).await;
    }
    let actor = Actor {
        id: user.id.clone(),
        name: user.email.clone(),
    };
    Ok(Principal {
        actor,
        subject: Subject::User { user_id: user.id },
        cap: Role::Owner,
        token_id: None,
        session_id: Some(session.id),
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}
