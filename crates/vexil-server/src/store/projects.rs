//! Project queries.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::StoreResult;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000003", "organization_id": "0190e0a4-0000-7000-8000-000000000001",
    "key": "web", "name": "Web shop", "description": "", "version": 1,
    "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-01-31T12:00:00.000Z"}))]
pub(crate) struct Project {
    pub(crate) id: String,
    pub(crate) organization_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str =
    "id, organization_id, key, name, description, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, p: &Project) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO projects (id, organization_id, key, name, description, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&p.id)
    .bind(&p.organization_id)
    .bind(&p.key)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.version)
    .bind(&p.created_at)
    .bind(&p.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
    super::fetch_opt(conn, sql, &[id]).await
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    organization_id: &str,
    key: &str,
) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE organization_id = $1 AND key = $2");
    super::fetch_opt(conn, sql, &[organization_id, key]).await
}

/// Projects in `organizations` (`None`: all), key order.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    organizations: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Project>, i64)> {
    let from = format!(
        "FROM projects {}",
        super::restrict_to("organization_id", organizations)
    );
    let params = organizations.unwrap_or_default();
    super::fetch_page(conn, (COLUMNS, &from, "key, id"), params, limit, offset).await
}

pub(crate) async fn update(conn: &mut AnyConnection, p: &Project) -> StoreResult<()> {
    sqlx::query("UPDATE projects SET name = $1, description = $2, version = $3, updated_at = $4 WHERE id = $5")
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.version)
        .bind(&p.updated_at)
        .bind(&p.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Number of projects in an organization (an organization with projects cannot be deleted).
pub(crate) async fn count_in_organization(
    conn: &mut AnyConnection,
    organization_id: &str,
) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_one(conn)
            .await?,
    )
}

/// `(flags, segments)` in a project: a project holding either cannot be deleted.
pub(crate) async fn count_contents(
    conn: &mut AnyConnection,
    project_id: &str,
) -> StoreResult<(i64, i64)> {
    let flags = sqlx::query_scalar("SELECT COUNT(*) FROM flags WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?;
    let segments = sqlx::query_scalar("SELECT COUNT(*) FROM segments WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(conn)
        .await?;
    Ok((flags, segments))
}
