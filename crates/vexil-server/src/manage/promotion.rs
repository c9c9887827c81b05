//! Environment promotion: copies flag configurations from one environment of a project to
//! another (every flag, or the ones named), all or nothing in one write transaction. Each
//! copied configuration goes through [`flag_configs::commit_in`] like any change —
//! validated against the target's ruleset, a new version and revision, an audit entry
//! whose comment names the source — and one that is already equal changes nothing.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::check_comment;
use super::flag_configs::{commit_in, refuse_unapproved};
use super::{By, Error, Result, found};
use crate::audit::Action;
use crate::store::flags::{self, FlagConfig, configs};
use crate::store::{Store, environments};

/// Most flags one copy may name.
const MAX_FLAGS: usize = 1000;

/// What to copy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from_environment_id": "0190e0a4-0000-7000-8000-000000000003",
    "flag_ids": ["0190e0a4-0000-7000-8000-000000000005"], "comment": "promote the checkout from staging"}))]
pub(crate) struct CopyInput {
    /// The environment (of the same project) whose configurations are copied.
    pub(crate) from_environment_id: String,
    /// Only these flags (at most 1000); every flag that is not archived when absent.
    #[schema(max_items = 1000)]
    pub(crate) flag_ids: Option<Vec<String>>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// What a copy did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"changed": [{"flag_id": "0190e0a4-0000-7000-8000-000000000005", "flag_key": "new-checkout",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "environment_key": "production",
    "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}, "targets": [], "rules": [],
    "prerequisites": [], "watch_events": [], "version": 4, "updated_at": "2026-12-04T10:00:00.000Z"}],
    "unchanged": ["banner"]}))]
pub(crate) struct Copied {
    /// The configurations that changed, as they now are (a new version each).
    pub(crate) changed: Vec<FlagConfig>,
    /// Keys of the flags whose configuration was already the source's.
    pub(crate) unchanged: Vec<String>,
}

/// Copies the configurations of `input.from_environment_id` into `env_id` (both of
/// `project_id`).
pub(crate) async fn copy(
    store: &Store,
    by: &By,
    (project_id, env_id): (&str, &str),
    input: CopyInput,
) -> Result<Copied> {
    check_comment(input.comment.as_deref())?;
    if let Some(ids) = &input.flag_ids {
        if ids.len() > MAX_FLAGS {
            return Err(Error::invalid_field(
                "flag_ids",
                format!("at most {MAX_FLAGS} flags"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !seen.insert(id) {
                return Err(Error::invalid_field(
                    &format!("flag_ids[{i}]"),
                    "is listed twice",
                ));
            }
        }
    }
    let mut tx = store.write().await?;
    let target = found(
        environments::get(tx.conn(), env_id).await?,
        "environment",
        env_id,
    )?;
    if target.project_id != project_id {
        return Err(Error::not_found("environment", env_id));
    }
    let source = environments::get(tx.conn(), &input.from_environment_id)
        .await?
        .filter(|e| e.project_id == project_id)
        .ok_or_else(|| {
            Error::invalid_field(
                "from_environment_id",
                "is not an environment of this project",
            )
        })?;
    if source.id == target.id {
        return Err(Error::invalid_field(
            "from_environment_id",
            "is the environment being copied into",
        ));
    }
    // A copy changes what the target serves like any change: held where it needs approval.
    refuse_unapproved(tx.conn(), &target.id).await?;
    let sources = configs::of_environment(tx.conn(), &source.id).await?;
    let chosen: Vec<&FlagConfig> = match &input.flag_ids {
        Some(ids) => {
            let mut chosen = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let config = sources.iter().find(|c| &c.flag_id == id).ok_or_else(|| {
                    Error::invalid_field(
                        &format!("flag_ids[{i}]"),
                        format!("'{id}' is not a flag of this project"),
                    )
                })?;
                chosen.push(config);
            }
            chosen
        }
        None => sources.iter().collect(),
    };
    let text = match input.comment.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => format!("copied from {}: {c}", source.key),
        None => format!("copied from {}", source.key),
    };
    let text: String = text.chars().take(1000).collect();
    let mut copied = Copied {
        changed: Vec::new(),
        unchanged: Vec::new(),
    };
    for from in chosen {
        let flag = found(
            flags::get(tx.conn(), &from.flag_id).await?,
            "flag",
            &from.flag_id,
        )?;
        // Archived flags are copied only when named.
        if flag.archived && input.flag_ids.is_none() {
            continue;
        }
        let before = found(
            configs::get(tx.conn(), &flag.id, &target.id).await?,
            "environment",
            &target.id,
        )?;
        let change = by.because(Some(&text));
        let after = commit_in(
            tx.conn(),
            &flag,
            &before,
            from.config.clone(),
            change,
            Some(Action::FlagConfigUpdate),
        )
        .await
        .map_err(|e| under_flag(e, &flag.key))?;
        if after.version == before.version {
            copied.unchanged.push(flag.key.clone());
        } else {
            copied.changed.push(after);
        }
    }
    tx.commit().await?;
    Ok(copied)
}

/// A flag's problem, said of that flag: field paths under `flags.<key>.`, messages naming
/// it.
fn under_flag(e: Error, key: &str) -> Error {
    match e {
        Error::Invalid { message, fields } => {
            let fields: Map<String, Value> = fields
                .into_iter()
                .map(|(path, problem)| (format!("flags.{key}.{path}"), problem))
                .collect();
            Error::Invalid {
                message: format!("flag '{key}': {message}"),
                fields,
            }
        }
        Error::Conflict { message, details } => Error::Conflict {
            message: format!("flag '{key}': {message}"),
            details,
        },
        Error::Refused {
            code,
            message,
            details,
        } => Error::Refused {
            code,
            message: format!("flag '{key}': {message}"),
            details,
        },
        other => other,
    }
}
