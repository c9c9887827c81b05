//! Management API tokens (stored as SHA-256 hashes with a visible prefix).

use sqlx::{AnyConnection, FromRow};

use super::{StoreResult, new_id, now_rfc3339};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// Creates the token unless one with this hash exists (idempotent across restarts).
pub async fn ensure(
    conn: &mut AnyConnection,
    name: &str,
    hash: &str,
    prefix: &str,
    role: &str,
) -> StoreResult<bool> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_some() {
        return Ok(false);
    }
    sqlx::query("INSERT INTO api_tokens (id, name, token_hash, prefix, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(new_id())
        .bind(name)
        .bind(hash)
        .bind(prefix)
        .bind(role)
        .bind(now_rfc3339())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

pub async fn find_by_hash(conn: &mut AnyConnection, hash: &str) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as("SELECT id, name, prefix, role, created_at, last_used_at FROM api_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_optional(conn)
        .await?)
}

pub async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(conn)
        .await?)
}
