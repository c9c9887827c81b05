//! The caller's own account: `GET/PATCH /api/v1/users/me` and
//! `PUT /api/v1/users/me/password` (which ends the user's sessions and revokes their personal
//! tokens). The operations are in `manage::users`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::AuthSettings;
use super::error::ApiResult;
use super::extract::{Json, with_etag};
use crate::access::Principal;
use crate::manage::fields::Patch;
use crate::manage::{By, users};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(get_me).patch(update_me))
        .route("/api/v1/users/me/password", put(change_password))
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses(super::openapi::errors::Authenticated,
        (status = 200, description = "The caller's account and organizations with roles; 403 for service and instance tokens, which are not users", body = super::openapi::bodies::Me, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_me(
    State(store): State<Arc<crate::store::Store>>,
    principal: Principal,
) -> ApiResult<Response> {
    let (user, organizations) = users::me(&store, &principal).await?;
    let version = user.version;
    Ok(with_etag(
        version,
        json!({"user": user, "organizations": organizations}),
    ))
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users",
    request_body(content = super::openapi::bodies::UserPatch, description = "JSON merge patch of `{name}`, plus an optional top-level `comment`"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 200, description = "Updated", body = crate::store::users::User, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn update_me(
    State(store): State<Arc<crate::store::Store>>,
    principal: Principal,
    by: By,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let user = users::update_me(&store, &principal, &by, &patch).await?;
    Ok(with_etag(user.version, &user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "old and long enough", "new_password": "correct horse battery staple"}))]
pub(crate) struct PasswordChange {
    current_password: String,
    #[schema(min_length = 12, max_length = 256)]
    new_password: String,
}

#[utoipa::path(put, path = "/api/v1/users/me/password", tag = "users",
    request_body(content = PasswordChange, description = "The new password has 12 to 256 characters"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 204, description = "Changed; every session of the user is ended (log in again) and their personal tokens are revoked"),
        (status = 401, description = "Wrong current password (`invalid_credentials`) or no credentials (`unauthorized`)", body = super::openapi::errors::ErrorBody),
        (status = 429, description = "Too many wrong passwords (`rate_limited`); `Retry-After` says when to try again", body = super::openapi::errors::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub(crate) async fn change_password(
    State(store): State<Arc<crate::store::Store>>,
    State(settings): State<Arc<AuthSettings>>,
    principal: Principal,
    by: By,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let (current, new) = (body.current_password, body.new_password);
    users::change_own_password(&store, &settings.limiter, &principal, &by, current, new).await?;
    Ok(StatusCode::NO_CONTENT)
}
