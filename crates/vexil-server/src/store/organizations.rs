//! Organization queries.

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::StoreResult;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Organization {
    pub id: String,
    pub key: String,
    pub name: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, key, name, version, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, o: &Organization) -> StoreResult<()> {
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

pub async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Organization>> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn get_by_key(conn: &mut AnyConnection, key: &str) -> StoreResult<Option<Organization>> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE key = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

pub async fn list(
    conn: &mut AnyConnection,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Organization>, i64)> {
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
        .fetch_one(&mut *conn)
        .await?;
    let sql = format!("SELECT {COLUMNS} FROM organizations ORDER BY key LIMIT $1 OFFSET $2");
    let items = sqlx::query_as(AssertSqlSafe(sql))
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?;
    Ok((items, total))
}

pub async fn update(conn: &mut AnyConnection, o: &Organization) -> StoreResult<()> {
    sqlx::query("UPDATE organizations SET name = $1, version = $2, updated_at = $3 WHERE id = $4")
        .bind(&o.name)
        .bind(o.version)
        .bind(&o.updated_at)
        .bind(&o.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
        .fetch_one(conn)
        .await?)
}
