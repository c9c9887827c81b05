//! Environments of a project: list, create (every flag of the project gets its initial
//! configuration there), update, delete (its configurations and revisions go with it).

use crate::store::Conn;
use serde::Deserialize;
use serde_json::json;

use super::fields::{Patch, check_comment, check_description, check_key, check_name};
use super::{By, Change, Error, Result, check_version, found, projects};
use crate::audit::Action;
use crate::store::environments::{self, Environment};
use crate::store::{Store, flags, new_id, now_rfc3339};

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Environment>, i64)> {
    let mut conn = store.read().await?;
    projects::get_in(&mut conn, project_id).await?;
    Ok(environments::list(&mut conn, project_id, limit, offset).await?)
}

pub(crate) async fn get(store: &Store, id: &str) -> Result<Environment> {
    let mut conn = store.read().await?;
    get_in(&mut conn, id).await
}

/// The environment, or `NotFound`.
pub(crate) async fn get_in(conn: &mut Conn, id: &str) -> Result<Environment> {
    found(environments::get(conn, id).await?, "environment", id)
}

/// `env_id` (given in a field `environment_id`) as an environment of the project, or
/// invalid input at that field.
pub(crate) async fn in_project(
    conn: &mut Conn,
    project_id: &str,
    env_id: &str,
) -> Result<Environment> {
    environments::get(conn, env_id)
        .await?
        .filter(|e| e.project_id == project_id)
        .ok_or_else(|| {
            Error::invalid_field(
                "environment_id",
                format!("environment '{env_id}' not found in this project"),
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEnvironment {
    pub(crate) key: String,
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) is_production: bool,
    /// Defaults to `is_production`.
    pub(crate) protected: Option<bool>,
    pub(crate) comment: Option<String>,
}

/// An environment record at version 1.
pub(crate) fn new_environment(
    project_id: &str,
    key: String,
    name: String,
    description: String,
    is_production: bool,
    protected: bool,
    now: &str,
) -> Environment {
    Environment {
        id: new_id(),
        project_id: project_id.to_owned(),
        key,
        name,
        description,
        is_production,
        protected,
        ruleset_version: 1,
        version: 1,
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    }
}

pub(crate) async fn create(
    store: &Store,
    by: &By,
    project_id: &str,
    input: NewEnvironment,
) -> Result<Environment> {
    check_key("key", &input.key)?;
    let name = input.name.unwrap_or_else(|| input.key.clone());
    check_name("name", &name)?;
    check_description("description", &input.description)?;
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    projects::get_in(tx.conn(), project_id).await?;
    if environments::get_by_key(tx.conn(), project_id, &input.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("environment '{}' already exists", input.key),
            json!({"key": input.key}),
        ));
    }
    let env = new_environment(
        project_id,
        input.key,
        name,
        input.description,
        input.is_production,
        input.protected.unwrap_or(input.is_production),
        &now_rfc3339(),
    );
    // Every existing flag of the project gets its initial configuration (and revision 1).
    let change = by.because(input.comment.as_deref());
    environments::insert(tx.conn(), &env).await?;
    flags::configs::create_for_environment(tx.conn(), &env, &by.actor).await?;
    change
        .record(
            tx.conn(),
            Action::EnvironmentCreate,
            &env.id,
            None,
            Some(&env),
        )
        .await?;
    tx.commit().await?;
    Ok(env)
}

/// Inserts an environment of a new project (which has no flags yet), audited.
pub(crate) async fn insert_in(
    conn: &mut Conn,
    env: &Environment,
    change: Change<'_>,
) -> Result<()> {
    environments::insert(conn, env).await?;
    change
        .record(conn, Action::EnvironmentCreate, &env.id, None, Some(env))
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentChanges {
    name: String,
    description: String,
    is_production: bool,
    protected: bool,
}

pub(crate) async fn update(
    store: &Store,
    by: &By,
    id: &str,
    expected: Option<i64>,
    patch: &Patch,
) -> Result<Environment> {
    let mut tx = store.write().await?;
    let before = get_in(tx.conn(), id).await?;
    check_version(expected, before.version)?;
    let changes: EnvironmentChanges = patch.apply(
        json!({"name": before.name, "description": before.description,
               "is_production": before.is_production, "protected": before.protected}),
        &["key", "project_id", "id"],
        &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
    )?;
    check_name("name", &changes.name)?;
    check_description("description", &changes.description)?;
    let after = Environment {
        name: changes.name,
        description: changes.description,
        is_production: changes.is_production,
        protected: changes.protected,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    environments::update(tx.conn(), &after).await?;
    let change = by.because(patch.comment.as_deref());
    change
        .record(
            tx.conn(),
            Action::EnvironmentUpdate,
            id,
            Some(&before),
            Some(&after),
        )
        .await?;
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn delete(store: &Store, by: &By, id: &str, expected: Option<i64>) -> Result<()> {
    let mut tx = store.write().await?;
    let env = get_in(tx.conn(), id).await?;
    check_version(expected, env.version)?;
    delete_in(tx.conn(), &env, by.because(None)).await?;
    // The environment's API keys go with it.
    tx.keys_changed();
    tx.commit().await?;
    Ok(())
}

/// Deletes an environment, audited. Its flag configurations and revisions go with it
/// (ON DELETE CASCADE); the audit entry keeps what was deleted.
pub(crate) async fn delete_in(
    conn: &mut Conn,
    env: &Environment,
    change: Change<'_>,
) -> Result<()> {
    environments::delete(conn, &env.id).await?;
    change
        .record(conn, Action::EnvironmentDelete, &env.id, Some(env), None)
        .await
}
