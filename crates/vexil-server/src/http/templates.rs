//! Flag templates: `/api/v1/projects/{projectId}/flag-templates` (list, create) and
//! `/api/v1/flag-templates/{id}` (get, update, delete). A flag is made from one with
//! `POST …/feature-flags {"template": KEY, "key", …}`. The operations are in
//! `manage::templates`.

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
use crate::manage::templates::{self, NewTemplate};
use crate::store::Store;
use crate::store::templates::Template;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/flag-templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/flag-templates/{id}",
            get(get_template)
                .patch(update_template)
                .delete(delete_template),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/flag-templates", tag = "flag templates",
    params(("project_id" = String, Path, description = "Project id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of the project's flag templates, by key", body = Page<Template>)))]
pub(crate) async fn list_templates(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Template>>> {
    let p = p.validate()?;
    let (items, total) = templates::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/flag-templates", tag = "flag templates",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewTemplate, description = "Unknown fields are rejected; the shape is checked as a flag's, and each environment's starting configuration against that environment's ruleset"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created", body = Template, headers(("ETag" = String, description = "The version, e.g. `\"1\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem (`environments.production.fallthrough.variation`)", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "The project has a template with this key", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_template(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewTemplate>,
) -> ApiResult<Response> {
    let template = templates::create(&store, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(template.version, &template)).into_response())
}

#[utoipa::path(get, path = "/api/v1/flag-templates/{id}", tag = "flag templates",
    params(("id" = String, Path, description = "Template id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = Template, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_template(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Template>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/flag-templates/{id}", tag = "flag templates",
    params(("id" = String, Path, description = "Template id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::TemplatePatch, description = "JSON merge patch of `name`, `description`, `type`, `variations`, `tags`, `client_side`, `temporary`, `environments` (key and project cannot change), plus an optional top-level `comment` for the audit trail. Flags already made from the template do not change"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated", body = Template, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input or a bad `If-Match`; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_template(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let template = templates::update(&a.store, &a.by, a.at(), &patch).await?;
    Ok(with_etag(template.version, &template))
}

#[utoipa::path(delete, path = "/api/v1/flag-templates/{id}", tag = "flag templates",
    params(("id" = String, Path, description = "Template id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted (flags made from it stay as they are)")))]
pub(crate) async fn delete_template(a: Aimed) -> ApiResult<StatusCode> {
    templates::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}
