//! Release plans (guarded staged rollouts), one row per plan with its stages and guard as
//! JSON, at most one live (`running` or `paused`) per flag and environment (a partial
//! unique index); the guard's readings come from `insight_counts`. Also the job leases
//! that let exactly one node run the release guard.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::{DbBool, StoreResult};

/// Where a release plan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PlanStatus {
    Running,
    Paused,
    Completed,
    RolledBack,
    Cancelled,
}

impl PlanStatus {
    pub(crate) const ALL: [PlanStatus; 5] = [
        PlanStatus::Running,
        PlanStatus::Paused,
        PlanStatus::Completed,
        PlanStatus::RolledBack,
        PlanStatus::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Running => "running",
            PlanStatus::Paused => "paused",
            PlanStatus::Completed => "completed",
            PlanStatus::RolledBack => "rolled_back",
            PlanStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<PlanStatus> {
        PlanStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the plan still owns the configuration's fallthrough.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, PlanStatus::Running | PlanStatus::Paused)
    }
}

impl TryFrom<String> for PlanStatus {
    type Error = String;

    fn try_from(s: String) -> Result<PlanStatus, String> {
        PlanStatus::parse(&s).ok_or_else(|| format!("unknown release plan status '{s}'"))
    }
}

/// One plan as stored; `stages`, `guard`, `readings` and `created_by` are JSON text.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct PlanRow {
    pub(crate) id: String,
    pub(crate) flag_id: String,
    pub(crate) environment_id: String,
    pub(crate) project_id: String,
    pub(crate) organization_id: String,
    pub(crate) flag_key: String,
    pub(crate) treatment: String,
    pub(crate) control: String,
    pub(crate) bucket_by: String,
    pub(crate) stages: String,
    #[sqlx(try_from = "DbBool")]
    pub(crate) auto_advance: bool,
    pub(crate) guard: Option<String>,
    #[sqlx(try_from = "String")]
    pub(crate) status: PlanStatus,
    pub(crate) stage: i64,
    pub(crate) stage_started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) readings: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) created_by: String,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COLUMNS: &str = "id, flag_id, environment_id, project_id, organization_id, flag_key, \
    treatment, control, bucket_by, stages, auto_advance, guard, status, stage, stage_started_at, \
    ended_at, reason, readings, comment, created_by, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, p: &PlanRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO release_plans ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&p.id)
        .bind(&p.flag_id)
        .bind(&p.environment_id)
        .bind(&p.project_id)
        .bind(&p.organization_id)
        .bind(&p.flag_key)
        .bind(&p.treatment)
        .bind(&p.control)
        .bind(&p.bucket_by)
        .bind(&p.stages)
        .bind(i64::from(p.auto_advance))
        .bind(&p.guard)
        .bind(p.status.as_str())
        .bind(p.stage)
        .bind(&p.stage_started_at)
        .bind(&p.ended_at)
        .bind(&p.reason)
        .bind(&p.readings)
        .bind(&p.comment)
        .bind(&p.created_by)
        .bind(p.version)
        .bind(&p.created_at)
        .bind(&p.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a step of the plan's life (status, stage, outcome), if the stored version is
/// still `p.version - 1`; whether it was.
pub(crate) async fn update(conn: &mut AnyConnection, p: &PlanRow) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE release_plans SET status = $1, stage = $2, stage_started_at = $3, ended_at = $4, \
         reason = $5, readings = $6, version = $7, updated_at = $8 WHERE id = $9 AND version = $10",
    )
    .bind(p.status.as_str())
    .bind(p.stage)
    .bind(&p.stage_started_at)
    .bind(&p.ended_at)
    .bind(&p.reason)
    .bind(&p.readings)
    .bind(p.version)
    .bind(&p.updated_at)
    .bind(&p.id)
    .bind(p.version - 1)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<PlanRow>> {
    let sql = format!("SELECT {COLUMNS} FROM release_plans WHERE id = $1");
    super::fetch_opt(conn, sql, &[id]).await
}

