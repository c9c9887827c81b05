//! Signing in and out of the console, and its home (the first project's flags).
//!
//! The sign-in form is protected against login CSRF by a double-submit token: a random
//! value in a short-lived `SameSite=Strict` cookie that the form must repeat.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::form::{FormData, local_next};
use super::{Ctx, Page, PageResult};
use crate::audit::RequestMeta;
use crate::credentials::{self, constant_time_eq};
use crate::http::auth::{AuthSettings, cookie_value};
use crate::http::error::ApiError;
use crate::http::sessions::{cookie, start_session};
use crate::manage::{self};
use crate::store::Store;

/// The sign-in form's token cookie; behind TLS with the `__Host-` prefix (which requires
/// `Path=/` and `Secure`), so that a sibling subdomain cannot plant one.
const LOGIN_COOKIE: &str = "vexil_login";
const SECURE_LOGIN_COOKIE: &str = "__Host-vexil_login";

fn login_cookie(settings: &AuthSettings, value: &str, max_age: u32) -> Option<HeaderValue> {
    let text = if settings.secure_cookies {
        format!(
            "{SECURE_LOGIN_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}; Secure"
        )
    } else {
        format!(
            "{LOGIN_COOKIE}={value}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age={max_age}"
        )
    };
    HeaderValue::from_str(&text).ok()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    token: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    oidc: bool,
    asset_css: &'static str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

/// `GET /ui/login`.
pub(crate) async fn form(
    State(settings): State<Arc<AuthSettings>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local_next(q.next.as_deref());
    let notice = (q.done.as_deref() == Some("password"))
        .then_some("Password changed. Sign in with the new one.");
    render_form(&settings, &next, "", None, notice, StatusCode::OK)
}

fn render_form(
    settings: &AuthSettings,
    next: &str,
    email: &str,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = credentials::random_secret("");
    let page = LoginPage {
        token: &token,
        next,
        email,
        error,
        notice,
        oidc: settings.oidc.is_some(),
        asset_css: super::assets::CSS_URL.as_str(),
    };
    let mut response = Page::render_status(status, &page).into_response();
    if let Some(v) = login_cookie(settings, &token, 3600) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /ui/login`: email and password; on success a session cookie and on to `next`.
pub(crate) async fn submit(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<AuthSettings>>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = FormData::parse(&body);
    let next = local_next(form.get("next"));
    let email = form.text("email");
    if !form_token_ok(&settings, &headers, &form) {
        let message = Some("The sign-in form expired. Please try again.");
        return render_form(
            &settings,
            &next,
            &email,
            message,
            None,
            StatusCode::FORBIDDEN,
        );
    }
    let password = form.get("password").unwrap_or_default().to_owned();
    let result = sign_in(&store, &settings, &meta, (&email, password), &next).await;
    match result {
        Ok(mut response) => {
            // The form's token has served its purpose.
            if let Some(v) = login_cookie(&settings, "", 0) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => match refusal(&e) {
            Some((status, message)) => {
                render_form(&settings, &next, &email, Some(&message), None, status)
            }
            None => Page::from(e).into_response(),
        },
    }
}

/// Whether the form carries the token its double-submit cookie holds.
fn form_token_ok(settings: &AuthSettings, headers: &HeaderMap, form: &FormData) -> bool {
    let name = if settings.secure_cookies {
        SECURE_LOGIN_COOKIE
    } else {
        LOGIN_COOKIE
    };
    let expected = cookie_value(headers, name).unwrap_or_default();
    let given = form.get("token").unwrap_or_default();
    !expected.is_empty() && constant_time_eq(given.as_bytes(), expected.as_bytes())
}

/// What the sign-in form says when a sign-in is refused (`None`: an error page instead).
fn refusal(e: &ApiError) -> Option<(StatusCode, String)> {
    Some(match e {
        ApiError::Invalid { .. } => (
            StatusCode::BAD_REQUEST,
            "Enter a valid email address.".to_owned(),
        ),
        ApiError::BadCredentials => (
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.".to_owned(),
        ),
        ApiError::TooManyRequests { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
        ),
        _ => return None,
    })
}

/// Checks the password under the sign-in limits and opens a session (its answer goes on
/// to `next`).
async fn sign_in(
    store: &Store,
    settings: &AuthSettings,
    meta: &RequestMeta,
    (email, password): (&str, String),
    next: &str,
) -> Result<Response, ApiError> {
    let email = manage::fields::check_email("email", email)?;
    if password.is_empty() || password.len() > credentials::MAX_PASSWORD_LEN {
        return Err(ApiError::BadCredentials);
    }
    if let Err(wait) = settings.limiter.check(&email, meta.ip.as_deref()) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let user = manage::sessions::check_password(store, meta, &email, password).await?;
    settings.limiter.record_success(&email, meta.ip.as_deref());
    start_session(store, settings, &user, meta, "password", Some(next)).await
}

/// `POST /ui/logout`: ends the session.
pub(crate) async fn logout(cx: Ctx, State(settings): State<Arc<AuthSettings>>) -> Response {
    if let Some(session_id) = &cx.principal.session_id
        && let Err(e) = manage::sessions::close(&cx.store, &cx.by, session_id).await
    {
        return Page::from(e).into_response();
    }
    let mut response = Page::redirect("/ui/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&settings, "", 0));
    response
}

#[derive(Template)]
#[template(path = "empty.html")]
struct NoProjects<'a> {
    user: &'a str,
    csrf: &'a str,
    asset_css: &'static str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct HomeQuery {
    to: Option<String>,
}

/// `GET /ui/` (or `/ui/?to=PAGE`, the switcher's form): the first project the person can see, else a page that says why there is
/// nothing.
pub(crate) async fn home(cx: Ctx, Query(q): Query<HomeQuery>) -> PageResult {
    // The project switcher without its script: `?to=` names a page of ours.
    if let Some(to) = q.to.as_deref() {
        return Ok(Page::redirect(local_next(Some(to))));
    }
    let (orgs, _) = manage::organizations::list(&cx.store, &cx.principal, 200, 0).await?;
    let (projects, _) = manage::projects::list(&cx.store, &cx.principal, None, 200, 0).await?;
    // The default project first, then by organization and key.
    let first = projects
        .iter()
        .filter_map(|p| {
            let org = orgs.iter().find(|o| o.id == p.organization_id)?;
            Some((p.key != "default", org.key.as_str(), p.key.as_str()))
        })
        .min();
    match first {
        Some((_, org, project)) => Ok(Page::redirect(format!("/ui/{org}/{project}/flags"))),
        None => Ok(Page::render(&NoProjects {
            user: &cx.principal.actor.name,
            csrf: &cx.csrf.0,
            asset_css: super::assets::CSS_URL.as_str(),
        })),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    user: &'a str,
    csrf: &'a str,
    must: bool,
    error: Option<&'a str>,
    asset_css: &'static str,
}

/// `GET /ui/account`: the signed-in person and the password change form (the only page a
/// person whose password was set by someone else can reach until they choose their own).
pub(crate) async fn account(cx: Ctx) -> PageResult {
    let must = manage::users::must_change_password(&cx.store, &cx.principal).await?;
    Ok(Page::render(&AccountPage {
        user: &cx.principal.actor.name,
        csrf: &cx.csrf.0,
        must,
        error: None,
        asset_css: super::assets::CSS_URL.as_str(),
    }))
}

/// `POST /ui/account/password`: changes the password; every session ends, so the person
/// signs in again with the new one.
pub(crate) async fn change_password(
    cx: Ctx,
    State(settings): State<Arc<AuthSettings>>,
) -> PageResult {
    let current = cx
        .form
        .get("current_password")
        .unwrap_or_default()
        .to_owned();
    let new = cx.form.get("new_password").unwrap_or_default().to_owned();
    let message = if new != cx.form.get("repeat_password").unwrap_or_default() {
        "The two new passwords differ.".to_owned()
    } else {
        let (store, limiter) = (&cx.store, &settings.limiter);
        let changed =
            manage::users::change_own_password(store, limiter, &cx.principal, &cx.by, current, new);
        match changed.await {
            Ok(()) => return Ok(Page::redirect("/ui/login?done=password")),
            Err(e) => why_not(e)?,
        }
    };
    let must = manage::users::must_change_password(&cx.store, &cx.principal).await?;
    Ok(Page::render_status(
        StatusCode::BAD_REQUEST,
        &AccountPage {
            user: &cx.principal.actor.name,
            csrf: &cx.csrf.0,
            must,
            error: Some(&message),
            asset_css: super::assets::CSS_URL.as_str(),
        },
    ))
}

/// Why a new password was refused, as the account page says it.
fn why_not(e: manage::Error) -> Result<String, Page> {
    Ok(match e {
        manage::Error::Invalid { fields, .. } => format!(
            "The new password {}.",
            fields
                .values()
                .next()
                .and_then(|v| v.as_str())
                .unwrap_or("is not acceptable")
        ),
        e @ (manage::Error::WrongCurrentPassword | manage::Error::RateLimited { .. }) => {
            format!("{}.", capitalized(&e.to_string()))
        }
        e => return Err(e.into()),
    })
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
