//! Flag configurations, one per flag and environment: read, update (merge patch), toggle,
//! revisions and restore. [`commit_in`] is the one path by which a configuration changes:
//! rule ids assigned, validated against the environment's whole ruleset, stored as a new
//! version with a revision and a new ruleset version, and audited.

use serde_json::{Value, json};
use vexil_core::{FlagDef, Snapshot, ValidationError, ValidationErrors};

use super::fields::{Patch, assign_rule_ids, check_comment};
use super::{By, Change, Error, Result, check_version, found};
use crate::audit::Action;
use crate::store::Conn;
use crate::store::flags::{self, Config, Flag, FlagConfig, Revision, configs};
use crate::store::{Store, environments, now_rfc3339};

pub(crate) async fn list(
    store: &Store,
    env_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FlagConfig>, i64)> {
    let mut conn = store.read().await?;
    found(
        environments::get(&mut conn, env_id).await?,
        "environment",
        env_id,
    )?;
    Ok(configs::list(&mut conn, env_id, limit, offset).await?)
}

/// Whether each of these flags is on in each environment: `(flag_id, environment_id,
/// enabled)`.
pub(crate) async fn switches(
    store: &Store,
    flag_ids: &[String],
) -> Result<Vec<(String, String, bool)>> {
    let mut conn = store.read().await?;
    Ok(configs::switches_of(&mut conn, flag_ids).await?)
}

pub(crate) async fn get(store: &Store, flag_id: &str, env_id: &str) -> Result<FlagConfig> {
    let mut conn = store.read().await?;
    Ok(load(&mut conn, flag_id, env_id).await?.1)
}

/// The flag and its configuration in an environment of the same project (else 404).
pub(crate) async fn load(
    conn: &mut Conn,
    flag_id: &str,
    env_id: &str,
) -> Result<(Flag, FlagConfig)> {
    let flag = found(flags::get(conn, flag_id).await?, "flag", flag_id)?;
    // A configuration exists exactly for the environments of the flag's project.
    let config = found(
        configs::get(conn, flag_id, env_id).await?,
        "environment",
        env_id,
    )?;
    Ok((flag, config))
}

const IMMUTABLE: [&str; 6] = [
    "flag_id",
    "flag_key",
    "environment_id",
    "environment_key",
    "version",
    "updated_at",
];

/// Applies a merge patch to the configuration.
pub(crate) async fn update(
    store: &Store,
    by: &By,
    (flag_id, env_id): (&str, &str),
    expected: Option<i64>,
    patch: &Patch,
) -> Result<FlagConfig> {
    let mut tx = store.write().await?;
    let (flag, before) = load(tx.conn(), flag_id, env_id).await?;
    check_version(expected, before.version)?;
    let config = patched(&before, patch)?;
    let change = by.because(patch.comment.as_deref());
    let action = Some(Action::FlagConfigUpdate);
    let after = commit_in(tx.conn(), &flag, &before, config, change, action).await?;
    tx.commit().await?;
    Ok(after)
}

/// The configuration `patch` makes of `before` (not yet validated against the ruleset).
pub(crate) fn patched(before: &FlagConfig, patch: &Patch) -> Result<Config> {
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
    patch.apply(
        current,
        &IMMUTABLE,
        &json!({"flag_id": before.flag_id, "flag_key": before.flag_key,
                "environment_id": before.environment_id, "environment_key": before.environment_key,
                "version": before.version, "updated_at": before.updated_at}),
    )
}

