//! Flags: `/api/v1/projects/{projectId}/feature-flags` (list with filters, create in every
//! environment, `bulk`) and `/api/v1/feature-flags/{id}` (get, update, delete, `archive`,
//! `restore`, `kill-switch`). The operations are in `manage::flags`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::Value;

use super::AppState;
use super::error::ApiResult;
use super::extract::{
    Aimed, CommentBody, Db, Id, Json, OptionalJson, Page, Pagination, Query, with_etag,
};
use crate::access::Principal;
use crate::insights::Insights;
use crate::manage::By;
use crate::manage::fields::Patch;
use crate::manage::flags::actions::{self, Bulk, KillSwitch};
use crate::manage::flags::{self, ListFlags, NewFlag};
use crate::manage::insights::WithLifecycle;
use crate::store::Store;
use crate::store::flags::Flag;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/feature-flags",
            get(list_flags).post(create_flag),
        )
        .route(
            "/api/v1/projects/{project_id}/feature-flags/bulk",
            post(bulk_update_flags),
        )
        .route(
            "/api/v1/feature-flags/{id}",
            get(get_flag).patch(update_flag).delete(delete_flag),
        )
        .route("/api/v1/feature-flags/{id}/archive", patch(archive_flag))
        .route("/api/v1/feature-flags/{id}/restore", patch(restore_flag))
        .route("/api/v1/feature-flags/{id}/kill-switch", post(kill_switch))
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/feature-flags", tag = "flags",
    params(("project_id" = String, Path, description = "Project id"),
        ("q" = Option<String>, Query, description = "Case-insensitive substring of the key, name or description"),
        ("tag" = Option<String>, Query, description = "Only flags with this tag (case-insensitive)"),
        ("type" = Option<crate::schemas::FlagType>, Query, description = "Only flags of this type"),
        ("archived" = Option<bool>, Query, description = "true: archived flags only; default false: non-archived only"),
        ("environment_id" = Option<String>, Query, description = "An environment of the project, for `enabled`"),
        ("enabled" = Option<bool>, Query, description = "Only flags (not) enabled in `environment_id`, which it requires"),
        ("stale" = Option<bool>, Query, description = "true: stale flags only; false: flags that are not stale (see `lifecycle`)"),
        ("sort" = Option<String>, Query, pattern = "^-?(key|name|created_at|updated_at)$", description = "key (default), name, created_at or updated_at; prefix `-` for descending"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of flags, each with its `lifecycle` (last evaluated, stale and why)", body = Page<WithLifecycle>)))]
pub(crate) async fn list_flags(
    State(store): State<Arc<Store>>,
    State(insights): State<Arc<Insights>>,
    Path(project_id): Path<String>,
    Query(q): Query<ListFlags>,
) -> ApiResult<Json<Page<WithLifecycle>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let (items, total) = flags::list(&store, &project_id, q, &insights.settings).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/feature-flags", tag = "flags",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewFlag, description = "Unknown fields are rejected. `type` defaults to boolean (variations `on`/`off`); other types need `variations`. With `template` (a template's key), the template gives what the body leaves out and each environment it names starts with its configuration (admin needed where that changes a protected environment; refused with `approval_required` where the environment requires approval)"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created, with an initial (disabled) configuration and revision 1 in every environment of the project", body = Flag, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 409, description = "The project has a flag with this key", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_flag(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    principal: Principal,
    by: By,
    Json(body): Json<NewFlag>,
) -> ApiResult<Response> {
    let flag = flags::create(&store, &principal, &by, &project_id, body).await?;
    Ok((StatusCode::CREATED, with_etag(flag.version, &flag)).into_response())
}

#[utoipa::path(get, path = "/api/v1/feature-flags/{id}", tag = "flags",
    params(("id" = String, Path, description = "Flag id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found, with its `lifecycle` (last evaluated, stale and why)", body = WithLifecycle, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_flag(
    store: Db,
    State(insights): State<Arc<Insights>>,
    id: Id,
) -> ApiResult<Response> {
    let flag = flags::get_with_lifecycle(&store, &id, &insights.settings).await?;
    Ok(with_etag(flag.flag.version, &flag))
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}", tag = "flags",
    params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::FlagPatch, description = "JSON merge patch of name, description, variations, tags, client_side, temporary (id, key, type, archived and timestamps cannot change), plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated", body = Flag, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input, a bad `If-Match`, or new variations that a configuration or prerequisite no longer resolves against (`details.fields` as `environments.<key>.…`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_flag(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let flag = flags::update(&a.store, &a.principal, &a.by, a.at(), &patch).await?;
    Ok(with_etag(flag.version, &flag))
}

#[utoipa::path(delete, path = "/api/v1/feature-flags/{id}", tag = "flags",
    params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted with its configurations and revisions"),
        (status = 409, description = "The flag is a prerequisite of other flags (archived ones included); `details.referrers` lists them", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn delete_flag(a: Aimed) -> ApiResult<StatusCode> {
    flags::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/feature-flags/{id}/kill-switch", tag = "flags",
    params(("id" = String, Path, description = "Flag id")),
    request_body(content = KillSwitch, description = "`reason` (1 to 1000 characters) is required; without `environment_id` the flag is disabled in every environment"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Disabled at once; each configuration that was enabled gets a new version and revision commented with the reason, all recorded in one `flag.kill_switch` audit entry", body = super::openapi::bodies::KillSwitchResult),
        (status = 400, description = "Invalid input (missing or overlong reason, environment not in the flag's project); `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn kill_switch(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    Json(body): Json<KillSwitch>,
) -> ApiResult<Json<Value>> {
    let result = actions::kill_switch(&store, &by, &id, body).await?;
    Ok(Json(result))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/feature-flags/bulk", tag = "flags",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = Bulk, description = "1 to 500 flag ids; `environment_id` is required to enable, optional to disable (default: every environment), refused for archive and restore"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "All or nothing: every listed flag changed, already-matching ones left as they are", body = super::openapi::bodies::BulkResult),
        (status = 400, description = "Invalid input, an id that is not a flag of the project, or enabling an archived flag; nothing is changed; `details.fields` maps each field path (e.g. `flag_ids[2]`) to its problem", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Archiving a flag that is still a prerequisite of an active flag outside the batch; nothing is changed", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn bulk_update_flags(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    principal: Principal,
    by: By,
    Json(body): Json<Bulk>,
) -> ApiResult<Json<Value>> {
    let result = actions::bulk(&store, &principal, &by, &project_id, body).await?;
    Ok(Json(result))
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}/archive", tag = "flags",
    params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = Option<CommentBody>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Archived: a new flag version and a new ruleset version in every environment of the project (unchanged when already archived)", body = Flag, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 409, description = "The flag is a prerequisite of an active flag; `details.referrers` lists them", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn archive_flag(a: Aimed, body: OptionalJson<CommentBody>) -> ApiResult<Response> {
    let comment = body.0.comment.as_deref();
    let flag = actions::archive(&a.store, &a.by, &a.id, a.expected, true, comment).await?;
    Ok(with_etag(flag.version, &flag))
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}/restore", tag = "flags",
    params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = Option<CommentBody>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Restored: a new flag version and a new ruleset version in every environment of the project (unchanged when not archived)", body = Flag, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn restore_flag(a: Aimed, body: OptionalJson<CommentBody>) -> ApiResult<Response> {
    let comment = body.0.comment.as_deref();
    let flag = actions::archive(&a.store, &a.by, &a.id, a.expected, false, comment).await?;
    Ok(with_etag(flag.version, &flag))
}
