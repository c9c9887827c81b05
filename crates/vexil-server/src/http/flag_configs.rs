//! Flag configurations, one per flag and environment: `/api/v1/flags/{flagId}/environments/
//! {envId}/config` (get, update, `toggle`), its revisions (list, restore), and
//! `/api/v1/environments/{envId}/flag-configs` (list). The operations are in
//! `manage::flag_configs`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{
    CommentBody, IfMatch, Json, OptionalJson, Page, Pagination, Query, with_etag,
};
use crate::manage::By;
use crate::manage::fields::Patch;
use crate::manage::flag_configs;
use crate::store::Store;
use crate::store::flags::{FlagConfig, Revision};

pub(crate) fn router() -> Router<AppState> {
    let config = "/api/v1/flags/{flag_id}/environments/{env_id}/config";
    Router::new()
        .route(config, get(get_config).patch(update_config))
        .route(&format!("{config}/toggle"), patch(toggle_config))
        // The service design's spelling of the same operation.
        .route(
            "/api/v1/flags/{flag_id}/environments/{env_id}/toggle",
            patch(toggle_config),
        )
        .route(&format!("{config}/revisions"), get(list_revisions))
        .route(
            &format!("{config}/revisions/{{version}}/restore"),
            post(restore_revision),
        )
        .route(
            "/api/v1/environments/{env_id}/flag-configs",
            get(list_flag_configs),
        )
}

#[utoipa::path(get, path = "/api/v1/environments/{env_id}/flag-configs", tag = "flag configurations",
    params(("env_id" = String, Path, description = "Environment id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of the environment's flag configurations", body = Page<FlagConfig>)))]
pub(crate) async fn list_flag_configs(
    State(store): State<Arc<Store>>,
    Path(env_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<FlagConfig>>> {
    let p = p.validate()?;
    let (items, total) = flag_configs::list(&store, &env_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config", tag = "flag configurations",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id (of the flag's project)")),
    responses(super::openapi::errors::Authenticated, (status = 404, description = "Unknown flag, or environment not in its project", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Found", body = FlagConfig, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let config = flag_configs::get(&store, &flag_id, &env_id).await?;
    Ok(with_etag(config.version, &config))
}

#[utoipa::path(patch, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config", tag = "flag configurations",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::ConfigPatch, description = "JSON merge patch of the configuration (arrays and a given `fallthrough` are replaced whole), plus an optional top-level `comment` for the audit trail and revision"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::IfMatch, (status = 404, description = "Unknown flag, or environment not in its project", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Updated: a new version and revision; rules without an `id` get one", body = FlagConfig, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input, a bad `If-Match`, or a configuration that breaks the environment's ruleset; `details.fields` maps each path (relative to the configuration, e.g. `rules[0].clauses[0]`) to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    by: By,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let at = (flag_id.as_str(), env_id.as_str());
    let after = flag_configs::update(&store, &by, at, if_match.0, &patch).await?;
    Ok(with_etag(after.version, &after))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "comment": "launch"}))]
pub(crate) struct ToggleBody {
    enabled: Option<bool>,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/toggle", tag = "flag configurations",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = Option<ToggleBody>, description = "Optional: `{enabled?, comment?}`; without `enabled` (or without a body) the configuration flips"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::IfMatch, (status = 404, description = "Unknown flag, or environment not in its project", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Toggled: a new version and revision", body = FlagConfig, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn toggle_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    by: By,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<ToggleBody>,
) -> ApiResult<Response> {
    let at = (flag_id.as_str(), env_id.as_str());
    let comment = body.comment.as_deref();
    let after = flag_configs::toggle(&store, &by, at, if_match.0, body.enabled, comment).await?;
    Ok(with_etag(after.version, &after))
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions", tag = "revisions",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, (status = 404, description = "Unknown flag, or environment not in its project", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "A page of revisions, newest first", body = Page<Revision>)))]
pub(crate) async fn list_revisions(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Revision>>> {
    let p = p.validate()?;
    let at = (flag_id.as_str(), env_id.as_str());
    let (items, total) = flag_configs::revisions(&store, at, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions/{version}/restore", tag = "revisions",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("version" = i64, Path, description = "The revision to restore"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = Option<CommentBody>, description = "Optional: `{comment?}`, default `restored version <n>`"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::IfMatch,
        (status = 200, description = "Restored as a new version (and revision) with the old configuration; history is kept", body = FlagConfig, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid comment or `If-Match`, or the old configuration no longer fits the environment's ruleset; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody),
        (status = 404, description = "Unknown flag, environment not in its project, or unknown revision", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn restore_revision(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id, version)): Path<(String, String, String)>,
    by: By,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Response> {
    let at = (flag_id.as_str(), env_id.as_str());
    let after = flag_configs::restore(&store, &by, at, &version, if_match.0, body.comment).await?;
    Ok(with_etag(after.version, &after))
}
