//! Environments: `/api/v1/projects/{projectId}/environments` (list, create) and
//! `/api/v1/environments/{id}` (get, update, delete).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiResult;
use super::extract::{IfMatch, Json, Page, Pagination, Query, with_etag};
use crate::manage::environments::{self, NewEnvironment};
use crate::manage::fields::Patch;
use crate::manage::{self, By};
use crate::store::Store;
use crate::store::environments::Environment;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/environments",
            get(list_environments).post(create_environment),
        )
        .route(
            "/api/v1/environments/{id}",
            get(get_environment)
                .patch(update_environment)
                .delete(delete_environment),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/environments", tag = "environments", params(("project_id" = String, Path, description = "Parent id"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of environments"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn list_environments(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Environment>>> {
    let p = p.validate()?;
    let (items, total) = environments::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/environments", tag = "environments", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected"), responses((status = 201, description = "Created; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_environment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewEnvironment>,
) -> ApiResult<Response> {
    let env = environments::create(&store, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(env.version, &env)).into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let env: Environment = manage::get(&store, &id).await?;
    Ok(with_etag(env.version, &env))
}

#[utoipa::path(patch, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version")))]
pub(crate) async fn update_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let env = environments::update(&store, &by, (&id, if_match.0), &patch).await?;
    Ok(with_etag(env.version, &env))
}

#[utoipa::path(delete, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown id"), (status = 409, description = "Still referenced or not empty; `details` says by what"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    environments::delete(&store, &by, (&id, if_match.0)).await?;
    Ok(StatusCode::NO_CONTENT)
}
