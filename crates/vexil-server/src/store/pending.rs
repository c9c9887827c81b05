//! Pending changes: configuration merge patches held until a time (scheduled changes) or an
//! approval (change requests), one table for both.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::StoreResult;

/// Whether a pending change waits for a time or for an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Scheduled,
    Request,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Scheduled => "scheduled",
            Kind::Request => "request",
        }
    }
}

impl TryFrom<String> for Kind {
    type Error = String;

    fn try_from(s: String) -> Result<Kind, String> {
        match s.as_str() {
            "scheduled" => Ok(Kind::Scheduled),
            "request" => Ok(Kind::Request),
            _ => Err(format!("unknown pending change kind '{s}'")),
        }
    }
}

/// Where a pending change is in its life. Scheduled changes are `pending` until applied,
/// failed or cancelled; change requests are `open`, then `approved` (or `rejected`), then
/// `applied` (or `failed` when applied at their time no longer validates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Pending,
    Open,
    Approved,
    Applied,
    Failed,
    Rejected,
    Cancelled,
}

impl Status {
    pub(crate) const ALL: [Status; 7] = [
        Status::Pending,
        Status::Open,
        Status::Approved,
        Status::Applied,
        Status::Failed,
        Status::Rejected,
        Status::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Open => "open",
            Status::Approved => "approved",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the change may still happen.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Open | Status::Approved)
    }
}

impl TryFrom<String> for Status {
    type Error = String;

    fn try_from(s: String) -> Result<Status, String> {
        Status::parse(&s).ok_or_else(|| format!("unknown pending change status '{s}'"))
    }
}

/// One row as stored; `patch`, `author` and `reviews` are JSON text.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct PendingChange {
    pub(crate) id: String,
    #[sqlx(try_from = "String")]
    pub(crate) kind: Kind,
    pub(crate) flag_id: String,
    pub(crate) environment_id: String,
    pub(crate) project_id: String,
    pub(crate) organization_id: String,
    pub(crate) patch: String,
    pub(crate) comment: Option<String>,
    pub(crate) execute_at: Option<String>,
    #[sqlx(try_from = "String")]
    pub(crate) status: Status,
    pub(crate) author: String,
    pub(crate) author_id: String,
    pub(crate) base_version: i64,
    pub(crate) approved_version: Option<i64>,
    pub(crate) reviews: String,
    pub(crate) applied_at: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str = "id, kind, flag_id, environment_id, project_id, organization_id, patch, \
    comment, execute_at, status, author, author_id, base_version, approved_version, reviews, \
    applied_at, error, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, p: &PendingChange) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO pending_changes ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&p.id)
        .bind(p.kind.as_str())
        .bind(&p.flag_id)
        .bind(&p.environment_id)
        .bind(&p.project_id)
        .bind(&p.organization_id)
        .bind(&p.patch)
        .bind(&p.comment)
        .bind(&p.execute_at)
        .bind(p.status.as_str())
        .bind(&p.author)
        .bind(&p.author_id)
        .bind(p.base_version)
        .bind(p.approved_version)
        .bind(&p.reviews)
        .bind(&p.applied_at)
        .bind(&p.error)
        .bind(p.version)
        .bind(&p.created_at)
        .bind(&p.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<PendingChange>> {
    let sql = format!("SELECT {COLUMNS} FROM pending_changes WHERE id = $1");
    super::fetch_opt(conn, sql, &[id]).await
}

/// Stores what a step of the change's life changes: status, approval, reviews, outcome.
pub(crate) async fn update(conn: &mut AnyConnection, p: &PendingChange) -> StoreResult<()> {
    sqlx::query(
        "UPDATE pending_changes SET status = $1, approved_version = $2, reviews = $3, \
         applied_at = $4, error = $5, version = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(p.status.as_str())
    .bind(p.approved_version)
    .bind(&p.reviews)
    .bind(&p.applied_at)
    .bind(&p.error)
    .bind(p.version)
    .bind(&p.updated_at)
    .bind(&p.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which pending changes a listing shows.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    pub(crate) kind: Option<Kind>,
    pub(crate) project_id: Option<&'a str>,
    pub(crate) flag_id: Option<&'a str>,
    pub(crate) environment_id: Option<&'a str>,
    pub(crate) statuses: &'a [Status],
}

/// A page of pending changes, soonest first (by `execute_at`, then creation).
pub(crate) async fn list(
    conn: &mut AnyConnection,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<PendingChange>, i64)> {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut add = |column: &str, value: &str| {
        params.push(value.to_owned());
        clauses.push(format!("{column} = ${}", params.len()));
    };
    if let Some(kind) = filter.kind {
        add("kind", kind.as_str());
    }
    for (column, value) in [
        ("project_id", filter.project_id),
        ("flag_id", filter.flag_id),
        ("environment_id", filter.environment_id),
    ] {
        if let Some(value) = value {
            add(column, value);
        }
    }
    if !filter.statuses.is_empty() {
        clauses.push(super::in_list(
            "status",
            params.len() + 1,
            filter.statuses.len(),
        ));
        params.extend(filter.statuses.iter().map(|s| s.as_str().to_owned()));
    }
    let from_where = match clauses.is_empty() {
        true => "FROM pending_changes".to_owned(),
        false => format!("FROM pending_changes WHERE {}", clauses.join(" AND ")),
    };
    // Changes without a time sort after those with one.
    let order = "COALESCE(execute_at, '9999'), created_at, id";
    super::fetch_page(conn, (COLUMNS, &from_where, order), &params, limit, offset).await
}

const DUE: &str = "((kind = 'scheduled' AND status = 'pending') \
     OR (kind = 'request' AND status = 'approved')) AND execute_at IS NOT NULL AND execute_at <= $1";

/// Whether any change is due at `now` (a cheap read before taking the write lock).
pub(crate) async fn any_due(conn: &mut AnyConnection, now: &str) -> StoreResult<bool> {
    let sql = format!("SELECT COUNT(*) FROM pending_changes WHERE {DUE}");
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// The changes due at `now`, oldest time first (at most `limit`).
pub(crate) async fn due(
    conn: &mut AnyConnection,
    now: &str,
    limit: i64,
) -> StoreResult<Vec<PendingChange>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM pending_changes WHERE {DUE} ORDER BY execute_at, created_at, id LIMIT $2"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}
