//! Organization membership: `GET/POST /api/v1/organizations/{id}/members`,
//! `PATCH/DELETE /api/v1/organizations/{id}/members/{user_id}`. The rules (owners alone
//! manage owners, the last owner stays) are in `manage::members`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Page, Pagination, Query};
use crate::access::Principal;
use crate::manage::By;
use crate::manage::members::{self, MemberChanges, NewMember};
use crate::store::{Store, users};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations/{id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/api/v1/organizations/{id}/members/{user_id}",
            patch(update_member).delete(remove_member),
        )
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/members", tag = "members",
    params(("id" = String, Path, description = "Organization id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of members", body = Page<users::Member>)))]
pub(crate) async fn list_members(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<users::Member>>> {
    let p = p.validate()?;
    let (items, total) = members::list(&store, &id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/members", tag = "members",
    params(("id" = String, Path, description = "Organization id")),
    request_body(content = NewMember, description = "An existing user is added; an unknown email creates the user"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "The member; for a newly created user without a given password also `password` (one-time, shown only here)", body = super::openapi::bodies::CreatedMember),
        (status = 403, description = "Needs admin (owner to add an owner) (`forbidden`)", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Already a member", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn add_member(
    State(store): State<Arc<Store>>,
    Path(org): Path<String>,
    principal: Principal,
    by: By,
    Json(body): Json<NewMember>,
) -> ApiResult<Response> {
    let member = members::add(&store, &principal, &by, &org, body).await?;
    Ok((StatusCode::CREATED, Json(member)).into_response())
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "members",
    params(("id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "The member's user id")),
    request_body(content = MemberChanges, description = "The new role"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 200, description = "The member with the new role", body = users::Member),
        (status = 403, description = "Needs admin (owner when an owner is involved) (`forbidden`)", body = super::openapi::errors::ErrorBody),
        (status = 404, description = "Unknown organization or member (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Would leave the organization without an owner", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_member(
    State(store): State<Arc<Store>>,
    Path((org, user_id)): Path<(String, String)>,
    principal: Principal,
    by: By,
    Json(body): Json<MemberChanges>,
) -> ApiResult<Response> {
    let at = (org.as_str(), user_id.as_str());
    let member = members::update(&store, &principal, &by, at, body).await?;
    Ok(Json(member).into_response())
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "members",
    params(("id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "The member's user id")),
    responses(super::openapi::errors::Authenticated,
        (status = 204, description = "Removed: the user's sessions and personal tokens no longer reach this organization"),
        (status = 403, description = "Needs admin (owner to remove an owner) (`forbidden`)", body = super::openapi::errors::ErrorBody),
        (status = 404, description = "Unknown organization or member (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "The last owner", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn remove_member(
    State(store): State<Arc<Store>>,
    Path((org, user_id)): Path<(String, String)>,
    principal: Principal,
    by: By,
) -> ApiResult<StatusCode> {
    members::remove(&store, &principal, &by, (&org, &user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
