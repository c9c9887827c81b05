//! Organization queries.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::StoreResult;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000001", "key": "acme", "name": "Acme",
    "version": 1, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-01-31T12:00:00.000Z"}))]
pub(crate) struct Organization {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str = "id, key, name, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, o: &Organization) -> StoreResult<()> {
    sqlx::query("INSERT INTO organizations (id, key, name, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&o.id)
        .bind(&o.key)
        .bind(&o.name)
        .bind(o.version)
        .bind(&o.created_at)
        .bind(&o.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Organization>> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id = $1");
    super::fetch_opt(conn, sql, &[id]).await
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> StoreResult<Option<Organization>> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE key = $1");
    super::fetch_opt(conn, sql, &[key]).await
}

/// Organizations among `ids` (`None`: all), key order.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    ids: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Organization>, i64)> {
    let from = format!("FROM organizations {}", super::restrict_to("id", ids));
    let params = ids.unwrap_or_default();
    super::fetch_page(conn, (COLUMNS, &from, "key"), params, limit, offset).await
}

pub(crate) async fn update(conn: &mut AnyConnection, o: &Organization) -> StoreResult<()> {
    sqlx::query("UPDATE organizations SET name = $1, version = $2, updated_at = $3 WHERE id = $4")
        .bind(&o.name)
        .bind(o.version)
        .bind(&o.updated_at)
        .bind(&o.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
        .fetch_one(conn)
        .await?)
}
