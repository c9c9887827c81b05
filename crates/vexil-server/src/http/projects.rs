//! `/api/v1/projects`: list (optionally by organization), create (with `development` and
//! `production` environments), get, update, delete (only when it holds no flags or segments).

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
use crate::access::{Principal, Role, forbidden};
use crate::audit::Actor;
use crate::store::projects::{self, Project};
use crate::store::{Store, audit, environments, new_id, now_rfc3339, organizations};

pub fn router() -> Router<AppState> {
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

fn default_limit() -> i64 {
    50
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(("organization_id" = Option<String>, Query, description = "Only projects of this organization"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of projects"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token")))]
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
    let mut conn = store.read().await?;
    // Only the caller's organizations (all of them for the instance token).
    let visible: Option<Vec<String>> = principal
        .organizations(&mut conn)
        .await?
        .map(|orgs| orgs.into_iter().map(|(org, _)| org).collect());
    let scope: Option<Vec<String>> = match (q.organization_id, visible) {
        (Some(org), Some(visible)) => Some(visible.into_iter().filter(|o| *o == org).collect()),
        (Some(org), None) => Some(vec![org]),
        (None, visible) => visible,
    };
    let (items, total) = projects::list(&mut conn, scope.as_deref(), p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    organization_id: String,
    key: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body(content = Object, description = "JSON; unknown fields are rejected"), responses((status = 201, description = "Created; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_project(
    State(store): State<Arc<Store>>,
    actor: Actor,
    principal: Principal,
    mut meta: RequestMeta,
    Json(body): Json<CreateProject>,
) -> ApiResult<Response> {
    check_key("key", &body.key)?;
    let name = body.name.unwrap_or_else(|| body.key.clone());
    check_name("name", &name)?;
    check_description("description", &body.description)?;
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    // An organization the caller is not in is as unknown as one that does not exist.
    let role = if organizations::get(tx.conn(), &body.organization_id)
        .await?
        .is_some()
    {
        principal.role_in(tx.conn(), &body.organization_id).await?
    } else {
        None
    };
    let Some(role) = role else {
        return Err(ApiError::invalid_field(
            "organization_id",
            format!("organization '{}' not found", body.organization_id),
        ));
    };
    if role < Role::Admin {
        return Err(forbidden(role, Role::Admin));
    }
    meta.organization_id = Some(body.organization_id.clone());
    if projects::get_by_key(tx.conn(), &body.organization_id, &body.key)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            format!("project '{}' already exists", body.key),
            json!({"key": body.key}),
        ));
    }
    let now = now_rfc3339();
    let project = Project {
        id: new_id(),
        organization_id: body.organization_id,
        key: body.key,
        name,
        description: body.description,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    create_with_environments(&mut tx, &project, &actor, &meta, body.comment.as_deref()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, with_etag(project.version, &project)).into_response())
}

/// Inserts a project and its two standard environments, with audit entries, in `tx`.
pub(crate) async fn create_with_environments(
    tx: &mut crate::store::WriteTx<'_>,
    project: &Project,
    actor: &Actor,
    meta: &RequestMeta,
    comment: Option<&str>,
) -> ApiResult<()> {
    projects::insert(tx.conn(), project).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor,
            action: "project.create",
            resource_type: "project",
            resource_id: &project.id,
            before: None,
            after: Some(json!(project)),
            comment,
            meta,
        },
    )
    .await?;
    for (key, name, production) in [
        ("development", "Development", false),
        ("production", "Production", true),
    ] {
        let env = environments::Environment {
            id: new_id(),
            project_id: project.id.clone(),
            key: key.into(),
            name: name.into(),
            description: String::new(),
            is_production: production,
            protected: production,
            ruleset_version: 1,
            version: 1,
            created_at: project.created_at.clone(),
            updated_at: project.created_at.clone(),
        };
        environments::insert(tx.conn(), &env).await?;
        audit::append(
            tx.conn(),
            audit::NewEntry {
                actor,
                action: "environment.create",
                resource_type: "environment",
                resource_id: &env.id,
                before: None,
                after: Some(json!(env)),
                comment,
                meta,
            },
        )
        .await?;
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_project(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let project = projects::get(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    Ok(with_etag(project.version, &project))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectChanges {
    name: String,
    description: String,
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version")))]
pub(crate) async fn update_project(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let before = projects::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    if_match.check(before.version)?;
    let changes: ProjectChanges = patch.apply(
        json!({"name": before.name, "description": before.description}),
        &["key", "organization_id"],
        &json!({"key": before.key, "organization_id": before.organization_id}),
    )?;
    check_name("name", &changes.name)?;
    check_description("description", &changes.description)?;
    let after = Project {
        name: changes.name,
        description: changes.description,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    projects::update(tx.conn(), &after).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "project.update",
            resource_type: "project",
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

#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown id"), (status = 409, description = "Still referenced or not empty; `details` says by what"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_project(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let project = projects::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    if_match.check(project.version)?;
    let (flags, segments) = projects::count_contents(tx.conn(), &id).await?;
    if flags + segments > 0 {
        return Err(ApiError::conflict(
            format!(
                "project '{}' still has {flags} flag(s) and {segments} segment(s); delete them first",
                project.key
            ),
            json!({"flags": flags, "segments": segments}),
        ));
    }
    for env in environments::list_all(tx.conn(), &id).await? {
        environments::delete(tx.conn(), &env.id).await?;
        audit::append(
            tx.conn(),
            audit::NewEntry {
                actor: &actor,
                action: "environment.delete",
                resource_type: "environment",
                resource_id: &env.id,
                before: Some(json!(env)),
                after: None,
                comment: None,
                meta: &meta,
            },
        )
        .await?;
    }
    projects::delete(tx.conn(), &id).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "project.delete",
            resource_type: "project",
            resource_id: &id,
            before: Some(json!(project)),
            after: None,
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
