//! Flag configurations, one per flag and environment: `/api/v1/flags/{flagId}/environments/
//! {envId}/config` (get, update, `toggle`), its revisions (list, restore), and
//! `/api/v1/environments/{envId}/flag-configs` (list). Every change is validated against the
//! environment's whole ruleset, stored as a new version with a revision, and audited.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use vexil_core::{FlagDef, Rule, Snapshot, ValidationError, ValidationErrors};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, Page, Pagination, Query, RequestMeta, with_etag};
use super::patch::{Patch, check_comment};
use crate::audit::Actor;
use crate::store::flags::{self, Config, Flag, FlagConfig, Revision, configs};
use crate::store::{Store, audit, environments, now_rfc3339};

pub fn router() -> Router<AppState> {
    let config = "/api/v1/flags/{flag_id}/environments/{env_id}/config";
    Router::new()
        .route(config, get(get_config).patch(update_config))
        .route(&format!("{config}/toggle"), patch(toggle_config))
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

#[utoipa::path(get, path = "/api/v1/environments/{env_id}/flag-configs", tag = "flag configurations", params(("env_id" = String, Path, description = "Parent id"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of the environment's flag configurations"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown environment")))]
pub(crate) async fn list_flag_configs(
    State(store): State<Arc<Store>>,
    Path(env_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<FlagConfig>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    environments::get(&mut conn, &env_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &env_id))?;
    let (items, total) = configs::list(&mut conn, &env_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config", tag = "flag configurations", params(("flag_id" = String, Path), ("env_id" = String, Path, description = "Environment id (of the flag's project)")), responses((status = 200, description = "Found; ETag carries the version"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag, or environment not in its project")))]
pub(crate) async fn get_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let (_, config) = load_config(&mut conn, &flag_id, &env_id).await?;
    Ok(with_etag(config.version, &config))
}

#[utoipa::path(patch, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config", tag = "flag configurations", params(("flag_id" = String, Path), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch of the configuration (enabled, off_variation, fallthrough, targets, rules, prerequisites; arrays and a given `fallthrough` are replaced whole), plus an optional top-level `comment` for the audit trail and revision"), responses((status = 200, description = "Updated: a new version and revision; rules without an `id` get one"), (status = 400, description = "Invalid input, or a configuration that breaks the environment's ruleset; `details.fields` maps each path (relative to the configuration, e.g. `rules[0].clauses[0]`) to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag, or environment not in its project"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn update_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let (flag, before) = load_config(tx.conn(), &flag_id, &env_id).await?;
    if_match.check(before.version)?;
    let mut current = json!(before.config);
    // A serve is replaced whole: merging `{"rollout": …}` into `{"variation": …}` would
    // leave both and never be what the user meant.
    if patch
        .changes
        .get("fallthrough")
        .is_some_and(|v| !v.is_null())
    {
        current["fallthrough"] = Value::Null;
    }
    let config: Config = patch.apply(
        current,
        &IMMUTABLE,
        &json!({"flag_id": before.flag_id, "flag_key": before.flag_key,
                "environment_id": before.environment_id, "environment_key": before.environment_key,
                "version": before.version, "updated_at": before.updated_at}),
    )?;
    let change = Change::new(
        &actor,
        &meta,
        "flag_config.update",
        patch.comment.as_deref(),
    );
    let after = commit_config(tx.conn(), &flag, &before, config, &change).await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

const IMMUTABLE: [&str; 6] = [
    "flag_id",
    "flag_key",
    "environment_id",
    "environment_key",
    "version",
    "updated_at",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToggleBody {
    enabled: Option<bool>,
    comment: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/toggle", tag = "flag configurations", params(("flag_id" = String, Path), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Option<Object>, description = "Optional: `{enabled?, comment?}`; without `enabled` (or without a body) the configuration flips"), responses((status = 200, description = "Toggled: a new version and revision"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag, or environment not in its project"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn toggle_config(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<ToggleBody>,
) -> ApiResult<Response> {
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    let (flag, before) = load_config(tx.conn(), &flag_id, &env_id).await?;
    if_match.check(before.version)?;
    let config = Config {
        enabled: body.enabled.unwrap_or(!before.config.enabled),
        ..before.config.clone()
    };
    let change = Change::new(&actor, &meta, "flag_config.update", body.comment.as_deref());
    let after = commit_config(tx.conn(), &flag, &before, config, &change).await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions", tag = "revisions", params(("flag_id" = String, Path), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of revisions, newest first"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag, or environment not in its project")))]
pub(crate) async fn list_revisions(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Revision>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    load_config(&mut conn, &flag_id, &env_id).await?;
    let (items, total) =
        configs::revisions(&mut conn, &flag_id, &env_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

/// The body of actions whose only input is an optional comment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommentBody {
    pub comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions/{version}/restore", tag = "revisions", params(("flag_id" = String, Path), ("env_id" = String, Path, description = "Environment id (of the flag's project)"), ("version" = i64, Path, description = "The revision to restore"), ("If-Match" = Option<String>, Header, description = "Expected current version of the configuration, e.g. \"3\"")), request_body(content = Option<Object>, description = "Optional: `{comment?}`, default `restored version <n>`"), responses((status = 200, description = "Restored as a new version (and revision) with the old configuration; history is kept"), (status = 412, description = "If-Match does not match the configuration's current version"), (status = 400, description = "Invalid comment, or the old configuration no longer fits the environment's ruleset; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag, environment not in its project, or unknown revision"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn restore_revision(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id, version)): Path<(String, String, String)>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Response> {
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    let (flag, before) = load_config(tx.conn(), &flag_id, &env_id).await?;
    // The precondition is on the current configuration, which the restore replaces.
    if_match.check(before.version)?;
    let revision = match version.parse::<i64>() {
        Ok(v) => configs::revision(tx.conn(), &flag_id, &env_id, v).await?,
        Err(_) => None,
    }
    .ok_or_else(|| ApiError::not_found("revision", &version))?;
    let comment = body
        .comment
        .unwrap_or_else(|| format!("restored version {}", revision.version));
    let change = Change::new(&actor, &meta, "flag_config.restore", Some(&comment));
    let after = commit_config(tx.conn(), &flag, &before, revision.config, &change).await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

/// The flag and its configuration in an environment of the same project (else 404).
pub(super) async fn load_config(
    conn: &mut AnyConnection,
    flag_id: &str,
    env_id: &str,
) -> ApiResult<(Flag, FlagConfig)> {
    let flag = flags::get(conn, flag_id)
        .await?
        .ok_or_else(|| ApiError::not_found("flag", flag_id))?;
    let config = configs::get(conn, flag_id, env_id).await?;
    // A configuration exists exactly for the environments of the flag's project.
    let config = config.ok_or_else(|| ApiError::not_found("environment", env_id))?;
    Ok((flag, config))
}

/// Who changes a configuration, why, and under which audit action (`None`: the caller
/// writes one audit entry for several configurations).
#[derive(Debug, Clone, Copy)]
pub(super) struct Change<'a> {
    pub actor: &'a Actor,
    pub meta: &'a RequestMeta,
    pub action: Option<&'a str>,
    pub comment: Option<&'a str>,
}

impl<'a> Change<'a> {
    pub(super) fn new(
        actor: &'a Actor,
        meta: &'a RequestMeta,
        action: &'a str,
        comment: Option<&'a str>,
    ) -> Self {
        Change {
            actor,
            meta,
            action: Some(action),
            comment,
        }
    }
}

/// Stores `config` as the next version of `before`: rule ids assigned, validated against
/// the environment's ruleset (400 with paths relative to the configuration), then saved
/// with a revision, a new ruleset version and (unless `change.action` is `None`) an audit
/// entry.
pub(super) async fn commit_config(
    conn: &mut AnyConnection,
    flag: &Flag,
    before: &FlagConfig,
    mut config: Config,
    change: &Change<'_>,
) -> ApiResult<FlagConfig> {
    if flag.archived && config.enabled && !before.config.enabled {
        return Err(ApiError::conflict(
            format!(
                "flag '{}' is archived; restore it before enabling it",
                flag.key
            ),
            json!({"archived": true}),
        ));
    }
    assign_rule_ids(&mut config.rules);
    // Whether a flag is enabled never affects validity: toggles skip the ruleset check.
    let probe = Config {
        enabled: before.config.enabled,
        ..config.clone()
    };
    if probe != before.config {
        let def = config.to_def(flag, before.version + 1);
        let problems = new_problems(conn, &before.environment_id, &flag.key, def, false).await?;
        if !problems.is_empty() {
            return Err(relative_to_flag(problems, &flag.key).into());
        }
    }
    let after = FlagConfig {
        config,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    configs::save(conn, &after, change.actor, change.comment).await?;
    if let Some(action) = change.action {
        audit::append(
            conn,
            audit::NewEntry {
                actor: change.actor,
                action,
                resource_type: "flag_config",
                // Filed under the flag, so that one filter shows a flag's whole history; the
                // environment is in `before`/`after`.
                resource_id: &after.flag_id,
                before: Some(json!(before)),
                after: Some(json!(after)),
                comment: change.comment,
                meta: change.meta,
            },
        )
        .await?;
    }
    Ok(after)
}

/// Gives every rule without an `id` a short one, unique within the flag; given ids stay.
fn assign_rule_ids(rules: &mut [Rule]) {
    let mut taken: HashSet<String> = rules.iter().filter_map(|r| r.id.clone()).collect();
    for rule in rules.iter_mut().filter(|r| r.id.is_none()) {
        let id = loop {
            let candidate = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
            if taken.insert(candidate.clone()) {
                break candidate;
            }
        };
        rule.id = Some(id);
    }
}

/// The problems that putting `def` in as flag `key` would add to the environment's
/// ruleset, with their ruleset paths (`flags.<key>.rules[0]…`, or another flag's path for
/// a prerequisite cycle closed elsewhere). Problems already there are not this change's.
pub(super) async fn new_problems(
    conn: &mut AnyConnection,
    env_id: &str,
    key: &str,
    def: FlagDef,
    with_referrers: bool,
) -> ApiResult<Vec<ValidationError>> {
    let env = environments::get(conn, env_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", env_id))?;
    let project = env.project_id.as_str();
    let ruleset = flags::ruleset_around(conn, project, env_id, key, def, with_referrers).await?;
    let Err(errors) = Snapshot::validate(&ruleset) else {
        return Ok(Vec::new());
    };
    // Report only what the change adds: problems already present with the stored
    // definition (data written outside the API) must not block unrelated edits.
    let existing = match flags::def_in_environment(conn, project, env_id, key).await? {
        Some(previous) => {
            let before =
                flags::ruleset_around(conn, project, env_id, key, previous, with_referrers).await?;
            Snapshot::validate(&before).err().unwrap_or_default()
        }
        None => ValidationErrors::default(),
    };
    Ok(errors
        .0
        .into_iter()
        .filter(|e| !existing.0.contains(e))
        .collect())
}

/// Strips the `flags.<key>.` prefix, so that paths read relative to the flag's
/// configuration (`rules[0].clauses[0].values[1]`).
pub(super) fn relative_to_flag(errors: Vec<ValidationError>, key: &str) -> ValidationErrors {
    let prefix = format!("flags.{key}");
    ValidationErrors(
        errors
            .into_iter()
            .map(|mut e| {
                if let Some(rest) = e.path.strip_prefix(&prefix)
                    && (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
                {
                    e.path = rest.trim_start_matches('.').to_owned();
                }
                e
            })
            .collect(),
    )
}

/// A JSON body that may be left out: a request without a body reads as `T::default()`;
/// one with a body is read like [`Json`] (415, 413 and path-precise 400s alike).
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        if !chunked && length.unwrap_or(0) == 0 {
            return Ok(OptionalJson(T::default()));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(t)| OptionalJson(t))
    }
}
