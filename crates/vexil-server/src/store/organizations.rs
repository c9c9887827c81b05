//! Organization queries.

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

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
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> StoreResult<Option<Organization>> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE key = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

/// Organizations among `ids` (`None`: all), key order.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    ids: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Organization>, i64)> {
    let filter = super::restrict_to("id", ids);
    let ids = ids.unwrap_or_default();
    let count_sql = format!("SELECT COUNT(*) FROM organizations {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql));
    for id in ids {
        count = count.bind(id);
    }
    let total = count.fetch_one(&mut *conn).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM organizations {filter} ORDER BY key LIMIT ${} OFFSET ${}",
        ids.len() + 1,
        ids.len() + 2
    );
    let mut query = sqlx::query_as::<_, Organization>(AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let items = query.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    Ok((items, total))
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
