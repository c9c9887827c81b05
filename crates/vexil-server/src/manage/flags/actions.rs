//! Actions on flags beyond their definition: archive and restore, the kill switch, and
//! bulk enable/disable/archive/restore, which changes every listed flag or none.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};
use vexil_core::{ValidationError, ValidationErrors};

use super::save_in;
use crate::access::{Principal, to_change_environment};
use crate::audit::Action;
use crate::manage::access::require_in_scope;
use crate::manage::fields::{MAX_COMMENT, check_comment};
use crate::manage::flag_configs::set_enabled_in;
use crate::manage::{By, Change, Error, Result, environments, load, load_at};
use crate::store::Conn;
use crate::store::environments::Environment;
use crate::store::flags::{self, Flag, FlagConfig, configs};
use crate::store::projects::Project;
use crate::store::{Record as _, Store, scopes};

/// Most flags one bulk request may change.
const MAX_BULK: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "checkout errors spiking", "environment_id": "0190e0a4-0000-7000-8000-000000000004"}))]
pub(crate) struct KillSwitch {
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub(crate) reason: String,
    pub(crate) environment_id: Option<String>,
}

/// Disables the flag at once in one environment or in all of them. Every configuration
/// that was enabled gets a new version and revision (comment: the reason); one audit entry
/// `flag.kill_switch` records them all. Editors may stop a flag everywhere, protected
/// environments included.
pub(crate) async fn kill_switch(
    store: &Store,
    by: &By,
    id: &str,
    input: KillSwitch,
) -> Result<Value> {
    let n = input.reason.chars().count();
    // Control characters (NUL above all, which PostgreSQL text refuses) have no place here.
    let control = input
        .reason
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if input.reason.trim().is_empty() || n > MAX_COMMENT || control {
        return Err(Error::invalid_field(
            "reason",
            format!("must be 1 to {MAX_COMMENT} characters, without control characters"),
        ));
    }
    let mut tx = store.write().await?;
    let flag: Flag = load(tx.conn(), id).await?;
    let env_id = input.environment_id.as_deref();
    if let Some(env_id) = env_id {
        environments::in_project(tx.conn(), &flag.project_id, env_id).await?;
    }
    // Stopping a flag is the safe direction: an editor of the project may stop it in
    // protected environments too (the route's policy asks for editor), and it is never
    // held for approval, audited as usual.
    let targets = configs_in(tx.conn(), &flag, env_id).await?;
    let change = by.because(Some(&input.reason)).unheld();
    let (mut items, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for c in targets {
        match set_enabled_in(tx.conn(), &flag, &c, false, change, None).await? {
            Some(changed) => {
                before.push(c);
                after.push(changed.clone());
                items.push(changed);
            }
            None => items.push(c),
        }
    }
    // Nothing was on: nothing changed, and nothing is recorded (as for any no-op).
    if !after.is_empty() {
        change
            .record(
                tx.conn(),
                Action::FlagKillSwitch,
                id,
                Some(&before),
                Some(&after),
            )
            .await?;
    }
    tx.commit().await?;
    Ok(json!({
        "flag_id": flag.id, "flag_key": flag.key, "changed": after.len(), "items": items,
    }))
}

/// The flag's configuration in one environment, or in every one (`None`).
async fn configs_in(conn: &mut Conn, flag: &Flag, env_id: Option<&str>) -> Result<Vec<FlagConfig>> {
    Ok(match env_id {
        Some(env_id) => configs::get(conn, &flag.id, env_id)
            .await?
            .into_iter()
            .collect(),
        None => configs::of_flag(conn, &flag.id).await?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BulkAction {
    Enable,
    Disable,
    Archive,
    Restore,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "enable", "flag_ids": ["0190e0a4-0000-7000-8000-000000000005"],
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "comment": "launch"}))]
#[schema(as = FlagBulkAction)]
pub(crate) struct Bulk {
    pub(crate) action: BulkAction,
    #[schema(min_items = 1, max_items = 500)]
    pub(crate) flag_ids: Vec<String>,
    /// Required to enable; disabling without it disables in every environment.
    pub(crate) environment_id: Option<String>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// Applies one action to many flags in one transaction: an unknown id or any item that
/// cannot be changed fails the whole request, and nothing is changed.
pub(crate) async fn bulk(
    store: &Store,
    principal: &Principal,
    by: &By,
    project_id: &str,
    input: Bulk,
) -> Result<Value> {
    check_bulk(&input)?;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    let env = match &input.environment_id {
        Some(env_id) => Some(environments::in_project(tx.conn(), project_id, env_id).await?),
        None => None,
    };
    let batch = load_batch(tx.conn(), project_id, &input.flag_ids).await?;
    // What a protected environment serves changes when a flag is enabled there, or when
    // a flag enabled there is disabled, archived or restored: that needs admin.
    let ids = &input.flag_ids;
    let protected = match (input.action, &env) {
        (BulkAction::Enable, Some(env)) => env.protected,
        (BulkAction::Disable, Some(env)) => {
            scopes::any_enabled_in_protected(tx.conn(), ids, Some(&env.id)).await?
        }
        _ => scopes::any_enabled_in_protected(tx.conn(), ids, None).await?,
    };
    let need = to_change_environment(protected);
    require_in_scope(tx.conn(), principal, &by.meta, need).await?;
    let change = by.because(input.comment.as_deref());
    let (updated, items) = match input.action {
        BulkAction::Enable => set_enabled(tx.conn(), &batch, env.as_ref(), true, change).await?,
        BulkAction::Disable => set_enabled(tx.conn(), &batch, env.as_ref(), false, change).await?,
        BulkAction::Archive => set_archived(tx.conn(), batch, change, true).await?,
        BulkAction::Restore => set_archived(tx.conn(), batch, change, false).await?,
    };
    tx.commit().await?;
    Ok(json!({"updated": updated, "items": items}))
}

fn check_bulk(input: &Bulk) -> Result<()> {
    check_comment(input.comment.as_deref())?;
    if input.flag_ids.is_empty() || input.flag_ids.len() > MAX_BULK {
        return Err(Error::invalid_field(
            "flag_ids",
            format!("must list 1 to {MAX_BULK} flag ids"),
        ));
    }
    match (input.action, &input.environment_id) {
        (BulkAction::Enable, None) => Err(Error::invalid_field(
            "environment_id",
            "is required to enable flags",
        )),
        (BulkAction::Archive | BulkAction::Restore, Some(_)) => Err(Error::invalid_field(
            "environment_id",
            "applies to enable and disable only",
        )),
        _ => Ok(()),
    }
}

/// The listed flags (each once, with its index in `flag_ids`); invalid input naming every
/// id that is not a flag of the project.
async fn load_batch(
    conn: &mut Conn,
    project_id: &str,
    ids: &[String],
) -> Result<Vec<(usize, Flag)>> {
    let (mut seen, mut batch, mut problems) = (HashSet::new(), Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            continue;
        }
        // No id has control characters (and PostgreSQL text refuses NUL): not a flag.
        let found = match id.chars().any(char::is_control) {
            true => None,
            false => flags::get(conn, id).await?,
        };
        match found {
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
    conn: &mut Conn,
    batch: &[(usize, Flag)],
    env: Option<&Environment>,
    enabled: bool,
    change: Change<'_>,
) -> Result<(usize, Vec<Value>)> {
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
    let action = Some(Action::FlagConfigUpdate);
    let (mut updated, mut items) = (0, Vec::new());
    for (_, flag) in batch {
        for c in configs_in(conn, flag, env.map(|e| e.id.as_str())).await? {
            match set_enabled_in(conn, flag, &c, enabled, change, action).await? {
                Some(changed) => {
                    updated += 1;
                    items.push(json!(changed));
                }
                None => items.push(json!(c)),
            }
        }
    }
    Ok((updated, items))
}

/// Archives or restores the batch; archiving fails (409) on any flag that is still a
/// prerequisite of an active flag outside the batch.
async fn set_archived(
    conn: &mut Conn,
    batch: Vec<(usize, Flag)>,
    change: Change<'_>,
    archived: bool,
) -> Result<(usize, Vec<Value>)> {
    let together = batch.iter().map(|(_, f)| f.id.clone()).collect();
    let (mut updated, mut items) = (0, Vec::new());
    for (_, flag) in batch {
        let version = flag.version;
        let after = archive_in(conn, flag, archived, &together, change).await?;
        if after.version != version {
            updated += 1;
        }
        items.push(json!(after));
    }
    Ok((updated, items))
}

/// Archives (`archived`) or restores one flag.
pub(crate) async fn archive(
    store: &Store,
    by: &By,
    id: &str,
    expected: Option<i64>,
    archived: bool,
    comment: Option<&str>,
) -> Result<Flag> {
    check_comment(comment)?;
    let mut tx = store.write().await?;
    let flag: Flag = load_at(tx.conn(), id, expected).await?;
    let flag = archive_in(
        tx.conn(),
        flag,
        archived,
        &HashSet::new(),
        by.because(comment),
    )
    .await?;
    tx.commit().await?;
    Ok(flag)
}

/// Sets `archived` (a no-op when already so), with a new flag version, new ruleset
/// versions and an audit entry. `together`: ids of flags archived in the same request,
/// whose prerequisites on each other do not block.
pub(crate) async fn archive_in(
    conn: &mut Conn,
    flag: Flag,
    archived: bool,
    together: &HashSet<String>,
    change: Change<'_>,
) -> Result<Flag> {
    if flag.archived == archived {
        return Ok(flag);
    }
    if archived {
        check_referrers(conn, &flag, together).await?;
        crate::manage::release::refuse_archiving(conn, &flag).await?;
    }
    let after = Flag {
        archived,
        ..flag.next_version()
    };
    let action = if archived {
        Action::FlagArchive
    } else {
        Action::FlagRestore
    };
    save_in(conn, &flag, &after, change, action).await?;
    Ok(after)
}

/// 409 while a non-archived flag (not archived together with it) has `flag` as a
/// prerequisite in some environment.
async fn check_referrers(conn: &mut Conn, flag: &Flag, together: &HashSet<String>) -> Result<()> {
    let referrers: Vec<_> = flags::referrers(conn, &flag.project_id, &flag.key)
        .await?
        .into_iter()
        .filter(|r| !r.archived && !together.contains(&r.flag_id))
        .collect();
    if referrers.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(
        format!("flag '{}' is a prerequisite of active flags", flag.key),
        json!({"flag": flag.key, "referrers": referrers}),
    ))
}
