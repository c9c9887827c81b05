//! Flag templates: a project's predefined flag shapes — type, variations, tags,
//! `temporary`, `client_side`, and a starting configuration per environment — kept by its
//! editors, and the flags made from one (`POST …/feature-flags {"template": KEY, …}`): the
//! flag is created as any flag is, then each environment the template names gets its
//! starting configuration through the usual configuration change, in the same
//! transaction. A template whose configuration would change a protected environment needs
//! an admin to be used there, and one for an environment that requires approval is
//! refused there (`approval_required`): changes there go through change requests.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use vexil_core::{FlagType, Variation};

use super::access::require_admin_for;
use super::fields::{Patch, check_comment, check_description, check_key, check_name};
use super::flag_configs::{commit_in, new_problems, relative_to_flag};
use super::flags::{self as flag_ops, NewFlag};
use super::{At, By, Change, Error, Result, load, load_at, unchanged, update_in};
use crate::access::Principal;
use crate::audit::Action;
use crate::store::flags::Flag;
use crate::store::flags::configs::{self, Config};
use crate::store::projects::Project;
use crate::store::templates::{self as rows, Template, TemplateDef};
use crate::store::{Conn, Record as _, Store, environments, new_id, now_rfc3339};

/// A new template.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "release-toggle", "name": "Release toggle", "type": "boolean",
    "tags": ["release"], "temporary": true,
    "environments": {"development": {"enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}}},
    "comment": "how we ship"}))]
pub(crate) struct NewTemplate {
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
    /// Default for booleans: `on` and `off`; required for other types.
    #[schema(value_type = Option<Vec<crate::schemas::Variation>>)]
    pub(crate) variations: Option<Vec<Variation>>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) client_side: bool,
    #[serde(default)]
    pub(crate) temporary: bool,
    /// Environment key → the configuration a flag made from the template starts with there.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) environments: BTreeMap<String, Config>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// Checks a template's shape through the flag a template makes (key, type, variations,
/// tags), and each starting configuration against its environment's ruleset (variations,
/// segments and prerequisites it names must exist there).
async fn checked(conn: &mut Conn, project_id: &str, t: &Template) -> Result<()> {
    // Under a key no flag has, so that a flag with the template's key stays in the check.
    let probe = Flag {
        key: format!("{}.template", t.key.chars().take(90).collect::<String>()),
        ..probe_flag(project_id, t)?
    };
    let envs = environments::list_all(conn, project_id).await?;
    let mut fields = Map::new();
    for (key, config) in &t.def.environments {
        let Some(env) = envs.iter().find(|e| &e.key == key) else {
            fields.insert(
                format!("environments.{key}"),
                json!(format!("no environment '{key}' in this project")),
            );
            continue;
        };
        let def = config.to_def(&probe, 1);
        let problems = new_problems(conn, &env.id, &probe.key, def, false).await?;
        for e in relative_to_flag(problems, &probe.key).0 {
            let path = if e.path.is_empty() {
                format!("environments.{key}")
            } else {
                format!("environments.{key}.{}", e.path)
            };
            fields.insert(path, Value::String(e.message));
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_fields(fields))
    }
}

/// The flag a template makes (with the template's key), checked.
fn probe_flag(project_id: &str, t: &Template) -> Result<Flag> {
    flag_ops::prepare(
        project_id,
        NewFlag {
            key: t.key.clone(),
            name: Some(t.name.clone()),
            description: t.description.clone(),
            kind: Some(t.def.kind),
            variations: Some(t.def.variations.clone()),
            tags: t.def.tags.clone(),
            client_side: t.def.client_side,
            temporary: t.def.temporary,
            comment: None,
            template: None,
        },
    )
}

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Template>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    Ok(rows::list(&mut conn, project_id, limit, offset).await?)
}

pub(crate) async fn create(
    store: &Store,
    by: &By,
    project_id: &str,
    input: NewTemplate,
) -> Result<Template> {
    check_key("key", &input.key)?;
    check_comment(input.comment.as_deref())?;
    // The flag's own rules give the defaults (boolean on/off) and check the shape.
    let shape = flag_ops::prepare(
        project_id,
        NewFlag {
            key: input.key.clone(),
            name: input.name.clone(),
            description: input.description.clone(),
            kind: input.kind,
            variations: input.variations,
            tags: input.tags,
            client_side: input.client_side,
            temporary: input.temporary,
            comment: None,
            template: None,
        },
    )?;
    let now = now_rfc3339();
    let template = Template {
        id: new_id(),
        project_id: project_id.to_owned(),
        key: shape.key,
        name: shape.name,
        description: shape.description,
        def: TemplateDef {
            kind: shape.kind,
            variations: shape.variations,
            tags: shape.tags,
            client_side: shape.client_side,
            temporary: shape.temporary,
            environments: input.environments,
        },
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    checked(tx.conn(), project_id, &template).await?;
    if rows::get_by_key(tx.conn(), project_id, &template.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("template '{}' already exists", template.key),
            json!({"key": template.key}),
        ));
    }
    rows::insert(tx.conn(), &template).await?;
    by.because(input.comment.as_deref())
        .created(
            tx.conn(),
            Action::FlagTemplateCreate,
            &template.id,
            &template,
        )
        .await?;
    tx.commit().await?;
    Ok(template)
}

