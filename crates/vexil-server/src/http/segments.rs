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
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query, versioned, with_etag};
use crate::manage::By;
use crate::manage::fields::Patch;
use crate::manage::segments::{self, NewSegment};
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

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/segments", tag = "segments",
    params(("project_id" = String, Path, description = "Project id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of segments", body = Page<Segment>)))]
pub(crate) async fn list_segments(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Segment>>> {
    let p = p.validate()?;
    let (items, total) = segments::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/segments", tag = "segments",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewSegment, description = "Unknown fields are rejected; a `comment` goes to the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created; every environment of the project gets a new ruleset version", body = Segment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "The project has a segment with this key", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_segment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewSegment>,
) -> ApiResult<Response> {
    let segment = segments::create(&store, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(segment.version, &segment)).into_response())
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = String, Path, description = "Segment id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = Segment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_segment(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Segment>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = String, Path, description = "Segment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::SegmentPatch, description = "JSON merge patch (`null` resets a list; key and project_id cannot change), plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated; every environment of the project gets a new ruleset version", body = Segment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input, a bad `If-Match`, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_segment(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let segment = segments::update(&a.store, &a.principal, &a.by, a.at(), &patch).await?;
    Ok(with_etag(segment.version, &segment))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = String, Path, description = "Segment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted"),
        (status = 409, description = "Still used by flag configurations or segments; `details.referrers` lists them", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn delete_segment(a: Aimed) -> ApiResult<StatusCode> {
    segments::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}
