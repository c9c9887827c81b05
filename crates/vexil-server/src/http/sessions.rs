//! Browser sessions: `POST /api/v1/auth/login` (email + password → an HttpOnly,
//! SameSite=Lax session cookie and the session's CSRF token), `POST /api/v1/auth/logout`,
//! and `GET /api/v1/auth/session` (who the caller is, for any credential).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{AuthSettings, csrf_token, session_cookie};
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use crate::access::{Principal, Subject};
use crate::audit::RequestMeta;
use crate::credentials::MAX_PASSWORD_LEN;
use crate::manage::fields::check_email;
use crate::manage::{By, sessions};
use crate::store::Store;
use crate::store::users::User;

/// Routes that need no credential (logging in is how one gets one).
pub(crate) fn public_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .merge(super::oidc::router())
}

/// Routes behind the management plane's authentication.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/session", get(current_session))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub(crate) struct Login {
    email: String,
    password: String,
}

pub(crate) fn cookie(settings: &AuthSettings, value: &str, max_age: u64) -> HeaderValue {
    let secure = if settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        settings.cookie_name()
    );
    // The value is hex and the rest ASCII: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body(content = Login, description = "The account's email and password"),
    responses(super::openapi::errors::JsonBody,
        (status = 200, description = "Logged in: `Set-Cookie` carries the session; send `csrf_token` as `X-CSRF-Token` with every cookie-authenticated change", body = super::openapi::bodies::LoginResult, headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly, SameSite=Lax)"))),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = super::openapi::errors::ErrorBody,
            example = json!({"error": {"code": "invalid_credentials", "message": "wrong email or password", "details": {}}})),
        (status = 429, description = "Too many failed attempts for this account or from this address (`rate_limited`); `Retry-After` says when to try again", body = super::openapi::errors::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable (`unavailable`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn login(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    meta: RequestMeta,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    let email = check_email("email", &body.email)?;
    if body.password.is_empty() || body.password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid_field(
            "password",
            format!("must be 1 to {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    if let Err(wait) = settings.limiter.check(&email, meta.ip.as_deref()) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let user = sessions::check_password(&store, &meta, &email, body.password).await?;
    settings.limiter.record_success(&email, meta.ip.as_deref());
    start_session(&store, &settings, &user, &meta, "password", None).await
}

/// Opens a session for `user` (audited as a login by `method`) and answers with its cookie,
/// the CSRF token and the user's organizations — or, with `redirect`, a 303 there carrying
/// the cookie (single sign-on ends in the browser).
pub(crate) async fn start_session(
    store: &Store,
    settings: &AuthSettings,
    user: &User,
    meta: &RequestMeta,
    method: &str,
    redirect: Option<&str>,
) -> ApiResult<Response> {
    let opened = sessions::open(store, user, meta, method, settings.session_lifetime).await?;
    let mut response = match redirect {
        Some(location) => (
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
            )],
        )
            .into_response(),
        None => Json(json!({
            "user": user,
            "organizations": opened.organizations,
            "csrf_token": csrf_token(&opened.secret),
            "expires_at": opened.session.expires_at,
            "idle_timeout_secs": settings.session_idle.as_secs(),
        }))
        .into_response(),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            settings,
            &opened.secret,
            settings.session_lifetime.as_secs(),
        ),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses(super::openapi::errors::Authenticated,
        (status = 204, description = "The session is ended and its cookie cleared (with a token: nothing to end)", headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly, SameSite=Lax)")))))]
pub(crate) async fn logout(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    principal: Principal,
    by: By,
) -> ApiResult<Response> {
    if let Some(session_id) = &principal.session_id {
        sessions::close(&store, &by, session_id).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&settings, "", 0));
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth",
    responses(super::openapi::errors::Authenticated,
        (status = 200, description = "The caller: the kind of credential, the user and organizations with roles; with a session cookie also `csrf_token`", body = super::openapi::bodies::SessionInfo)))]
pub(crate) async fn current_session(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    principal: Principal,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut body = match &principal.subject {
        Subject::User { user_id } => {
            let (user, organizations) = sessions::user_and_organizations(&store, user_id).await?;
            json!({
                "kind": if principal.session_id.is_some() { "session" } else { "personal_token" },
                "user": user,
                "organizations": organizations,
            })
        }
        Subject::Service { organization_id } => json!({
            "kind": "service_token",
            "organizations": [{"id": organization_id, "role": principal.cap.as_str()}],
        }),
        Subject::Instance => json!({"kind": "instance_token", "organizations": "all"}),
    };
    if let Some(map) = body.as_object_mut() {
        map.insert("actor".into(), json!(principal.actor));
        if principal.token_id.is_some() {
            map.insert("role_cap".into(), json!(principal.cap.as_str()));
        }
        if principal.session_id.is_some()
            && let Some(secret) = session_cookie(&headers, settings.cookie_name())
        {
            map.insert("csrf_token".into(), Value::String(csrf_token(&secret)));
        }
    }
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
