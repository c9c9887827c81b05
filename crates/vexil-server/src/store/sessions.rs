//! Browser sessions: the cookie's secret is stored as a SHA-256 hash.

use sqlx::{AnyConnection, FromRow};

use super::StoreResult;

#[derive(Debug, Clone, FromRow)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) created_at: String,
    pub(crate) last_seen_at: String,
    pub(crate) expires_at: String,
}

pub(crate) async fn insert(
    conn: &mut AnyConnection,
    s: &Session,
    token_hash: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(token_hash)
    .bind(&s.user_id)
    .bind(&s.created_at)
    .bind(&s.last_seen_at)
    .bind(&s.expires_at)
    .bind(ip)
    .bind(user_agent)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn find_by_hash(
    conn: &mut AnyConnection,
    hash: &str,
) -> StoreResult<Option<Session>> {
    let sql = "SELECT id, user_id, created_at, last_seen_at, expires_at FROM sessions WHERE token_hash = $1";
    super::fetch_opt(conn, sql.to_owned(), &[hash]).await
}

pub(crate) async fn touch(conn: &mut AnyConnection, id: &str, now: &str) -> StoreResult<()> {
    super::execute(
        conn,
        "UPDATE sessions SET last_seen_at = $1 WHERE id = $2",
        &[now, id],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    super::execute(conn, "DELETE FROM sessions WHERE id = $1", &[id]).await?;
    Ok(())
}

/// Ends every session of a user (password change or reset).
pub(crate) async fn delete_for_user(conn: &mut AnyConnection, user_id: &str) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Removes sessions past their absolute end or idle for longer than `idle_before` allows.
pub(crate) async fn delete_expired(
    conn: &mut AnyConnection,
    now: &str,
    idle_before: &str,
) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
