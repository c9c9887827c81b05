//! Management API tokens, stored as SHA-256 hashes with a visible prefix: the instance token
//! (`VEXIL_BOOTSTRAP_TOKEN` or the first start's), personal access tokens (act as their
//! user, capped at their role) and service tokens (one organization, one role).

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::{StoreResult, new_id, now_rfc3339};
use crate::access::{Role, TokenKind};

/// A token record as stored and shown (never with the secret or its hash).
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000008", "name": "ci", "kind": "service",
    "prefix": "vx_pat_3kQ9", "role": "editor", "user_id": null,
    "organization_id": "0190e0a4-0000-7000-8000-000000000001", "created_at": "2026-01-31T12:00:00.000Z",
    "created_by": "0190e0a4-0000-7000-8000-000000000002", "expires_at": null, "revoked_at": null,
    "last_used_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct Token {
    pub(crate) id: String,
    pub(crate) name: String,
    #[sqlx(try_from = "String")]
    pub(crate) kind: TokenKind,
    pub(crate) prefix: String,
    #[sqlx(try_from = "String")]
    pub(crate) role: Role,
    pub(crate) user_id: Option<String>,
    pub(crate) organization_id: Option<String>,
    pub(crate) created_at: String,
    pub(crate) created_by: Option<String>,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) last_used_at: Option<String>,
}

const COLUMNS: &str = "id, name, kind, prefix, role, user_id, organization_id, created_at, \
    created_by, expires_at, revoked_at, last_used_at";

/// Creates the instance token unless one with this hash exists (idempotent across restarts).
pub(crate) async fn ensure(
    conn: &mut AnyConnection,
    name: &str,
    hash: &str,
    prefix: &str,
    role: Role,
) -> StoreResult<Option<String>> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_some() {
        return Ok(None);
    }
    let t = Token {
        id: new_id(),
        name: name.into(),
        kind: TokenKind::Instance,
        prefix: prefix.into(),
        role,
        user_id: None,
        organization_id: None,
        created_at: now_rfc3339(),
        created_by: None,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    insert(conn, &t, hash).await?;
    Ok(Some(t.id))
}

pub(crate) async fn insert(conn: &mut AnyConnection, t: &Token, hash: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, name, token_hash, prefix, role, created_at, kind, user_id, \
         organization_id, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(hash)
    .bind(&t.prefix)
    .bind(t.role.as_str())
    .bind(&t.created_at)
    .bind(t.kind.as_str())
    .bind(&t.user_id)
    .bind(&t.organization_id)
    .bind(&t.created_by)
    .bind(&t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn find_by_hash(
    conn: &mut AnyConnection,
    hash: &str,
) -> StoreResult<Option<Token>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
    crate::store::fetch_opt(conn, sql, &[hash]).await
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Token>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
    crate::store::fetch_opt(conn, sql, &[id]).await
}

/// Tokens a caller may see: their personal ones and the service tokens of the given
/// organizations (`None`: every token, for the instance token). Newest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    user_id: Option<&str>,
    organizations: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Token>, i64)> {
    let mut binds: Vec<&str> = Vec::new();
    let filter = match organizations {
        None => String::new(),
        Some(orgs) => {
            let mut alternatives = Vec::new();
            if let Some(user) = user_id {
                binds.push(user);
                alternatives.push(format!(
                    "(kind = 'personal' AND user_id = ${})",
                    binds.len()
                ));
            }
            for org in orgs {
                binds.push(org);
                alternatives.push(format!(
                    "(kind = 'service' AND organization_id = ${})",
                    binds.len()
                ));
            }
            if alternatives.is_empty() {
                "WHERE 1 = 0".into()
            } else {
                format!("WHERE {}", alternatives.join(" OR "))
            }
        }
    };
    let count_sql = format!("SELECT COUNT(*) FROM api_tokens {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for b in &binds {
        count = count.bind(*b);
    }
    let total = count.fetch_one(&mut *conn).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM api_tokens {filter} ORDER BY created_at DESC, id LIMIT ${} OFFSET ${}",
        binds.len() + 1,
        binds.len() + 2
    );
    let mut query = sqlx::query_as::<_, Token>(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(*b);
    }
    let items = query.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    Ok((items, total))
}

pub(crate) async fn revoke(conn: &mut AnyConnection, id: &str, at: &str) -> StoreResult<()> {
    super::execute(
        conn,
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        &[at, id],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    super::execute(conn, "DELETE FROM api_tokens WHERE id = $1", &[id]).await?;
    Ok(())
}

pub(crate) async fn touch(conn: &mut AnyConnection, id: &str, at: &str) -> StoreResult<()> {
    super::execute(
        conn,
        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
        &[at, id],
    )
    .await?;
    Ok(())
}

/// Revokes every personal token of a user (the operator reset their password: whoever
/// knew the old one may have made tokens).
pub(crate) async fn revoke_personal(
    conn: &mut AnyConnection,
    user_id: &str,
    at: &str,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'personal' AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected())
}

pub(crate) async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(conn)
        .await?)
}
