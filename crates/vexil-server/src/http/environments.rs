//! Environments: `/api/v1/projects/{projectId}/environments` (list, create) and
//! `/api/v1/environments/{id}` (get, update, delete).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, Page, Pagination, Query, RequestMeta, with_etag};
use super::patch::{Patch, check_comment, check_description, check_key, check_name};
use crate::audit::Actor;
use crate::store::environments::{self, Environment};
use crate::store::{Store, audit, flags, new_id, now_rfc3339, projects};

pub fn router() -> Router<AppState> {
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
    let mut conn = store.read().await?;
    projects::get(&mut conn, &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let (items, total) = environments::list(&mut conn, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEnvironment {
    key: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    is_production: bool,
    /// Defaults to `is_production`.
    protected: Option<bool>,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/environments", tag = "environments", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected"), responses((status = 201, description = "Created; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_environment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    Json(body): Json<CreateEnvironment>,
) -> ApiResult<Response> {
    check_key("key", &body.key)?;
    let name = body.name.unwrap_or_else(|| body.key.clone());
    check_name("name", &name)?;
    check_description("description", &body.description)?;
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    projects::get(tx.conn(), &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    if environments::get_by_key(tx.conn(), &project_id, &body.key)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            format!("environment '{}' already exists", body.key),
            json!({"key": body.key}),
        ));
    }
    let now = now_rfc3339();
    let env = Environment {
        id: new_id(),
        project_id,
        key: body.key,
        name,
        description: body.description,
        is_production: body.is_production,
        protected: body.protected.unwrap_or(body.is_production),
        ruleset_version: 1,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    environments::insert(tx.conn(), &env).await?;
    // Every existing flag of the project gets its initial configuration (and revision 1).
    flags::configs::create_for_environment(tx.conn(), &env, &actor).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "environment.create",
            resource_type: "environment",
            resource_id: &env.id,
            before: None,
            after: Some(json!(env)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, with_etag(env.version, &env)).into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let env = environments::get(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &id))?;
    Ok(with_etag(env.version, &env))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentChanges {
    name: String,
    description: String,
    is_production: bool,
    protected: bool,
}

#[utoipa::path(patch, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version")))]
pub(crate) async fn update_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let before = environments::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &id))?;
    if_match.check(before.version)?;
    let changes: EnvironmentChanges = patch.apply(
        json!({"name": before.name, "description": before.description,
               "is_production": before.is_production, "protected": before.protected}),
        &["key", "project_id", "id"],
        &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
    )?;
    check_name("name", &changes.name)?;
    check_description("description", &changes.description)?;
    let after = Environment {
        name: changes.name,
        description: changes.description,
        is_production: changes.is_production,
        protected: changes.protected,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    environments::update(tx.conn(), &after).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "environment.update",
            resource_type: "environment",
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

#[utoipa::path(delete, path = "/api/v1/environments/{id}", tag = "environments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown id"), (status = 409, description = "Still referenced or not empty; `details` says by what"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_environment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let env = environments::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &id))?;
    if_match.check(env.version)?;
    // Flag configurations and revisions of the environment go with it (ON DELETE CASCADE);
    // the audit entry keeps what was deleted.
    environments::delete(tx.conn(), &id).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "environment.delete",
            resource_type: "environment",
            resource_id: &id,
            before: Some(json!(env)),
            after: None,
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
