//! What makes a flag definition valid: key, variations (checked by the core, with paths
//! such as `variations[1].value`), tags; and, when variations change, that every
//! environment's configuration and every prerequisite on the flag still resolve.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};
use vexil_core::{
    FlagDef, FlagType, Ruleset, Snapshot, ValidationError, ValidationErrors, Variation,
};

use crate::manage::fields::{Patch, check_description, check_key, check_name};
use crate::manage::flag_configs::{new_problems, relative_to_flag};
use crate::manage::{Error, Result};
use crate::store::Conn;
use crate::store::flags::{Config, Flag, configs};
use crate::store::{Record as _, new_id, now_rfc3339};

/// At most this many tags per flag, each 1 to `MAX_TAG` characters.
const MAX_TAGS: usize = 50;
const MAX_TAG: usize = 50;

/// A new flag with checked key and definition (boolean by default, with `on`/`off`).
pub(crate) fn new_flag(
    project_id: String,
    key: String,
    kind: Option<FlagType>,
    variations: Option<Vec<Variation>>,
) -> Result<Flag> {
    check_key("key", &key)?;
    let kind = kind.unwrap_or(FlagType::Boolean);
    let variations = match (variations, kind) {
        (Some(v), _) => v,
        (None, FlagType::Boolean) => vec![variation("on", true), variation("off", false)],
        (None, other) => {
            return Err(Error::invalid_field(
                "variations",
                format!(
                    "at least one variation is required for a {} flag",
                    other.as_str()
                ),
            ));
        }
    };
    check_definition(&key, kind, &variations)?;
    let now = now_rfc3339();
    Ok(Flag {
        id: new_id(),
        project_id,
        name: key.clone(),
        key,
        description: String::new(),
        kind,
        variations,
        tags: Vec::new(),
        client_side: false,
        temporary: false,
        archived: false,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    })
}

fn variation(key: &str, value: bool) -> Variation {
    Variation {
        key: key.into(),
        value: Value::Bool(value),
        name: None,
        description: None,
    }
}

/// Validates variations through the core (paths such as `variations[1].value`), with the
/// initial configuration so that only the variations themselves can be at fault.
fn check_definition(key: &str, kind: FlagType, variations: &[Variation]) -> Result<()> {
    for (i, v) in variations.iter().enumerate() {
        if let Some(name) = &v.name {
            check_name(&format!("variations[{i}].name"), name)?;
        }
        if let Some(description) = &v.description {
            check_description(&format!("variations[{i}].description"), description)?;
        }
    }
    let initial = Config::initial(kind, variations);
    let def = FlagDef {
        kind,
        variations: variations.to_vec(),
        enabled: false,
        off_variation: initial.off_variation,
        fallthrough: initial.fallthrough,
        targets: Vec::new(),
        rules: Vec::new(),
        prerequisites: Vec::new(),
        client_side: false,
        version: 1,
        archived: false,
    };
    let mut ruleset = Ruleset::default();
    ruleset.flags.insert(key.to_owned(), def);
    let Err(errors) = Snapshot::validate(&ruleset) else {
        return Ok(());
    };
    let errors = relative_to_flag(errors.0, key);
    // With broken variations, the initial off/fallthrough may not resolve either: noise.
    let (own, rest): (Vec<ValidationError>, Vec<ValidationError>) = errors
        .0
        .into_iter()
        .partition(|e| e.path.starts_with("variations"));
    Err(ValidationErrors(if own.is_empty() { rest } else { own }).into())
}

/// At most 50 tags of 1 to 50 characters each; duplicates are dropped.
pub(super) fn check_tags(tags: Vec<String>) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid_field(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for (i, tag) in tags.into_iter().enumerate() {
        let n = tag.chars().count();
        if n == 0 || n > MAX_TAG || tag.trim().is_empty() || tag.chars().any(char::is_control) {
            return Err(Error::invalid_field(
                &format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG} characters, without control characters"),
            ));
        }
        if seen.insert(tag.clone()) {
            out.push(tag);
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagChanges {
    name: String,
    description: String,
    variations: Vec<Variation>,
    tags: Vec<String>,
    client_side: bool,
    temporary: bool,
}

const IMMUTABLE: [&str; 8] = [
    "id",
    "project_id",
    "key",
    "type",
    "archived",
    "version",
    "created_at",
    "updated_at",
];

pub(super) fn apply_flag_patch(patch: &Patch, before: &Flag) -> Result<Flag> {
    let current = json!(before);
    let editable = json!({"name": before.name, "description": before.description,
        "variations": before.variations, "tags": before.tags,
        "client_side": before.client_side, "temporary": before.temporary});
    let changes: FlagChanges = patch.apply(editable, &IMMUTABLE, &current)?;
    check_name("name", &changes.name)?;
    check_description("description", &changes.description)?;
    check_definition(&before.key, before.kind, &changes.variations)?;
    Ok(Flag {
        name: changes.name,
        description: changes.description,
        variations: changes.variations,
        tags: check_tags(changes.tags)?,
        client_side: changes.client_side,
        temporary: changes.temporary,
        ..before.next_version()
    })
}

/// With new variations, every environment's configuration of the flag, and every other
/// flag's prerequisites on it, must still resolve. Problems are reported per environment:
/// `environments.production.off_variation`, `environments.production.flags.b.prerequisites[0]…`.
pub(super) async fn check_configs_still_valid(conn: &mut Conn, flag: &Flag) -> Result<()> {
    crate::manage::release::refuse_dropping_variations(conn, flag).await?;
    let mut problems = Vec::new();
    for c in configs::of_flag(conn, &flag.id).await? {
        let def = c.config.to_def(flag, c.version);
        let found = new_problems(conn, &c.environment_id, &flag.key, def, true).await?;
        let env_prefix = format!("environments.{}", c.environment_key);
        for mut e in relative_to_flag(found, &flag.key).0 {
            e.path = if e.path.is_empty() {
                env_prefix.clone()
            } else {
                format!("{env_prefix}.{}", e.path)
            };
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(problems).into())
    }
}
