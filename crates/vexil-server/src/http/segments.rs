//! Segments: `/api/v1/projects/{projectId}/segments` (list, create) and
//! `/api/v1/segments/{id}` (get, update, delete). The operations are in
//! `manage::segments`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiResult;
use super::extract::{IfMatch, Json, Page, Pagination, Query, with_etag};
use crate::manage::fields::Patch;
use crate::manage::segments::{self, NewSegment};
use crate::manage::{self, By};
use crate::store::Store;
use crate::store::segments::Segment;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/segments",
            get(list_segments).post(create_segment),
        )
        .route(
            "/api/v1/segments/{id}",
            get(get_segment)
                .patch(update_segment)
                .delete(delete_segment),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/segments", tag = "segments", params(("project_id" = String, Path, description = "Parent id"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of segments"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project")))]
pub(crate) async fn list_segments(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Segment>>> {
    let p = p.validate()?;
    let (items, total) = segments::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/segments", tag = "segments", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected: key, name?, description?, included?, excluded?, rules?, comment?"), responses((status = 201, description = "Created; every environment of the project gets a new ruleset version; ETag carries the version"), (status = 400, description = "Invalid input, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_segment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewSegment>,
) -> ApiResult<Response> {
    let segment = segments::create(&store, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(segment.version, &segment)).into_response())
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let segment: Segment = manage::get(&store, &id).await?;
    Ok(with_etag(segment.version, &segment))
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch of name, description, included, excluded, rules (`null` resets a list; key and project_id cannot change), plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated; every environment of the project gets a new ruleset version"), (status = 400, description = "Invalid input, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn update_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let segment = segments::update(&store, &by, (&id, if_match.0), &patch).await?;
    Ok(with_etag(segment.version, &segment))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 400, description = "Malformed If-Match"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 409, description = "Still used by flag configurations or segments; `details.referrers` lists them"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    segments::delete(&store, &by, (&id, if_match.0)).await?;
    Ok(StatusCode::NO_CONTENT)
}
