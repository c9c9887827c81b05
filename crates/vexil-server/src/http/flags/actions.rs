//! Actions on flags beyond CRUD: archive and restore (`PATCH /api/v1/feature-flags/{id}/
//! archive|restore`), the kill switch (`POST …/{id}/kill-switch`) and bulk
//! enable/disable/archive/restore (`POST /api/v1/projects/{projectId}/feature-flags/bulk`),
//! which changes every listed flag or none.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use vexil_core::{ValidationError, ValidationErrors};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{IfMatch, Json, RequestMeta, with_etag};
use super::super::flag_configs::{Change, CommentBody, OptionalJson, commit_config};
use super::super::patch::{MAX_COMMENT, check_comment};
use super::{entry, in_project, load_flag};
use crate::access::{Principal, require_in_scope, to_change_environment};
use crate::audit::Actor;
use crate::store::environments::Environment;
use crate::store::flags::{self, Config, Flag, FlagConfig, configs};
use crate::store::{Store, audit, environments, now_rfc3339, projects, scopes};

/// Most flags one bulk request may change.
const MAX_BULK: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillSwitch {
    reason: String,
    environment_id: Option<String>,
}

/// Disables the flag at once in one environment or in all of them. Every configuration
/// that was enabled gets a new version and revision (comment: the reason); one audit entry
/// `flag.kill_switch` records them all.
#[utoipa::path(post, path = "/api/v1/feature-flags/{id}/kill-switch", tag = "flags", params(("id" = String, Path, description = "Flag id")), request_body(content = Object, description = "`{reason, environment_id?}`: reason (1 to 1000 characters) is required; without `environment_id` the flag is disabled in every environment"), responses((status = 200, description = "Disabled at once: `{flag_id, flag_key, changed, items}`; each configuration that was enabled gets a new version and revision commented with the reason, all recorded in one `flag.kill_switch` audit entry"), (status = 400, description = "Invalid input (missing or overlong reason, environment not in the flag's project); `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown flag"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn kill_switch(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    principal: Principal,
    meta: RequestMeta,
    Json(body): Json<KillSwitch>,
) -> ApiResult<Json<Value>> {
    let n = body.reason.chars().count();
    // Control characters (NUL above all, which PostgreSQL text refuses) have no place here.
    let control = body
        .reason
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if body.reason.trim().is_empty() || n > MAX_COMMENT || control {
        return Err(ApiError::invalid_field(
            "reason",
            format!("must be 1 to {MAX_COMMENT} characters, without control characters"),
        ));
    }
    let mut tx = store.write().await?;
    let flag = load_flag(tx.conn(), &id).await?;
    let targets = match &body.environment_id {
        Some(env_id) => {
            in_project(tx.conn(), &flag.project_id, env_id).await?;
            configs::get(tx.conn(), &id, env_id)
                .await?
                .into_iter()
                .collect()
        }
        None => configs::of_flag(tx.conn(), &id).await?,
    };
    // Disabling where a protected environment serves the flag needs admin.
    let protected = scopes::any_enabled_in_protected(
        tx.conn(),
        std::slice::from_ref(&flag.id),
        body.environment_id.as_deref(),
    )
    .await?;
    require_in_scope(
        tx.conn(),
        &principal,
        &meta,
        to_change_environment(protected),
    )
    .await?;
    let change = Change {
        actor: &actor,
        meta: &meta,
        action: None,
        comment: Some(&body.reason),
    };
    let (items, before, after) = disable(tx.conn(), &flag, targets, &change).await?;
    let entry = entry(
        &actor,
        &meta,
        "flag.kill_switch",
        &id,
        Some(json!(before)),
        Some(json!(after)),
    );
    audit::append(
        tx.conn(),
        audit::NewEntry {
            comment: Some(&body.reason),
            ..entry
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({
        "flag_id": flag.id, "flag_key": flag.key, "changed": after.len(), "items": items,
    })))
}

