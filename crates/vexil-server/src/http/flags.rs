//! Flags: `/api/v1/projects/{projectId}/feature-flags` (list with filters, create in every
//! environment) and `/api/v1/feature-flags/{id}` (get, update, delete, `archive`,
//! `restore`). Definition checks are in [`definition`]; archive, restore, the kill switch
//! and bulk actions in [`actions`].

pub(super) mod actions;
mod definition;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use vexil_core::{FlagType, Variation};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, Page, Pagination, Query, RequestMeta, with_etag};
use super::patch::{Patch, check_comment, check_description, check_name};
use crate::audit::Actor;
use crate::store::flags::{self, Config, Flag, FlagConfig, FlagFilter, FlagSort, configs};
use crate::store::{Store, audit, environments, projects};
pub(super) use definition::new_flag;
use definition::{apply_flag_patch, check_configs_still_valid, check_tags};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/feature-flags",
            get(list_flags).post(create_flag),
        )
        .route(
            "/api/v1/projects/{project_id}/feature-flags/bulk",
            post(actions::bulk_update_flags),
        )
        .route(
            "/api/v1/feature-flags/{id}",
            get(get_flag).patch(update_flag).delete(delete_flag),
        )
        .route(
            "/api/v1/feature-flags/{id}/archive",
            patch(actions::archive_flag),
        )
        .route(
            "/api/v1/feature-flags/{id}/restore",
            patch(actions::restore_flag),
        )
        .route(
            "/api/v1/feature-flags/{id}/kill-switch",
            post(actions::kill_switch),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListFlags {
    q: Option<String>,
    tag: Option<String>,
    #[serde(rename = "type")]
    kind: Option<FlagType>,
    archived: Option<bool>,
    environment_id: Option<String>,
    enabled: Option<bool>,
    sort: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/feature-flags", tag = "flags", params(("project_id" = String, Path, description = "Parent id"), ("q" = Option<String>, Query, description = "Case-insensitive substring of the key, name or description"), ("tag" = Option<String>, Query, description = "Only flags with this tag (case-insensitive)"), ("type" = Option<String>, Query, description = "boolean, string, number or json"), ("archived" = Option<bool>, Query, description = "true: archived flags only; default false: non-archived only"), ("environment_id" = Option<String>, Query, description = "An environment of the project, for `enabled`"), ("enabled" = Option<bool>, Query, description = "Only flags (not) enabled in `environment_id`, which it requires"), ("sort" = Option<String>, Query, description = "key (default), name, created_at or updated_at; prefix `-` for descending"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of flags"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project")))]
pub(crate) async fn list_flags(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(q): Query<ListFlags>,
) -> ApiResult<Json<Page<Flag>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let mut conn = store.read().await?;
    projects::get(&mut conn, &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let filter = list_filter(&mut conn, &project_id, q).await?;
    let (items, total) = flags::list(&mut conn, &project_id, &filter, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

async fn list_filter(
    conn: &mut AnyConnection,
    project_id: &str,
    q: ListFlags,
) -> ApiResult<FlagFilter> {
    let sort = match q.sort.as_deref() {
        None => FlagSort::Key,
        Some(s) => FlagSort::parse(s).ok_or_else(|| {
            ApiError::invalid_field(
                "sort",
                "must be one of key, name, created_at, updated_at, optionally prefixed with '-'",
            )
        })?,
    };
    for (field, text) in [("q", &q.q), ("tag", &q.tag)] {
        // PostgreSQL refuses NUL in text parameters; no search needs control characters.
        if text
            .as_deref()
            .is_some_and(|t| t.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_field(
                field,
                "must not contain control characters",
            ));
        }
    }
    if let Some(env_id) = &q.environment_id {
        in_project(conn, project_id, env_id).await?;
    }
    let enabled_in = match (q.environment_id, q.enabled) {
        (Some(env), Some(enabled)) => Some((env, enabled)),
        (None, Some(_)) => {
            return Err(ApiError::invalid_field(
                "enabled",
                "requires environment_id",
            ));
        }
        _ => None,
    };
    Ok(FlagFilter {
        q: q.q.filter(|s| !s.is_empty()),
        tag: q.tag,
        kind: q.kind,
        archived: q.archived.unwrap_or(false),
        enabled_in,
        sort,
    })
}

/// Checks that `env_id` (given in a query or body field `environment_id`) is an
/// environment of the project.
pub(super) async fn in_project(
    conn: &mut AnyConnection,
    project_id: &str,
    env_id: &str,
) -> ApiResult<environments::Environment> {
    environments::get(conn, env_id)
        .await?
        .filter(|e| e.project_id == project_id)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "environment_id",
                format!("environment '{env_id}' not found in this project"),
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateFlag {
    key: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(rename = "type")]
    kind: Option<FlagType>,
    variations: Option<Vec<Variation>>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    client_side: bool,
    #[serde(default)]
    temporary: bool,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/feature-flags", tag = "flags", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected. `type` defaults to boolean (variations `on`/`off`); other types need `variations`"), responses((status = 201, description = "Created, with an initial (disabled) configuration and revision 1 in every environment of the project; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_flag(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    Json(body): Json<CreateFlag>,
) -> ApiResult<Response> {
    let flag = new_flag(project_id, body.key, body.kind, body.variations)?;
    let name = body.name.unwrap_or_else(|| flag.key.clone());
    check_name("name", &name)?;
    check_description("description", &body.description)?;
    check_comment(body.comment.as_deref())?;
    let flag = Flag {
        name,
        description: body.description,
        tags: check_tags(body.tags)?,
        client_side: body.client_side,
        temporary: body.temporary,
        ..flag
    };
    let mut tx = store.write().await?;
    projects::get(tx.conn(), &flag.project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &flag.project_id))?;
    create(tx.conn(), &flag, &actor, &meta, body.comment.as_deref()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, with_etag(flag.version, &flag)).into_response())
}

/// Creates `flag` (409 if its key is taken) with its initial configuration and revision 1
/// in every environment of its project; bumps their ruleset versions; audits.
pub(super) async fn create(
    conn: &mut AnyConnection,
    flag: &Flag,
    actor: &Actor,
    meta: &RequestMeta,
    comment: Option<&str>,
) -> ApiResult<()> {
    if flags::get_by_key(conn, &flag.project_id, &flag.key)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            format!("flag '{}' already exists", flag.key),
            json!({"key": flag.key}),
        ));
    }
    flags::insert(conn, flag).await?;
    for env in environments::list_all(conn, &flag.project_id).await? {
        let config = FlagConfig {
            flag_id: flag.id.clone(),
            flag_key: flag.key.clone(),
            environment_id: env.id,
            environment_key: env.key,
            config: Config::initial(flag.kind, &flag.variations),
            version: 1,
            updated_at: flag.created_at.clone(),
        };
        configs::insert(conn, &config, actor, None).await?;
    }
    environments::bump_project_rulesets(
        conn,
        &flag.project_id,
        environments::RulesetChange::Flag(&flag.key),
    )
    .await?;
    let entry = entry(
        actor,
        meta,
        "flag.create",
        &flag.id,
        None,
        Some(json!(flag)),
    );
    audit::append(conn, audit::NewEntry { comment, ..entry }).await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/feature-flags/{id}", tag = "flags", params(("id" = String, Path, description = "Flag id")), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_flag(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let flag = load_flag(&mut conn, &id).await?;
    Ok(with_etag(flag.version, &flag))
}

