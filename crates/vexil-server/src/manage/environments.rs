//! Environments of a project: list, create (every flag of the project gets its initial
//! configuration there), update, delete (its configurations and revisions go with it).

use serde::Deserialize;
use serde_json::{Value, json};

use super::fields::{Patch, check_comment, check_description, check_name, check_new};
use super::{At, By, Error, Result, edit, load, remove};
use crate::audit::Action;
use crate::store::environments::{self, Environment};
use crate::store::projects::Project;
use crate::store::{Conn, Record as _, Store, WriteTx, flags, new_id, now_rfc3339};

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Environment>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    Ok(environments::list(&mut conn, project_id, limit, offset).await?)
}

/// `env_id` (given in a field `environment_id`) as an environment of the project, or
/// invalid input at that field.
pub(crate) async fn in_project(
    conn: &mut Conn,
    project_id: &str,
    env_id: &str,
) -> Result<Environment> {
    // An id with control characters names nothing (and PostgreSQL text refuses NUL).
    let found = match env_id.chars().any(char::is_control) {
        true => None,
        false => environments::get(conn, env_id).await?,
    };
    found.filter(|e| e.project_id == project_id).ok_or_else(|| {
        Error::invalid_field(
            "environment_id",
            format!("environment '{env_id}' not found in this project"),
        )
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "staging", "name": "Staging", "is_production": false, "protected": false}))]
pub(crate) struct NewEnvironment {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    pub(crate) key: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) is_production: bool,
    /// Defaults to `is_production`.
    pub(crate) protected: Option<bool>,
    /// Configuration changes are then proposed as change requests that another member
    /// approves.
    #[serde(default)]
    pub(crate) requires_approval: bool,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

pub(crate) async fn create(
    store: &Store,
    by: &By,
    project_id: &str,
    input: NewEnvironment,
) -> Result<Environment> {
    let name = check_new(&input.key, input.name)?;
    check_description("description", &input.description)?;
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    if environments::get_by_key(tx.conn(), project_id, &input.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("environment '{}' already exists", input.key),
            json!({"key": input.key}),
        ));
    }
    let now = now_rfc3339();
    let env = Environment {
        id: new_id(),
        project_id: project_id.to_owned(),
        key: input.key,
        name,
        description: input.description,
        is_production: input.is_production,
        protected: input.protected.unwrap_or(input.is_production),
        requires_approval: input.requires_approval,
        ruleset_version: 1,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    // Every existing flag of the project gets its initial configuration (and revision 1).
    let change = by.because(input.comment.as_deref());
    environments::insert(tx.conn(), &env).await?;
    flags::configs::create_for_environment(tx.conn(), &env, &by.actor).await?;
    change
        .created(tx.conn(), Action::EnvironmentCreate, &env.id, &env)
        .await?;
    tx.commit().await?;
    Ok(env)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentChanges {
    name: String,
    description: String,
    is_production: bool,
    protected: bool,
    requires_approval: bool,
}

pub(crate) async fn update(
    store: &Store,
    by: &By,
    at: At<'_>,
    patch: &Patch,
) -> Result<Environment> {
    if patch.changes.get("requires_approval") == Some(&Value::Bool(true)) {
        super::release::refuse_approval_with_plans(store, at.0).await?;
    }
    let change = by.because(patch.comment.as_deref());
    edit(
        store,
        change,
        at,
        Action::EnvironmentUpdate,
        |before: &Environment| {
            let changes: EnvironmentChanges = patch.apply(
                json!({"name": before.name, "description": before.description,
                   "is_production": before.is_production, "protected": before.protected,
                   "requires_approval": before.requires_approval}),
                &["key", "project_id", "id"],
                &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
            )?;
            check_name("name", &changes.name)?;
            check_description("description", &changes.description)?;
            Ok(Environment {
                name: changes.name,
                description: changes.description,
                is_production: changes.is_production,
                protected: changes.protected,
                requires_approval: changes.requires_approval,
                ..before.next_version()
            })
        },
    )
    .await
}

/// Deletes an environment. Its flag configurations and revisions go with it (ON DELETE
/// CASCADE), and so do its API keys; the audit entry keeps what was deleted.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    remove(store, by, at, Action::EnvironmentDelete, keys_go_too).await
}

/// The environment's API keys go with it: the key ring reloads.
async fn keys_go_too(tx: &mut WriteTx<'_>, _: &Environment) -> Result<()> {
    tx.keys_changed();
    Ok(())
}
