//! `/api/v1/projects`: list (optionally by organization), create (with `development` and
//! `production` environments), get, update, delete (only when it holds no flags or segments).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query, versioned, with_etag};
use crate::access::Principal;
use crate::manage::By;
use crate::manage::fields::{Patch, default_limit};
use crate::manage::projects::{self, NewProject};
use crate::store::Store;
use crate::store::projects::Project;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects", get(list_projects).post(create_project))
        .route(
            "/api/v1/projects/{id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListProjects {
    organization_id: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    params(("organization_id" = Option<String>, Query, description = "Only projects of this organization"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid,
        (status = 200, description = "A page of the projects of the caller's organizations", body = Page<Project>)))]
pub(crate) async fn list_projects(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(q): Query<ListProjects>,
) -> ApiResult<Json<Page<Project>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let org = q.organization_id;
    let (items, total) = projects::list(&store, &principal, org, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects",
    request_body(content = NewProject, description = "Unknown fields are rejected; the project gets environments `development` and `production`"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 201, description = "Created, with environments `development` and `production`", body = Project, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 404, description = "Unknown organization (or not the caller's)", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "The organization has a project with this key", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_project(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Json(body): Json<NewProject>,
) -> ApiResult<Response> {
    let project = projects::create(&store, &principal, &by, body).await?;
    Ok((StatusCode::CREATED, with_etag(project.version, &project)).into_response())
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "Project id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = Project, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_project(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Project>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "Project id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::ProjectPatch, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated", body = Project, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn update_project(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let project = projects::update(&a.store, &a.by, a.at(), &patch).await?;
    Ok(with_etag(project.version, &project))
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "Project id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted with its environments and API keys"),
        (status = 409, description = "The project still holds flags or segments; `details` says how many", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn delete_project(a: Aimed) -> ApiResult<StatusCode> {
    projects::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}
