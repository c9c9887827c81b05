//! Flags: list with filters, create (with a configuration in every environment of the
//! project), update the definition, delete. Definition checks are in [`definition`];
//! archive, restore, the kill switch and bulk actions in [`actions`].

pub(crate) mod actions;
mod definition;

use serde::Deserialize;
use serde_json::json;
use vexil_core::{FlagType, Variation};

use super::access::require_admin_for;
use super::fields::{Patch, check_comment, check_description, check_name};
use super::insights::{WithLifecycle, with_lifecycles};
use super::{
    At, By, Change, Error, Result, environments, load, load_at, remove, unchanged, update_in,
};
use crate::access::Principal;
use crate::audit::Action;
use crate::insights::Settings;
use crate::store::flags::{self, Config, Flag, FlagConfig, FlagFilter, FlagSort, configs};
use crate::store::projects::Project;
use crate::store::{Conn, Store, WriteTx, environments as env_store, scopes};
pub(crate) use definition::new_flag;
use definition::{apply_flag_patch, check_configs_still_valid, check_tags};

/// The filters, order and window of a flag listing (`GET …/feature-flags?…`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListFlags {
    pub(crate) q: Option<String>,
    pub(crate) tag: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<FlagType>,
    pub(crate) archived: Option<bool>,
    pub(crate) environment_id: Option<String>,
    pub(crate) enabled: Option<bool>,
    pub(crate) sort: Option<String>,
    /// Only stale flags (`true`) or only flags that are not stale (`false`).
    pub(crate) stale: Option<bool>,
    #[serde(default = "super::fields::default_limit")]
    pub(crate) limit: i64,
    #[serde(default)]
    pub(crate) offset: i64,
}

/// A page of the project's flags matching the filters (limit and offset checked by the
/// caller).
pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    q: ListFlags,
    settings: &Settings,
) -> Result<(Vec<WithLifecycle>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    let (limit, offset, stale) = (q.limit, q.offset, q.stale);
    let filter = list_filter(&mut conn, project_id, q).await?;
    let Some(stale) = stale else {
        let (page, total) = flags::list(&mut conn, project_id, &filter, limit, offset).await?;
        let page = with_lifecycles(&mut conn, project_id, page, settings).await?;
        return Ok((page, total));
    };
    // Staleness is computed, not stored: filter the whole matching list, then cut the page.
    let (all, _) = flags::list(&mut conn, project_id, &filter, i64::MAX, 0).await?;
    let matching: Vec<WithLifecycle> = with_lifecycles(&mut conn, project_id, all, settings)
        .await?
        .into_iter()
        .filter(|f| f.lifecycle.stale == stale)
        .collect();
    let total = matching.len() as i64;
    let page = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    Ok((page, total))
}

/// A flag with its lifecycle (`GET /feature-flags/{id}`).
pub(crate) async fn get_with_lifecycle(
    store: &Store,
    id: &str,
    settings: &Settings,
) -> Result<WithLifecycle> {
    let mut conn = store.read().await?;
    let flag: Flag = load(&mut conn, id).await?;
    let project_id = flag.project_id.clone();
    let mut one = with_lifecycles(&mut conn, &project_id, vec![flag], settings).await?;
    one.pop()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a flag went missing")))
}

async fn list_filter(conn: &mut Conn, project_id: &str, q: ListFlags) -> Result<FlagFilter> {
    let sort = match q.sort.as_deref() {
        None => FlagSort::Key,
        Some(s) => FlagSort::parse(s).ok_or_else(|| {
            Error::invalid_field(
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
            return Err(Error::invalid_field(
                field,
                "must not contain control characters",
            ));
        }
    }
    if let Some(env_id) = &q.environment_id {
        environments::in_project(conn, project_id, env_id).await?;
    }
    let enabled_in = match (q.environment_id, q.enabled) {
        (Some(env), Some(enabled)) => Some((env, enabled)),
        (None, Some(_)) => {
            return Err(Error::invalid_field("enabled", "requires environment_id"));
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "checkout-theme", "name": "Checkout theme", "type": "string",
    "variations": [{"key": "light", "value": "light"}, {"key": "dark", "value": "dark"}],
    "tags": ["checkout"], "client_side": true, "temporary": false, "comment": "for the redesign"}))]
pub(crate) struct NewFlag {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    pub(crate) key: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub(crate) description: String,
    /// Default `boolean`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::schemas::FlagType>)]
    pub(crate) kind: Option<FlagType>,
    /// Default for booleans: `on` (true) and `off` (false); required for other types.
    #[schema(value_type = Option<Vec<crate::schemas::Variation>>)]
    pub(crate) variations: Option<Vec<Variation>>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) client_side: bool,
    #[serde(default)]
    pub(crate) temporary: bool,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
    /// The key of a flag template of the project: the flag takes its type, variations,
    /// tags, `temporary`, `client_side` and description (unless given here), and starts
    /// with its configuration in each environment it names.
    #[serde(default)]
    pub(crate) template: Option<String>,
}

pub(crate) async fn create(
    store: &Store,
    principal: &Principal,
    by: &By,
    project_id: &str,
    mut input: NewFlag,
) -> Result<Flag> {
    let comment = input.comment.clone();
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    let template = match input.template.is_some() {
        true => Some(super::templates::apply_to(tx.conn(), project_id, &mut input).await?),
        false => None,
    };
    let flag = prepare(project_id, input)?;
    let change = by.because(comment.as_deref());
    create_in(tx.conn(), &flag, change).await?;
    if let Some(template) = &template {
        super::templates::configure_in(tx.conn(), principal, change, &flag, template).await?;
    }
    tx.commit().await?;
    Ok(flag)
}