/// The plan of a flag in an environment that is live, else the latest that ended.
pub(crate) async fn current(
    conn: &mut AnyConnection,
    flag_id: &str,
    env_id: &str,
) -> StoreResult<Option<PlanRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM release_plans WHERE flag_id = $1 AND environment_id = $2 \
         ORDER BY CASE WHEN status IN ('running', 'paused') THEN 0 ELSE 1 END, created_at DESC, id DESC \
         LIMIT 1"
    );
    super::fetch_opt(conn, sql, &[flag_id, env_id]).await
}

/// The live plan of a flag in an environment, if any.
pub(crate) async fn live_for(
    conn: &mut AnyConnection,
    flag_id: &str,
    env_id: &str,
) -> StoreResult<Option<PlanRow>> {
    let live = live_where(conn, LiveOf::Flag, flag_id).await?;
    Ok(live.into_iter().find(|p| p.environment_id == env_id))
}

/// Whether any plan of the instance is live (the guard's cheap first look).
pub(crate) async fn any_live(conn: &mut AnyConnection) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM release_plans WHERE status IN ('running', 'paused') LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// The live plans of a flag (`flag_id`) or of an environment (`env_id`), oldest first.
pub(crate) async fn live_where(
    conn: &mut AnyConnection,
    column: LiveOf,
    id: &str,
) -> StoreResult<Vec<PlanRow>> {
    let column = match column {
        LiveOf::Flag => "flag_id",
        LiveOf::Environment => "environment_id",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM release_plans WHERE {column} = $1 \
         AND status IN ('running', 'paused') ORDER BY created_at, id"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(conn)
        .await?)
}

/// Whose live plans [`live_where`] lists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LiveOf {
    Flag,
    Environment,
}

/// Every live plan of the instance (what the guard watches), oldest first.
pub(crate) async fn live(conn: &mut AnyConnection) -> StoreResult<Vec<PlanRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM release_plans WHERE status IN ('running', 'paused') \
         ORDER BY created_at, id"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql)).fetch_all(conn).await?)
}

/// A page of a project's plans (optionally of some statuses and one environment), newest
/// first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    environment_id: Option<&str>,
    statuses: &[PlanStatus],
    (limit, offset): (i64, i64),
) -> StoreResult<(Vec<PlanRow>, i64)> {
    let mut params = vec![project_id.to_owned()];
    let mut clauses = vec!["project_id = $1".to_owned()];
    if let Some(env) = environment_id {
        params.push(env.to_owned());
        clauses.push(format!("environment_id = ${}", params.len()));
    }
    if !statuses.is_empty() {
        clauses.push(super::in_list("status", params.len() + 1, statuses.len()));
        params.extend(statuses.iter().map(|s| s.as_str().to_owned()));
    }
    let from_where = format!("FROM release_plans WHERE {}", clauses.join(" AND "));
    super::fetch_page(
        conn,
        (COLUMNS, &from_where, "created_at DESC, id DESC"),
        &params,
        limit,
        offset,
    )
    .await
}

/// Counts of one flag in one environment in minute buckets `from <= bucket`, per
/// variation and event key (`""`: evaluations), for the event keys given and evaluations:
/// `(variation, event_key, count)`.
pub(crate) async fn minute_totals(
    conn: &mut AnyConnection,
    environment_id: &str,
    flag_key: &str,
    from: i64,
    event_key: &str,
) -> StoreResult<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT variation, event_key, CAST(SUM(count) AS BIGINT) FROM insight_counts \
         WHERE environment_id = $1 AND flag_key = $2 AND resolution = 'minute' AND bucket >= $3 \
         AND (event_key = '' OR event_key = $4) GROUP BY variation, event_key",
    )
    .bind(environment_id)
    .bind(flag_key)
    .bind(from)
    .bind(event_key)
    .fetch_all(conn)
    .await?)
}

/// Takes or renews the lease `name` for `holder` until `until` (ms) when it is free,
/// expired at `now`, or already `holder`'s; whether `holder` now holds it.
pub(crate) async fn claim_lease(
    conn: &mut AnyConnection,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> StoreResult<bool> {
    sqlx::query(
        "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < $4",
    )
    .bind(name)
    .bind(holder)
    .bind(until)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let held: Option<String> = sqlx::query_scalar("SELECT holder FROM job_leases WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(held.as_deref() == Some(holder))
}
