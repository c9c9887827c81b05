//! Environments: `/api/v1/projects/{projectId}/environments` (list, create),
//! `/api/v1/environments/{id}` (get, update, delete), and promotion: copying flag
//! configurations from one environment into another (`…/environments/{envId}/copy`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query, versioned, with_etag};
use crate::manage::By;
use crate::manage::environments::{self, NewEnvironment};
use crate::manage::fields::Patch;
use crate::manage::promotion::{self, Copied, CopyInput};
use crate::store::Store;
use crate::store::environments::Environment;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/environments",
            get(list_environments).post(create_environment),
        )
        .route(
            "/api/v1/projects/{project_id}/environments/{env_id}/copy",
            post(copy_environment),
        )
        .route(
            "/api/v1/environments/{id}",
            get(get_environment)
                .patch(update_environment)
                .delete(delete_environment),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/environments", tag = "environments",
    params(("project_id" = String, Path, description = "Project id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of the project's environments", body = Page<Environment>)))]
pub(crate) async fn list_environments(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Environment>>> {
    let p = p.validate()?;
    let (items, total) = environments::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/environments", tag = "environments",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewEnvironment, description = "Unknown fields are rejected; `protected` defaults to `is_production`"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created, with a disabled configuration of every flag of the project", body = Environment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 409, description = "The project has an environment with this key", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_environment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewEnvironment>,
) -> ApiResult<Response> {
    let env = environments::create(&store, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(env.version, &env)).into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "Environment id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = Environment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_environment(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Environment>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::EnvironmentPatch, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated", body = Environment, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn update_environment(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let env = environments::update(&a.store, &a.by, a.at(), &patch).await?;
    Ok(with_etag(env.version, &env))
}

#[utoipa::path(delete, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted with its flag configurations, revisions and API keys")))]
pub(crate) async fn delete_environment(a: Aimed) -> ApiResult<StatusCode> {
    environments::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/environments/{env_id}/copy", tag = "environments",
    params(("project_id" = String, Path, description = "Project id"), ("env_id" = String, Path, description = "The environment copied into")),
    request_body(content = CopyInput, description = "The source environment of the same project; the flags to copy (every flag that is not archived when absent)"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Copied, all or nothing: each changed configuration has a new version, revision and audit entry whose comment names the source", body = Copied),
        (status = 409, description = "The target requires approval (`approval_required`), a release plan owns a configuration it would change (`release_running`), or an archived flag would be enabled", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn copy_environment(
    a: Aimed<(String, String)>,
    Json(body): Json<CopyInput>,
) -> ApiResult<Json<Copied>> {
    let (project, env) = (&a.id.0, &a.id.1);
    Ok(Json(
        promotion::copy(&a.store, &a.by, (project, env), body).await?,
    ))
}
