//! API key queries. Keys are stored as SHA-256 hashes with a visible prefix.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::StoreResult;

/// An API key record as stored and shown (never with the secret or its hash).
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000007", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "name": "web", "type": "client",
    "prefix": "vx_client_8fK2", "created_at": "2026-01-31T12:00:00.000Z",
    "created_by": "0190e0a4-0000-7000-8000-000000000002", "expires_at": null, "revoked_at": null,
    "last_used_at": null}))]
pub(crate) struct ApiKey {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) environment_id: String,
    pub(crate) name: String,
    /// `server`, `client` or `mobile`.
    #[serde(rename = "type")]
    #[schema(example = "server")]
    pub(crate) kind: String,
    pub(crate) prefix: String,
    pub(crate) created_at: String,
    pub(crate) created_by: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) last_used_at: Option<String>,
}

const COLUMNS: &str = "id, project_id, environment_id, name, kind, prefix, created_at, created_by, expires_at, revoked_at, last_used_at";

pub(crate) async fn insert(
    conn: &mut AnyConnection,
    k: &ApiKey,
    key_hash: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, project_id, environment_id, name, kind, key_hash, prefix, created_at, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&k.id)
    .bind(&k.project_id)
    .bind(&k.environment_id)
    .bind(&k.name)
    .bind(&k.kind)
    .bind(key_hash)
    .bind(&k.prefix)
    .bind(&k.created_at)
    .bind(&k.created_by)
    .bind(&k.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    crate::store::fetch_opt(conn, sql, &[id]).await
}

pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<ApiKey>, i64)> {
    let query = (
        COLUMNS,
        "FROM api_keys WHERE project_id = $1",
        "created_at DESC, id",
    );
    super::fetch_page(conn, query, &[project_id.to_owned()], limit, offset).await
}

pub(crate) async fn revoke(conn: &mut AnyConnection, id: &str, at: &str) -> StoreResult<()> {
    super::execute(
        conn,
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        &[at, id],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    super::execute(conn, "DELETE FROM api_keys WHERE id = $1", &[id]).await?;
    Ok(())
}

/// Every key that is not revoked, with its hash, for the in-memory key ring.
pub(crate) async fn active(conn: &mut AnyConnection) -> StoreResult<Vec<(String, ApiKey)>> {
    let sql = format!("SELECT key_hash, {COLUMNS} FROM api_keys WHERE revoked_at IS NULL");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        use sqlx::Row;
        let hash: String = row.try_get("key_hash")?;
        out.push((hash, ApiKey::from_row(&row)?));
    }
    Ok(out)
}

/// Records when keys were last used (batched by the key ring, off the request path).
pub(crate) async fn touch(conn: &mut AnyConnection, ids: &[String], at: &str) -> StoreResult<()> {
    for id in ids {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
