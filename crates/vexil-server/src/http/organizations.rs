//! `/api/v1/organizations`: list, create, get, update (merge patch), delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiResult;
use super::extract::{IfMatch, Json, Page, Pagination, Query, with_etag};
use crate::access::Principal;
use crate::manage::fields::Patch;
use crate::manage::organizations::{self, NewOrganization};
use crate::manage::{self, By};
use crate::store::Store;
use crate::store::organizations::Organization;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations",
            get(list_organizations).post(create_organization),
        )
        .route(
            "/api/v1/organizations/{id}",
            get(get_organization)
                .patch(update_organization)
                .delete(delete_organization),
        )
}

#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations", params(("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of organizations"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn list_organizations(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Organization>>> {
    let p = p.validate()?;
    let (items, total) = organizations::list(&store, &principal, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations", request_body(content = Object, description = "JSON; unknown fields are rejected"), responses((status = 201, description = "Created; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 403, description = "A service token (bound to its organization)"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_organization(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Json(body): Json<NewOrganization>,
) -> ApiResult<Response> {
    let org = organizations::create(&store, &principal, &by, body).await?;
    Ok((StatusCode::CREATED, with_etag(org.version, &org)).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let org: Organization = manage::get(&store, &id).await?;
    Ok(with_etag(org.version, &org))
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version")))]
pub(crate) async fn update_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let org = organizations::update(&store, &by, (&id, if_match.0), &patch).await?;
    Ok(with_etag(org.version, &org))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown id"), (status = 409, description = "Still referenced or not empty; `details` says by what"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    organizations::delete(&store, &by, (&id, if_match.0)).await?;
    Ok(StatusCode::NO_CONTENT)
}