/// Disables every enabled configuration in `targets`: `(all resulting configurations,
/// the changed ones before, the changed ones after)`.
async fn disable(
    conn: &mut AnyConnection,
    flag: &Flag,
    targets: Vec<FlagConfig>,
    change: &Change<'_>,
) -> ApiResult<(Vec<FlagConfig>, Vec<FlagConfig>, Vec<FlagConfig>)> {
    let (mut items, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for c in targets {
        if !c.config.enabled {
            items.push(c);
            continue;
        }
        let config = Config {
            enabled: false,
            ..c.config.clone()
        };
        let changed = commit_config(conn, flag, &c, config, change).await?;
        before.push(c);
        after.push(changed.clone());
        items.push(changed);
    }
    Ok((items, before, after))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BulkAction {
    Enable,
    Disable,
    Archive,
    Restore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bulk {
    action: BulkAction,
    flag_ids: Vec<String>,
    /// Required to enable; disabling without it disables in every environment.
    environment_id: Option<String>,
    comment: Option<String>,
}

/// Applies one action to many flags in one transaction: an unknown id or any item that
/// cannot be changed fails the whole request, and nothing is changed.
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/feature-flags/bulk", tag = "flags", params(("project_id" = String, Path)), request_body(content = Object, description = "`{action, flag_ids, environment_id?, comment?}`: action enable, disable, archive or restore; 1 to 500 flag ids; `environment_id` is required to enable, optional to disable (default: every environment), refused for archive and restore"), responses((status = 200, description = "All or nothing: every listed flag changed (`{updated, items}`), already-matching ones left as they are"), (status = 400, description = "Invalid input, an id that is not a flag of the project, or enabling an archived flag; nothing is changed; `details.fields` maps each field path (e.g. `flag_ids[2]`) to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project"), (status = 409, description = "Archiving a flag that is still a prerequisite of an active flag outside the batch; nothing is changed"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn bulk_update_flags(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    actor: Actor,
    principal: Principal,
    meta: RequestMeta,
    Json(body): Json<Bulk>,
) -> ApiResult<Json<Value>> {
    check_bulk(&body)?;
    let mut tx = store.write().await?;
    projects::get(tx.conn(), &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let env = match &body.environment_id {
        Some(env_id) => Some(in_project(tx.conn(), &project_id, env_id).await?),
        None => None,
    };
    let batch = load_batch(tx.conn(), &project_id, &body.flag_ids).await?;
    // What a protected environment serves changes when a flag is enabled there, or when
    // a flag enabled there is disabled, archived or restored: that needs admin.
    let protected = match (body.action, &env) {
        (BulkAction::Enable, Some(env)) => env.protected,
        (BulkAction::Disable, Some(env)) => {
            scopes::any_enabled_in_protected(tx.conn(), &body.flag_ids, Some(&env.id)).await?
        }
        _ => scopes::any_enabled_in_protected(tx.conn(), &body.flag_ids, None).await?,
    };
    require_in_scope(
        tx.conn(),
        &principal,
        &meta,
        to_change_environment(protected),
    )
    .await?;
    let comment = body.comment.as_deref();
    let (updated, items) = match body.action {
        BulkAction::Enable | BulkAction::Disable => {
            let change = Change::new(&actor, &meta, "flag_config.update", comment);
            let enable = body.action == BulkAction::Enable;
            set_enabled(tx.conn(), &batch, env.as_ref(), enable, &change).await?
        }
        BulkAction::Archive | BulkAction::Restore => {
            let archive = body.action == BulkAction::Archive;
            set_archived(tx.conn(), batch, (&actor, &meta, comment), archive).await?
        }
    };
    tx.commit().await?;
    Ok(Json(json!({"updated": updated, "items": items})))
}

fn check_bulk(body: &Bulk) -> ApiResult<()> {
    check_comment(body.comment.as_deref())?;
    if body.flag_ids.is_empty() || body.flag_ids.len() > MAX_BULK {
        return Err(ApiError::invalid_field(
            "flag_ids",
            format!("must list 1 to {MAX_BULK} flag ids"),
        ));
    }
    match (body.action, &body.environment_id) {
        (BulkAction::Enable, None) => Err(ApiError::invalid_field(
            "environment_id",
            "is required to enable flags",
        )),
        (BulkAction::Archive | BulkAction::Restore, Some(_)) => Err(ApiError::invalid_field(
            "environment_id",
            "applies to enable and disable only",
        )),
        _ => Ok(()),
    }
}

/// The listed flags (each once, with its index in `flag_ids`); 400 naming every id that is
/// not a flag of the project.
async fn load_batch(
    conn: &mut AnyConnection,
    project_id: &str,
    ids: &[String],
) -> ApiResult<Vec<(usize, Flag)>> {
    let (mut seen, mut batch, mut problems) = (HashSet::new(), Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            continue;
        }
        match flags::get(conn, id).await? {
            Some(f) if f.project_id == project_id => batch.push((i, f)),
            _ => problems.push(ValidationError::new(
                format!("flag_ids[{i}]"),
                format!("flag '{id}' not found in this project"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(batch)
    } else {
        Err(ValidationErrors(problems).into())
    }
}

/// Enables or disables the batch in `env` (or, with `None`, in every environment).
async fn set_enabled(
    conn: &mut AnyConnection,
    batch: &[(usize, Flag)],
    env: Option<&Environment>,
    enabled: bool,
    change: &Change<'_>,
) -> ApiResult<(usize, Vec<Value>)> {
    let archived: Vec<_> = batch
        .iter()
        .filter(|(_, f)| enabled && f.archived)
        .map(|(i, f)| {
            let message = format!("flag '{}' is archived; restore it first", f.key);
            ValidationError::new(format!("flag_ids[{i}]"), message)
        })
        .collect();
    if !archived.is_empty() {
        return Err(ValidationErrors(archived).into());
    }
    let (mut updated, mut items) = (0, Vec::new());
    for (_, flag) in batch {
        let targets = match env {
            Some(env) => configs::get(conn, &flag.id, &env.id)
                .await?
                .into_iter()
                .collect(),
            None => configs::of_flag(conn, &flag.id).await?,
        };
        for c in targets {
            let c = if c.config.enabled == enabled {
                c
            } else {
                updated += 1;
                let config = Config {
                    enabled,
                    ..c.config.clone()
                };
                commit_config(conn, flag, &c, config, change).await?
            };
            items.push(json!(c));
        }
    }
    Ok((updated, items))
}

/// Archives or restores the batch; archiving fails (409) on any flag that is still a
/// prerequisite of an active flag outside the batch.
async fn set_archived(
    conn: &mut AnyConnection,
    batch: Vec<(usize, Flag)>,
    (actor, meta, comment): (&Actor, &RequestMeta, Option<&str>),
    archived: bool,
) -> ApiResult<(usize, Vec<Value>)> {
    let together = batch.iter().map(|(_, f)| f.id.clone()).collect();
    let archive = Archive {
        actor,
        meta,
        comment,
        together: &together,
    };
    let (mut updated, mut items) = (0, Vec::new());
    for (_, flag) in batch {
        let version = flag.version;
        let after = archive.apply(conn, flag, archived).await?;
        if after.version != version {
            updated += 1;
        }
        items.push(json!(after));
    }
    Ok((updated, items))
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}/archive", tag = "flags", params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Option<Object>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"), responses((status = 200, description = "Archived: a new flag version and a new ruleset version in every environment of the project (unchanged when already archived)"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 409, description = "The flag is a prerequisite of an active flag; `details.referrers` lists them"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn archive_flag(
    store: State<Arc<Store>>,
    id: Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Response> {
    archive_one(store, id, actor, meta, if_match, body, true).await
}

#[utoipa::path(patch, path = "/api/v1/feature-flags/{id}/restore", tag = "flags", params(("id" = String, Path, description = "Flag id"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Option<Object>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"), responses((status = 200, description = "Restored: a new flag version and a new ruleset version in every environment of the project (unchanged when not archived)"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn restore_flag(
    store: State<Arc<Store>>,
    id: Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Response> {
    archive_one(store, id, actor, meta, if_match, body, false).await
}

async fn archive_one(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    body: CommentBody,
    archived: bool,
) -> ApiResult<Response> {
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    let flag = load_flag(tx.conn(), &id).await?;
    if_match.check(flag.version)?;
    let change = Archive {
        actor: &actor,
        meta: &meta,
        comment: body.comment.as_deref(),
        together: &HashSet::new(),
    };
    let flag = change.apply(tx.conn(), flag, archived).await?;
    tx.commit().await?;
    Ok(with_etag(flag.version, &flag))
}

/// Archiving or restoring flags. `together`: ids of flags archived in the same request,
/// whose prerequisites on each other do not block.
#[derive(Debug)]
struct Archive<'a> {
    actor: &'a Actor,
    meta: &'a RequestMeta,
    comment: Option<&'a str>,
    together: &'a HashSet<String>,
}

impl Archive<'_> {
    /// Sets `archived` (a no-op when already so), with a new flag version, new ruleset
    /// versions and an audit entry.
    async fn apply(&self, conn: &mut AnyConnection, flag: Flag, archived: bool) -> ApiResult<Flag> {
        if flag.archived == archived {
            return Ok(flag);
        }
        if archived {
            self.check_referrers(conn, &flag).await?;
        }
        let after = Flag {
            archived,
            version: flag.version + 1,
            updated_at: now_rfc3339(),
            ..flag.clone()
        };
        flags::update(conn, &after).await?;
        environments::bump_project_rulesets(
            conn,
            &after.project_id,
            environments::RulesetChange::Flag(&after.key),
        )
        .await?;
        let action = if archived {
            "flag.archive"
        } else {
            "flag.restore"
        };
        let (before, after_doc) = (Some(json!(flag)), Some(json!(after)));
        let entry = entry(self.actor, self.meta, action, &after.id, before, after_doc);
        audit::append(
            conn,
            audit::NewEntry {
                comment: self.comment,
                ..entry
            },
        )
        .await?;
        Ok(after)
    }

    /// 409 while a non-archived flag (not archived together with it) has `flag` as a
    /// prerequisite in some environment.
    async fn check_referrers(&self, conn: &mut AnyConnection, flag: &Flag) -> ApiResult<()> {
        let referrers: Vec<_> = flags::referrers(conn, &flag.project_id, &flag.key)
            .await?
            .into_iter()
            .filter(|r| !r.archived && !self.together.contains(&r.flag_id))
            .collect();
        if referrers.is_empty() {
            return Ok(());
        }
        Err(ApiError::conflict(
            format!("flag '{}' is a prerequisite of active flags", flag.key),
            json!({"flag": flag.key, "referrers": referrers}),
        ))
    }
}
