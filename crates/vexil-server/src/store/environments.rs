//! Environment queries.

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::{DbBool, StoreResult};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000004", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "key": "production", "name": "Production", "description": "", "is_production": true, "protected": true, "requires_approval": false,
    "ruleset_version": 12, "version": 1, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-01-31T12:00:00.000Z"}))]
pub(crate) struct Environment {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    #[sqlx(try_from = "DbBool")]
    pub(crate) is_production: bool,
    /// Protected environments need elevated rights to change (roles arrive with users).
    #[sqlx(try_from = "DbBool")]
    pub(crate) protected: bool,
    /// Configuration changes here are proposed as change requests and applied once another
    /// member approves them (the kill switch excepted).
    #[sqlx(try_from = "DbBool")]
    pub(crate) requires_approval: bool,
    /// Bumped by every change of the environment's ruleset (flags, configs, segments).
    pub(crate) ruleset_version: i64,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str = "id, project_id, key, name, description, is_production, protected, requires_approval, ruleset_version, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, e: &Environment) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO environments (id, project_id, key, name, description, is_production, protected, \
         requires_approval, ruleset_version, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&e.id)
    .bind(&e.project_id)
    .bind(&e.key)
    .bind(&e.name)
    .bind(&e.description)
    .bind(i64::from(e.is_production))
    .bind(i64::from(e.protected))
    .bind(i64::from(e.requires_approval))
    .bind(e.ruleset_version)
    .bind(e.version)
    .bind(&e.created_at)
    .bind(&e.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Environment>> {
    let sql = format!("SELECT {COLUMNS} FROM environments WHERE id = $1");
    crate::store::fetch_opt(conn, sql, &[id]).await
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Option<Environment>> {
    let sql = format!("SELECT {COLUMNS} FROM environments WHERE project_id = $1 AND key = $2");
    crate::store::fetch_opt(conn, sql, &[project_id, key]).await
}

/// Every environment of a project, ordered by key.
pub(crate) async fn list_all(
    conn: &mut AnyConnection,
    project_id: &str,
) -> StoreResult<Vec<Environment>> {
    let sql = format!("SELECT {COLUMNS} FROM environments WHERE project_id = $1 ORDER BY key");
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_all(conn)
        .await?)
}

pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Environment>, i64)> {
    let query = (COLUMNS, "FROM environments WHERE project_id = $1", "key");
    super::fetch_page(conn, query, &[project_id.to_owned()], limit, offset).await
}

pub(crate) async fn update(conn: &mut AnyConnection, e: &Environment) -> StoreResult<()> {
    sqlx::query(
        "UPDATE environments SET name = $1, description = $2, is_production = $3, protected = $4, \
         requires_approval = $5, version = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&e.name)
    .bind(&e.description)
    .bind(i64::from(e.is_production))
    .bind(i64::from(e.protected))
    .bind(i64::from(e.requires_approval))
    .bind(e.version)
    .bind(&e.updated_at)
    .bind(&e.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What changed in a ruleset: one flag or one segment, by key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RulesetChange<'a> {
    Flag(&'a str),
    Segment(&'a str),
}

impl RulesetChange<'_> {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            RulesetChange::Flag(k) => ("flag", k),
            RulesetChange::Segment(k) => ("segment", k),
        }
    }
}

/// Bumps the ruleset version of one environment and records what changed, so that
/// snapshots (and streams) can follow the change log instead of reloading everything.
pub(crate) async fn bump_ruleset(
    conn: &mut AnyConnection,
    environment_id: &str,
    change: RulesetChange<'_>,
) -> StoreResult<()> {
    bump_where(conn, Scope::Environment, environment_id, change).await
}

/// Bumps the ruleset version of every environment of a project (after a flag definition or
/// segment change, which all environments see) and records the change in each.
pub(crate) async fn bump_project_rulesets(
    conn: &mut AnyConnection,
    project_id: &str,
    change: RulesetChange<'_>,
) -> StoreResult<()> {
    bump_where(conn, Scope::Project, project_id, change).await
}

/// Which environments a bump is for: one, or a project's.
#[derive(Clone, Copy)]
enum Scope {
    Environment,
    Project,
}

async fn bump_where(
    conn: &mut AnyConnection,
    scope: Scope,
    id: &str,
    change: RulesetChange<'_>,
) -> StoreResult<()> {
    let (bump, log) = match scope {
        Scope::Environment => (
            "UPDATE environments SET ruleset_version = ruleset_version + 1 WHERE id = $1",
            "INSERT INTO ruleset_changes (environment_id, version, kind, key, at) \
             SELECT id, ruleset_version, $2, $3, $4 FROM environments WHERE id = $1",
        ),
        Scope::Project => (
            "UPDATE environments SET ruleset_version = ruleset_version + 1 WHERE project_id = $1",
            "INSERT INTO ruleset_changes (environment_id, version, kind, key, at) \
             SELECT id, ruleset_version, $2, $3, $4 FROM environments WHERE project_id = $1",
        ),
    };
    super::execute(conn, bump, &[id]).await?;
    let (kind, key) = change.parts();
    super::execute(conn, log, &[id, kind, key, &super::now_rfc3339()]).await?;
    Ok(())
}

/// One row of the change log: at `version` of its environment's ruleset, the flag or
/// segment `key` changed.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct LoggedChange {
    pub(crate) version: i64,
    /// `flag` or `segment`.
    pub(crate) kind: String,
    pub(crate) key: String,
}

/// Changes recorded for an environment after `after_version`, oldest first.
pub(crate) async fn changes_since(
    conn: &mut AnyConnection,
    environment_id: &str,
    after_version: i64,
) -> StoreResult<Vec<LoggedChange>> {
    Ok(sqlx::query_as(
        "SELECT version, kind, key FROM ruleset_changes WHERE environment_id = $1 AND version > $2 ORDER BY version",
    )
    .bind(environment_id)
    .bind(after_version)
    .fetch_all(conn)
    .await?)
}

/// `(id, project_id, ruleset_version)` of every environment.
pub(crate) async fn ruleset_versions(
    conn: &mut AnyConnection,
) -> StoreResult<Vec<(String, String, i64)>> {
    Ok(
        sqlx::query_as("SELECT id, project_id, ruleset_version FROM environments")
            .fetch_all(conn)
            .await?,
    )
}