/// The editable fields after a merge patch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Editable {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "type")]
    kind: FlagType,
    variations: Vec<Variation>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    client_side: bool,
    #[serde(default)]
    temporary: bool,
    #[serde(default)]
    environments: BTreeMap<String, Config>,
}

/// Changes a template (a merge patch; its key and project stay). Flags already made from
/// it are not changed.
pub(crate) async fn update(store: &Store, by: &By, at: At<'_>, patch: &Patch) -> Result<Template> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let before: Template = load_at(tx.conn(), id, expected).await?;
    let d = &before.def;
    let changes: Editable = patch.apply(
        json!({"name": before.name, "description": before.description, "type": d.kind,
            "variations": d.variations, "tags": d.tags, "client_side": d.client_side,
            "temporary": d.temporary, "environments": d.environments}),
        &["key", "project_id", "id"],
        &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
    )?;
    check_name("name", &changes.name)?;
    check_description("description", &changes.description)?;
    let after = Template {
        name: changes.name,
        description: changes.description,
        def: TemplateDef {
            kind: changes.kind,
            variations: changes.variations,
            tags: changes.tags,
            client_side: changes.client_side,
            temporary: changes.temporary,
            environments: changes.environments,
        },
        ..before.next_version()
    };
    if unchanged(&before, &after) {
        return Ok(before);
    }
    checked(tx.conn(), &before.project_id, &after).await?;
    // Tags as a flag keeps them (trimmed of duplicates).
    let after = Template {
        def: TemplateDef {
            tags: probe_flag(&before.project_id, &after)?.tags,
            ..after.def
        },
        ..after
    };
    let change = by.because(patch.comment.as_deref());
    update_in(
        tx.conn(),
        change,
        &before,
        &after,
        Action::FlagTemplateUpdate,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    super::remove(
        store,
        by,
        at,
        Action::FlagTemplateDelete,
        async |_, _: &Template| Ok(()),
    )
    .await
}

/// What a flag made from template `key` is: the template's shape under the new flag's key,
/// with what the request gives itself (name, description, tags…) winning.
pub(crate) async fn apply_to(
    conn: &mut Conn,
    project_id: &str,
    input: &mut NewFlag,
) -> Result<Template> {
    let key = input.template.clone().unwrap_or_default();
    let template = rows::get_by_key(conn, project_id, &key)
        .await?
        .ok_or_else(|| {
            Error::invalid_field("template", format!("no template '{key}' in this project"))
        })?;
    let d = &template.def;
    if input.kind.is_some_and(|k| k != d.kind) {
        return Err(Error::invalid_field(
            "type",
            format!("template '{key}' makes {} flags", d.kind.as_str()),
        ));
    }
    input.kind = Some(d.kind);
    if input.variations.is_none() {
        input.variations = Some(d.variations.clone());
    }
    if input.tags.is_empty() {
        input.tags = d.tags.clone();
    }
    if input.description.is_empty() {
        input.description = template.description.clone();
    }
    input.client_side |= d.client_side;
    input.temporary |= d.temporary;
    Ok(template)
}

/// Gives a new flag its template's starting configuration in each environment the template
/// names, as configuration changes of the flag's creation.
pub(crate) async fn configure_in(
    conn: &mut Conn,
    principal: &Principal,
    change: Change<'_>,
    flag: &Flag,
    template: &Template,
) -> Result<()> {
    let envs = environments::list_all(conn, &flag.project_id).await?;
    for (key, config) in &template.def.environments {
        // An environment removed since the template was made: nothing to start there.
        let Some(env) = envs.iter().find(|e| &e.key == key) else {
            continue;
        };
        let before = configs::get(conn, &flag.id, &env.id)
            .await?
            .ok_or_else(|| Error::not_found("flag configuration", &flag.key))?;
        if *config == before.config {
            continue;
        }
        if env.protected {
            let what = format!(
                "template '{}' configures flag '{}' in protected environment '{key}'",
                template.key, flag.key
            );
            require_admin_for(conn, principal, &change.by.meta, Some(what)).await?;
        }
        commit_in(
            conn,
            flag,
            &before,
            config.clone(),
            change,
            Some(Action::FlagConfigUpdate),
        )
        .await
        .map_err(|e| match e {
            Error::Invalid { fields, .. } => Error::invalid_fields(
                fields
                    .into_iter()
                    .map(|(k, v)| (format!("template.environments.{key}.{k}"), v))
                    .collect(),
            ),
            other => other,
        })?;
    }
    Ok(())
}