pub(super) async fn load_flag(conn: &mut AnyConnection, id: &str) -> ApiResult<Flag> {
    flags::get(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("flag", id))
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}", tag = "flags", params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch of name, description, variations, tags, client_side, temporary (id, key, type, archived and timestamps cannot change), plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input, or new variations that a configuration or prerequisite no longer resolves against (`details.fields` as `environments.<key>.…`)"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn update_flag(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let before = load_flag(tx.conn(), &id).await?;
    if_match.check(before.version)?;
    let after = apply_flag_patch(&patch, &before)?;
    if after.variations != before.variations {
        check_configs_still_valid(tx.conn(), &after).await?;
    }
    flags::update(tx.conn(), &after).await?;
    if after.variations != before.variations || after.client_side != before.client_side {
        environments::bump_project_rulesets(
            tx.conn(),
            &after.project_id,
            environments::RulesetChange::Flag(&after.key),
        )
        .await?;
    }
    let entry = entry(
        &actor,
        &meta,
        "flag.update",
        &id,
        Some(json!(before)),
        Some(json!(after)),
    );
    audit::append(
        tx.conn(),
        audit::NewEntry {
            comment: patch.comment.as_deref(),
            ..entry
        },
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

#[utoipa::path(delete, path = "/api/v1/feature-flags/{id}", tag = "flags", params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted with its configurations and revisions"), (status = 400, description = "Malformed If-Match"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 409, description = "The flag is a prerequisite of other flags (archived ones included); `details.referrers` lists them"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_flag(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let flag = load_flag(tx.conn(), &id).await?;
    if_match.check(flag.version)?;
    let referrers = flags::referrers(tx.conn(), &flag.project_id, &flag.key).await?;
    if !referrers.is_empty() {
        return Err(ApiError::conflict(
            format!("flag '{}' is a prerequisite of other flags", flag.key),
            json!({ "referrers": referrers }),
        ));
    }
    flags::delete(tx.conn(), &id).await?;
    environments::bump_project_rulesets(
        tx.conn(),
        &flag.project_id,
        environments::RulesetChange::Flag(&flag.key),
    )
    .await?;
    let entry = entry(&actor, &meta, "flag.delete", &id, Some(json!(flag)), None);
    audit::append(tx.conn(), entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An audit entry about a flag, without comment.
pub(super) fn entry<'a>(
    actor: &'a Actor,
    meta: &'a RequestMeta,
    action: &'a str,
    id: &'a str,
    before: Option<Value>,
    after: Option<Value>,
) -> audit::NewEntry<'a> {
    audit::NewEntry {
        actor,
        action,
        resource_type: "flag",
        resource_id: id,
        before,
        after,
        comment: None,
        meta,
    }
}
