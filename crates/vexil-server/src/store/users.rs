//! Users (people who log in) and their organization memberships.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::{StoreError, StoreResult};
use crate::access::Role;

/// A user as shown (never with the password hash).
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000002", "email": "ada@example.com",
    "name": "Ada", "version": 2, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str = "id, email, name, version, created_at, updated_at";

pub(crate) async fn insert(
    conn: &mut AnyConnection,
    u: &User,
    password_hash: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(password_hash)
    .bind(u.version)
    .bind(&u.created_at)
    .bind(&u.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    crate::store::fetch_opt(conn, sql, &[id]).await
}

/// The user with this (lowercased) email, with their password hash.
pub(crate) async fn find_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> StoreResult<Option<(User, String)>> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = $1");
    let row: Option<Row> = crate::store::fetch_opt(conn, sql, &[email]).await?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub(crate) async fn password_hash(
    conn: &mut AnyConnection,
    id: &str,
) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Sets the password (chosen by the user or the operator, so no longer known to anyone
/// else).
pub(crate) async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    password_hash: &str,
    now: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $1, password_set_by_other = 0, version = version + 1, \
         updated_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the password as chosen by (or shown to) someone other than the user.
pub(crate) async fn mark_password_set_by_other(
    conn: &mut AnyConnection,
    id: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE users SET password_set_by_other = 1 WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn password_set_by_other(conn: &mut AnyConnection, id: &str) -> StoreResult<bool> {
    let flag: Option<i64> =
        sqlx::query_scalar("SELECT password_set_by_other FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(flag.is_some_and(|f| f != 0))
}

pub(crate) async fn update_name(conn: &mut AnyConnection, u: &User) -> StoreResult<()> {
    sqlx::query("UPDATE users SET name = $1, version = $2, updated_at = $3 WHERE id = $4")
        .bind(&u.name)
        .bind(u.version)
        .bind(&u.updated_at)
        .bind(&u.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(conn)
        .await?)
}

/// A member of an organization: the user and their role there.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"user_id": "0190e0a4-0000-7000-8000-000000000002", "email": "ada@example.com",
    "name": "Ada", "role": "admin", "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-01-31T12:00:00.000Z"}))]
pub(crate) struct Member {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    #[sqlx(try_from = "String")]
    pub(crate) role: Role,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const MEMBER_COLUMNS: &str = "m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at";

pub(crate) async fn role_in(
    conn: &mut AnyConnection,
    user_id: &str,
    organization_id: &str,
) -> StoreResult<Option<Role>> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM memberships WHERE user_id = $1 AND organization_id = $2",
    )
    .bind(user_id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await?;
    role.map(stored_role).transpose()
}

/// A role as stored; anything else is a corrupt row.
fn stored_role(role: String) -> StoreResult<Role> {
    Role::try_from(role).map_err(StoreError::Corrupt)
}

/// Every organization the user belongs to, with the role there.
pub(crate) async fn memberships_of(
    conn: &mut AnyConnection,
    user_id: &str,
) -> StoreResult<Vec<(String, Role)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT organization_id, role FROM memberships WHERE user_id = $1 ORDER BY organization_id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(org, role)| Ok((org, stored_role(role)?)))
        .collect()
}

pub(crate) async fn get_member(
    conn: &mut AnyConnection,
    organization_id: &str,
    user_id: &str,
) -> StoreResult<Option<Member>> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND m.user_id = $2"
    );
    crate::store::fetch_opt(conn, sql, &[organization_id, user_id]).await
}

pub(crate) async fn list_members(
    conn: &mut AnyConnection,
    organization_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Member>, i64)> {
    let query = (
        MEMBER_COLUMNS,
        "FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1",
        "u.email",
    );
    super::fetch_page(conn, query, &[organization_id.to_owned()], limit, offset).await
}

pub(crate) async fn count_owners(
    conn: &mut AnyConnection,
    organization_id: &str,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE organization_id = $1 AND role = 'owner'",
    )
    .bind(organization_id)
    .fetch_one(conn)
    .await?)
}

pub(crate) async fn insert_membership(
    conn: &mut AnyConnection,
    organization_id: &str,
    user_id: &str,
    role: Role,
    now: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO memberships (organization_id, user_id, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(organization_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_role(
    conn: &mut AnyConnection,
    organization_id: &str,
    user_id: &str,
    role: Role,
    now: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE memberships SET role = $1, updated_at = $2 WHERE organization_id = $3 AND user_id = $4",
    )
    .bind(role.as_str())
    .bind(now)
    .bind(organization_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete_membership(
    conn: &mut AnyConnection,
    organization_id: &str,
    user_id: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
        .bind(organization_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An organization a user belongs to, with the role there.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000001", "key": "acme", "name": "Acme", "role": "admin"}))]
pub(crate) struct UserOrganization {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    #[sqlx(try_from = "String")]
    pub(crate) role: Role,
}

pub(crate) async fn organizations_of(
    conn: &mut AnyConnection,
    user_id: &str,
) -> StoreResult<Vec<UserOrganization>> {
    Ok(sqlx::query_as(
        "SELECT o.id, o.key, o.name, m.role FROM memberships m \
         JOIN organizations o ON o.id = m.organization_id WHERE m.user_id = $1 ORDER BY o.key",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?)
}