/// Turns the configuration on or off (`None`: flips it).
pub(crate) async fn toggle(
    store: &Store,
    by: &By,
    (flag_id, env_id): (&str, &str),
    expected: Option<i64>,
    enabled: Option<bool>,
    comment: Option<&str>,
) -> Result<FlagConfig> {
    check_comment(comment)?;
    let mut tx = store.write().await?;
    let (flag, before) = load(tx.conn(), flag_id, env_id).await?;
    check_version(expected, before.version)?;
    let config = Config {
        enabled: enabled.unwrap_or(!before.config.enabled),
        ..before.config.clone()
    };
    let change = by.because(comment);
    let action = Some(Action::FlagConfigUpdate);
    let after = commit_in(tx.conn(), &flag, &before, config, change, action).await?;
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn revisions(
    store: &Store,
    (flag_id, env_id): (&str, &str),
    limit: i64,
    offset: i64,
) -> Result<(Vec<Revision>, i64)> {
    let mut conn = store.read().await?;
    load(&mut conn, flag_id, env_id).await?;
    Ok(configs::revisions(&mut conn, flag_id, env_id, limit, offset).await?)
}

/// Restores an old revision as a new version (history is kept). The precondition is on
/// the current configuration, which the restore replaces.
pub(crate) async fn restore(
    store: &Store,
    by: &By,
    (flag_id, env_id): (&str, &str),
    version: &str,
    expected: Option<i64>,
    comment: Option<String>,
) -> Result<FlagConfig> {
    check_comment(comment.as_deref())?;
    let mut tx = store.write().await?;
    let (flag, before) = load(tx.conn(), flag_id, env_id).await?;
    check_version(expected, before.version)?;
    let revision = match version.parse::<i64>() {
        Ok(v) => configs::revision(tx.conn(), flag_id, env_id, v).await?,
        Err(_) => None,
    };
    let revision = found(revision, "revision", version)?;
    let comment = comment.unwrap_or_else(|| format!("restored version {}", revision.version));
    let change = by.because(Some(&comment));
    let action = Some(Action::FlagConfigRestore);
    let after = commit_in(tx.conn(), &flag, &before, revision.config, change, action).await?;
    tx.commit().await?;
    Ok(after)
}

/// Stores `config` as the next version of `before`: rule ids assigned, validated against
/// the environment's ruleset (paths relative to the configuration), then saved with a
/// revision, a new ruleset version and (unless `action` is `None`, when the caller records
/// one entry for several configurations) an audit entry.
pub(crate) async fn commit_in(
    conn: &mut Conn,
    flag: &Flag,
    before: &FlagConfig,
    mut config: Config,
    change: Change<'_>,
    action: Option<Action>,
) -> Result<FlagConfig> {
    if !change.unheld {
        refuse_unapproved(conn, &before.environment_id).await?;
    }
    if !change.release {
        super::release::refuse_owned(conn, before, &config).await?;
    }
    assign_rule_ids(&mut config.rules, &before.config.rules, || {
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    });
    // Nothing to change (a toggle to the state it is in, a patch that repeats the current
    // values): no new version, revision or audit entry; the answer is the current state.
    if config == before.config {
        return Ok(before.clone());
    }
    check_in(conn, flag, before, &config).await?;
    let after = FlagConfig {
        config,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    configs::save(conn, &after, &change.by.actor, change.comment).await?;
    if let Some(action) = action {
        // Filed under the flag, so that one filter shows a flag's whole history; the
        // environment is in `before`/`after`.
        change
            .record(conn, action, &after.flag_id, Some(before), Some(&after))
            .await?;
    }
    Ok(after)
}

/// Whether `config` may replace `before`: the problems it would add to the environment's
/// ruleset, with paths relative to the configuration.
pub(crate) async fn check_in(
    conn: &mut Conn,
    flag: &Flag,
    before: &FlagConfig,
    config: &Config,
) -> Result<()> {
    if flag.archived && config.enabled && !before.config.enabled {
        return Err(Error::conflict(
            format!(
                "flag '{}' is archived; restore it before enabling it",
                flag.key
            ),
            json!({"archived": true}),
        ));
    }
    check_watch_events(&config.watch_events)?;
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
    Ok(())
}

/// Most tracked event keys one configuration may watch.
pub(crate) const MAX_WATCH_EVENTS: usize = 20;

/// Watched event keys are keys, distinct, and few.
fn check_watch_events(events: &[String]) -> Result<()> {
    if events.len() > MAX_WATCH_EVENTS {
        return Err(Error::invalid_field(
            "watch_events",
            format!("at most {MAX_WATCH_EVENTS} event keys"),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        if !vexil_core::is_valid_key(event) {
            return Err(Error::invalid_field(
                &format!("watch_events[{i}]"),
                "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
            ));
        }
        if events[..i].contains(event) {
            return Err(Error::invalid_field(
                &format!("watch_events[{i}]"),
                format!("'{event}' is listed twice"),
            ));
        }
    }
    Ok(())
}

/// `approval_required` when the environment holds configuration changes for approval.
pub(crate) async fn refuse_unapproved(conn: &mut Conn, env_id: &str) -> Result<()> {
    let env = found(
        environments::get(conn, env_id).await?,
        "environment",
        env_id,
    )?;
    if env.requires_approval {
        return Err(Error::Refused {
            code: "approval_required",
            message: format!(
                "environment '{}' requires approval: propose this change as a change request \
                 (POST …/change-requests) and have another member approve it",
                env.key
            ),
            details: json!({"environment_id": env.id}),
        });
    }
    Ok(())
}

/// Sets `enabled` on a configuration, a no-op when it already is: `Some(after)` when it
/// changed.
pub(crate) async fn set_enabled_in(
    conn: &mut Conn,
    flag: &Flag,
    before: &FlagConfig,
    enabled: bool,
    change: Change<'_>,
    action: Option<Action>,
) -> Result<Option<FlagConfig>> {
    if before.config.enabled == enabled {
        return Ok(None);
    }
    let config = Config {
        enabled,
        ..before.config.clone()
    };
    commit_in(conn, flag, before, config, change, action)
        .await
        .map(Some)
}

/// The problems that putting `def` in as flag `key` would add to the environment's
/// ruleset, with their ruleset paths (`flags.<key>.rules[0]…`, or another flag's path for
/// a prerequisite cycle closed elsewhere). Problems already there are not this change's.
pub(crate) async fn new_problems(
    conn: &mut Conn,
    env_id: &str,
    key: &str,
    def: FlagDef,
    with_referrers: bool,
) -> Result<Vec<ValidationError>> {
    let env = found(
        environments::get(conn, env_id).await?,
        "environment",
        env_id,
    )?;
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
    let sent = ruleset.flags.get(key);
    Ok(errors
        .0
        .into_iter()
        .filter(|e| !existing.0.contains(e))
        .map(|e| match sent {
            Some(def) => cycle_at_flag(e, key, def),
            None => e,
        })
        .collect())
}

/// A prerequisite cycle through `key` is reported at `key`'s own prerequisite that enters
/// it — the field that was sent — rather than where the search happened to close it
/// (another flag's prerequisite).
fn cycle_at_flag(mut e: ValidationError, key: &str, def: &FlagDef) -> ValidationError {
    let Some(cycle) = e.message.strip_prefix("prerequisite cycle: ") else {
        return e;
    };
    if e.path.starts_with(&format!("flags.{key}.")) {
        return e;
    }
    let nodes: Vec<&str> = cycle.split(" → ").collect();
    let next = nodes.windows(2).find(|w| w[0] == key).map(|w| w[1]);
    if let Some(i) = next.and_then(|n| def.prerequisites.iter().position(|p| p.flag == n)) {
        e.path = format!("flags.{key}.prerequisites[{i}].flag");
    }
    e
}

/// Strips the `flags.<key>.` prefix, so that paths read relative to the flag's
/// configuration (`rules[0].clauses[0].values[1]`).
pub(crate) fn relative_to_flag(errors: Vec<ValidationError>, key: &str) -> ValidationErrors {
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