/// A new flag of the project from `input`, checked (not stored).
pub(crate) fn prepare(project_id: &str, input: NewFlag) -> Result<Flag> {
    let flag = new_flag(
        project_id.to_owned(),
        input.key,
        input.kind,
        input.variations,
    )?;
    let name = input.name.unwrap_or_else(|| flag.key.clone());
    check_name("name", &name)?;
    check_description("description", &input.description)?;
    check_comment(input.comment.as_deref())?;
    Ok(Flag {
        name,
        description: input.description,
        tags: check_tags(input.tags)?,
        client_side: input.client_side,
        temporary: input.temporary,
        ..flag
    })
}

/// Creates `flag` (409 if its key is taken) with its initial configuration and revision 1
/// in every environment of its project; bumps their ruleset versions; audits.
pub(crate) async fn create_in(conn: &mut Conn, flag: &Flag, change: Change<'_>) -> Result<()> {
    if flags::get_by_key(conn, &flag.project_id, &flag.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("flag '{}' already exists", flag.key),
            json!({"key": flag.key}),
        ));
    }
    flags::insert(conn, flag).await?;
    for env in env_store::list_all(conn, &flag.project_id).await? {
        let config = FlagConfig {
            flag_id: flag.id.clone(),
            flag_key: flag.key.clone(),
            environment_id: env.id,
            environment_key: env.key,
            config: Config::initial(flag.kind, &flag.variations),
            version: 1,
            updated_at: flag.created_at.clone(),
        };
        configs::insert(conn, &config, &change.by.actor, None).await?;
    }
    bump_rulesets(conn, flag).await?;
    change
        .record(conn, Action::FlagCreate, &flag.id, None, Some(flag))
        .await
}

/// A new ruleset version for every environment of the flag's project, naming the flag.
pub(crate) async fn bump_rulesets(conn: &mut Conn, flag: &Flag) -> Result<()> {
    let changed = env_store::RulesetChange::Flag(&flag.key);
    env_store::bump_project_rulesets(conn, &flag.project_id, changed).await?;
    Ok(())
}

/// Applies a merge patch to the flag's definition; new variations must keep every
/// environment's configuration and every prerequisite on the flag valid.
pub(crate) async fn update(
    store: &Store,
    principal: &Principal,
    by: &By,
    at: At<'_>,
    patch: &Patch,
) -> Result<Flag> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let before: Flag = load_at(tx.conn(), id, expected).await?;
    let change = by.because(patch.comment.as_deref());
    let after = update_def_in(tx.conn(), principal, change, &before, patch).await?;
    tx.commit().await?;
    Ok(after)
}

/// [`update`] inside the caller's transaction: `before` with `patch` applied, checked
/// (admin where a changed value is served in a protected environment; every
/// configuration still valid) and saved; `before` itself when nothing changes.
pub(crate) async fn update_def_in(
    conn: &mut Conn,
    principal: &Principal,
    change: Change<'_>,
    before: &Flag,
    patch: &Patch,
) -> Result<Flag> {
    let after = apply_flag_patch(patch, before)?;
    if unchanged(before, &after) {
        return Ok(before.clone());
    }
    // A variation whose value changes changes what is served wherever the flag is on.
    let revalued = before.variations.iter().any(|old| {
        after
            .variations
            .iter()
            .any(|new| new.key == old.key && new.value != old.value)
    });
    let protected = match revalued {
        true => scopes::protected_enabled_environments(conn, &before.id).await?,
        false => Vec::new(),
    };
    let what = (!protected.is_empty()).then(|| {
        format!(
            "flag '{}' is on in protected environment(s) {} and this changes a variation's value",
            before.key,
            protected.join(", ")
        )
    });
    require_admin_for(conn, principal, &change.by.meta, what).await?;
    if after.variations != before.variations {
        check_configs_still_valid(conn, &after).await?;
    }
    save_in(conn, before, &after, change, Action::FlagUpdate).await?;
    Ok(after)
}

/// Stores a new version of a flag's record, audited; snapshots see it when what they
/// serve changes (variations, `client_side`, `archived`).
pub(crate) async fn save_in(
    conn: &mut Conn,
    before: &Flag,
    after: &Flag,
    change: Change<'_>,
    action: Action,
) -> Result<()> {
    update_in(conn, change, before, after, action).await?;
    if after.variations != before.variations
        || after.client_side != before.client_side
        || after.archived != before.archived
    {
        bump_rulesets(conn, after).await?;
    }
    Ok(())
}

/// Deletes a flag that no other flag has as a prerequisite.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    remove(store, by, at, Action::FlagDelete, unless_a_prerequisite).await
}

/// Refuses while another flag has this one as a prerequisite; else every environment sees
/// the flag go.
pub(crate) async fn unless_a_prerequisite(tx: &mut WriteTx<'_>, flag: &Flag) -> Result<()> {
    let referrers = flags::referrers(tx.conn(), &flag.project_id, &flag.key).await?;
    if !referrers.is_empty() {
        return Err(Error::conflict(
            format!("flag '{}' is a prerequisite of other flags", flag.key),
            json!({ "referrers": referrers }),
        ));
    }
    bump_rulesets(tx.conn(), flag).await
}
