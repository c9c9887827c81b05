//! The people page: the organization's members and their roles (add a member, whose
//! one-time password is shown once; change a role; remove), and API tokens for the
//! management API — the person's own and the organization's service tokens (the secret
//! shown once).

use askama::Template;
use axum::Extension;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::access::TokenKind;
use crate::manage::{self, Error};
use crate::store::tokens::Token;
use crate::store::users::Member;

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    frame: Frame,
    members: Vec<Member>,
    tokens: Vec<Token>,
    /// What was just created and is shown once: (what, name, secret).
    secret: Option<(&'static str, String, String)>,
    error: Option<String>,
    roles: [&'static str; 4],
    me: String,
}

async fn render(
    cx: &Ctx,
    place: &Place,
    secret: Option<(&'static str, String, String)>,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let frame = Frame::load(cx, place, "people", "People", done).await?;
    let (members, _) = manage::members::list(&cx.store, &place.org.id, 500, 0).await?;
    let (tokens, _) = manage::tokens::list(&cx.store, &cx.principal, 500, 0).await?;
    let org = place.org.id.as_str();
    let tokens = tokens
        .into_iter()
        .filter(|t| match t.kind {
            TokenKind::Personal => true,
            TokenKind::Service => t.organization_id.as_deref() == Some(org),
            TokenKind::Instance => false,
        })
        .collect();
    let refused = error.is_some();
    Ok(Page::render_form(
        refused,
        &PeoplePage {
            frame,
            members,
            tokens,
            secret,
            error,
            roles: ["viewer", "editor", "admin", "owner"],
            me: cx.principal.actor.id.clone(),
        },
    ))
}

/// `GET /ui/{org}/{project}/people`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> PageResult {
    render(&cx, &place, None, None, q.done.as_deref()).await
}

/// Reads a domain input from JSON built from the form (its own checks then apply).
fn input<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Page> {
    serde_json::from_value(v).map_err(|e| Page::status(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// A domain refusal shown on the page; anything else is an error page.
async fn refused(cx: &Ctx, place: &Place, e: Error) -> PageResult {
    let status = match &e {
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => return Err(e.into()),
    };
    match render(cx, place, None, Some(e.to_string()), None).await? {
        Page::Html(_, html) => Ok(Page::Html(status, html)),
        other => Ok(other),
    }
}

/// `POST /ui/{org}/{project}/people`: adds a member; a new account's one-time password is
/// shown once.
pub(crate) async fn add(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let email = cx.form.text("email");
    let new = input(json!({"email": email, "role": cx.form.text("role")}))?;
    match manage::members::add(&cx.store, &cx.principal, &cx.by, &place.org.id, new).await {
        Ok(member) => {
            let secret = member["password"]
                .as_str()
                .map(|p| ("One-time password for", email.clone(), p.to_owned()));
            render(&cx, &place, secret, None, Some("created")).await
        }
        Err(e) => refused(&cx, &place, e).await,
    }
}

/// `POST /ui/{org}/{project}/people/{user_id}/role`.
pub(crate) async fn set_role(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, user_id)): Path<(String, String, String)>,
) -> PageResult {
    let changes = input(json!({"role": cx.form.text("role")}))?;
    match manage::members::update(
        &cx.store,
        &cx.principal,
        &cx.by,
        (&place.org.id, &user_id),
        changes,
    )
    .await
    {
        Ok(_) => Ok(Page::redirect(format!(
            "{}/people?done=saved",
            place.base()
        ))),
        Err(e) => refused(&cx, &place, e).await,
    }
}

/// `POST /ui/{org}/{project}/people/{user_id}/remove`.
pub(crate) async fn remove(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, user_id)): Path<(String, String, String)>,
) -> PageResult {
    match manage::members::remove(&cx.store, &cx.principal, &cx.by, (&place.org.id, &user_id)).await
    {
        Ok(()) => Ok(Page::redirect(format!(
            "{}/people?done=deleted",
            place.base()
        ))),
        Err(e) => refused(&cx, &place, e).await,
    }
}

/// `POST /ui/{org}/{project}/tokens`: a personal token, or (admins) a service token of the
/// organization; the secret is shown once.
pub(crate) async fn create_token(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let name = cx.form.text("name");
    let mut body = json!({"name": name, "kind": cx.form.text("kind")});
    if cx.form.get("kind") == Some("service") {
        body["organization_id"] = json!(place.org.id);
    }
    if let Some(role) = cx.form.optional("role") {
        body["role"] = json!(role);
    }
    if let Some(expires) = cx.form.optional("expires_at") {
        body["expires_at"] = json!(expires);
    }
    match manage::tokens::create(&cx.store, &cx.principal, &cx.by, input(body)?).await {
        Ok(created) => {
            let secret = created["token"].as_str().unwrap_or_default().to_owned();
            let shown = Some(("Token", name, secret));
            render(&cx, &place, shown, None, Some("created")).await
        }
        Err(e) => refused(&cx, &place, e).await,
    }
}

/// `POST /ui/{org}/{project}/tokens/{token_id}/revoke`.
pub(crate) async fn revoke_token(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, token_id)): Path<(String, String, String)>,
) -> PageResult {
    match manage::tokens::end(&cx.store, &cx.principal, &cx.by, &token_id, false).await {
        Ok(_) => Ok(Page::redirect(format!(
            "{}/people?done=revoked",
            place.base()
        ))),
        Err(e) => refused(&cx, &place, e).await,
    }
}
