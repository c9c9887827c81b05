//! The caller's own account: `GET/PATCH /api/v1/users/me` and
//! `PUT /api/v1/users/me/password` (which ends the user's sessions and revokes their personal
//! tokens).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, RequestMeta, with_etag};
use super::patch::{Patch, check_name};
use crate::access::Principal;
use crate::credentials;
use crate::store::{Store, audit, now_rfc3339, sessions, tokens, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(get_me).patch(update_me))
        .route("/api/v1/users/me/password", put(change_password))
}

/// A trimmed, lowercased email address, or a 400 for `field`.
pub fn normalize_email(field: &str, email: &str) -> Result<String, ApiError> {
    credentials::normalize_email(email).map_err(|m| ApiError::invalid_field(field, m))
}

fn user_id(principal: &Principal) -> Result<&str, ApiError> {
    principal.user_id().ok_or_else(|| {
        ApiError::Forbidden(
            "this credential is not a user's (use a session or a personal token)".into(),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, description = "The caller's account and organizations with roles"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "A service or instance token: not a user")))]
pub(crate) async fn get_me(
    State(store): State<Arc<Store>>,
    principal: Principal,
) -> ApiResult<Response> {
    let id = user_id(&principal)?;
    let mut conn = store.read().await?;
    let user = users::get(&mut conn, id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let organizations = users::organizations_of(&mut conn, id).await?;
    let version = user.version;
    Ok(with_etag(
        version,
        json!({"user": user, "organizations": organizations}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChanges {
    name: String,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", request_body(content = Object, description = "JSON merge patch of `{name}`"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Not a user, or a session without its CSRF token")))]
pub(crate) async fn update_me(
    State(store): State<Arc<Store>>,
    principal: Principal,
    meta: RequestMeta,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let id = user_id(&principal)?.to_owned();
    let mut tx = store.write().await?;
    let before = users::get(tx.conn(), &id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let changes: UserChanges = patch.apply(
        json!({"name": before.name}),
        &["email", "id"],
        &json!({"email": before.email, "id": before.id}),
    )?;
    check_name("name", &changes.name)?;
    let after = users::User {
        name: changes.name,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    users::update_name(tx.conn(), &after).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: "user.update",
            resource_type: "user",
            resource_id: &id,
            before: Some(json!(before)),
            after: Some(json!(after)),
            comment: patch.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[utoipa::path(put, path = "/api/v1/users/me/password", tag = "users", request_body(content = Object, description = "`{current_password, new_password}` (new: 12 to 256 characters)"), responses((status = 204, description = "Changed; every session of the user is ended (log in again) and their personal tokens are revoked"), (status = 400, description = "New password too short or too long"), (status = 401, description = "Wrong current password (`invalid_credentials`) or no credentials"), (status = 403, description = "Not a user, or a session without its CSRF token"), (status = 429, description = "Too many wrong passwords; `Retry-After`")))]
pub(crate) async fn change_password(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<super::auth::AuthSettings>>,
    principal: Principal,
    meta: RequestMeta,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let id = user_id(&principal)?.to_owned();
    credentials::check_password_strength(&body.new_password)
        .map_err(|m| ApiError::invalid_field("new_password", m))?;
    if body.current_password.len() > credentials::MAX_PASSWORD_LEN {
        return Err(ApiError::BadCredentials);
    }
    let (user, stored) = {
        let mut conn = store.read().await?;
        let user = users::get(&mut conn, &id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let stored = users::password_hash(&mut conn, &id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        (user, stored)
    };
    // The same limits as login: a stolen session must not become a password oracle.
    if let Err(wait) = settings.limiter.check(&user.email, meta.ip.as_deref()) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let (current, new) = (body.current_password, body.new_password);
    let hashed = tokio::task::spawn_blocking(move || {
        credentials::verify_password(&current, &stored)
            .then(|| credentials::hash_password(&new))
            .transpose()
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(ApiError::Internal)?;
    let Some(hashed) = hashed else {
        return Err(ApiError::BadCredentials);
    };
    settings
        .limiter
        .record_success(&user.email, meta.ip.as_deref());
    let mut tx = store.write().await?;
    users::set_password(tx.conn(), &id, &hashed, &now_rfc3339()).await?;
    // Every session of the user ends, this one included: whoever knew the old password
    // is logged out, and the user logs in again with the new one.
    let ended = sessions::delete_for_user(tx.conn(), &id).await?;
    // And the personal tokens: whoever knew the old password may have made some.
    let revoked = tokens::revoke_personal(tx.conn(), &id, &now_rfc3339()).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: "user.password_change",
            resource_type: "user",
            resource_id: &id,
            before: None,
            after: Some(json!({"sessions_ended": ended, "tokens_revoked": revoked})),
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
