//! Webhooks: a project's subscriptions (with their signing secrets, which are read only to
//! sign), the deliveries made from the audit trail (one per announced entry and webhook,
//! ordered by the entry's `seq`), each delivery's attempts, and the outbox cursor: the last
//! audit entry turned into deliveries.

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, FromRow};

use super::{DbBool, StoreResult, fetch_page};

/// One webhook as served; its secret is never part of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000b",
    "project_id": "0190e0a4-0000-7000-8000-000000000003", "name": "ops channel",
    "url": "https://hooks.slack.com/services/T000/B000/XXXX", "events": ["flag.*", "config.updated"],
    "format": "slack", "enabled": true, "disabled_reason": null,
    "created_by": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "version": 1, "created_at": "2026-02-01T08:30:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct Webhook {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) name: String,
    pub(crate) url: String,
    /// Event patterns: an event type (`config.updated`), a family (`flag.*`) or `*`.
    pub(crate) events: Vec<String>,
    /// `standard`, `slack` or `discord`.
    pub(crate) format: String,
    pub(crate) enabled: bool,
    /// Why the server disabled the webhook (its deliveries failed for too long).
    pub(crate) disabled_reason: Option<String>,
    /// Audit entries after this one are announced.
    #[serde(skip)]
    pub(crate) from_seq: i64,
    /// Who created it: `{id, name}`.
    #[schema(value_type = crate::audit::Actor)]
    pub(crate) created_by: Value,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// A webhook as stored: JSON columns as text.
#[derive(Debug, FromRow)]
struct Row {
    id: String,
    project_id: String,
    name: String,
    url: String,
    events: String,
    format: String,
    #[sqlx(try_from = "DbBool")]
    enabled: bool,
    disabled_reason: Option<String>,
    from_seq: i64,
    created_by: String,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl Row {
    fn into_webhook(self) -> StoreResult<Webhook> {
        Ok(Webhook {
            id: self.id,
            project_id: self.project_id,
            name: self.name,
            url: self.url,
            events: serde_json::from_str(&self.events)?,
            format: self.format,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            from_seq: self.from_seq,
            created_by: serde_json::from_str(&self.created_by)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, project_id, name, url, events, format, enabled, disabled_reason, \
    from_seq, created_by, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, w: &Webhook, secret: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhooks (id, project_id, name, url, events, format, enabled, disabled_reason, \
         from_seq, created_by, version, created_at, updated_at, secret) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&w.id)
    .bind(&w.project_id)
    .bind(&w.name)
    .bind(&w.url)
    .bind(serde_json::to_string(&w.events)?)
    .bind(&w.format)
    .bind(i64::from(w.enabled))
    .bind(&w.disabled_reason)
    .bind(w.from_seq)
    .bind(w.created_by.to_string())
    .bind(w.version)
    .bind(&w.created_at)
    .bind(&w.updated_at)
    .bind(secret)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Webhook>> {
    let row: Option<Row> = super::fetch_opt(
        conn,
        format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
        &[id],
    )
    .await?;
    row.map(Row::into_webhook).transpose()
}

/// Stores the editable fields, `enabled`, `disabled_reason`, `from_seq`, version and time.
pub(crate) async fn update(conn: &mut AnyConnection, w: &Webhook) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhooks SET name = $1, url = $2, events = $3, format = $4, enabled = $5, \
         disabled_reason = $6, from_seq = $7, version = $8, updated_at = $9 WHERE id = $10",
    )
    .bind(&w.name)
    .bind(&w.url)
    .bind(serde_json::to_string(&w.events)?)
    .bind(&w.format)
    .bind(i64::from(w.enabled))
    .bind(&w.disabled_reason)
    .bind(w.from_seq)
    .bind(w.version)
    .bind(&w.updated_at)
    .bind(&w.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many webhooks the project has.
pub(crate) async fn count(conn: &mut AnyConnection, project_id: &str) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

/// A page of the project's webhooks, oldest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Webhook>, i64)> {
    let (rows, total): (Vec<Row>, i64) = fetch_page(
        conn,
        (
            COLUMNS,
            "FROM webhooks WHERE project_id = $1",
            "created_at, id",
        ),
        &[project_id.to_owned()],
        limit,
        offset,
    )
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_webhook)
        .collect::<StoreResult<_>>()?;
    Ok((items, total))
}

/// Every enabled webhook (what the outbox fans entries out to).
pub(crate) async fn enabled(conn: &mut AnyConnection) -> StoreResult<Vec<Webhook>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE enabled = 1 ORDER BY created_at, id");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(Row::into_webhook).collect()
}

/// The signing secret of a webhook.
pub(crate) async fn secret(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// One audit entry to announce: what the outbox reads.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Announced {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) at: String,
    pub(crate) actor_id: String,
    pub(crate) actor_name: String,
    pub(crate) action: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
    pub(crate) before_doc: Option<String>,
    pub(crate) after_doc: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) environment_id: Option<String>,
}

/// The outbox cursor: the last audit entry turned into deliveries.
pub(crate) async fn cursor(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT seq FROM webhook_outbox WHERE id = 1")
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

pub(crate) async fn set_cursor(conn: &mut AnyConnection, seq: i64) -> StoreResult<()> {
    sqlx::query("UPDATE webhook_outbox SET seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// The newest audit entry's `seq` (0 when there is none).
pub(crate) async fn audit_head(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM audit_log")
            .fetch_one(conn)
            .await?
            .unwrap_or(0),
    )
}

/// Up to `limit` audit entries after `seq`, in order.
pub(crate) async fn entries_after(
    conn: &mut AnyConnection,
    seq: i64,
    limit: i64,
) -> StoreResult<Vec<Announced>> {
    Ok(sqlx::query_as(
        "SELECT seq, id, at, actor_id, actor_name, action, resource_type, resource_id, \
         before_doc, after_doc, comment, project_id, environment_id \
         FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Whether the delivery job has work: audit entries past the cursor, or a webhook whose
/// next delivery is due.
pub(crate) async fn work_due(conn: &mut AnyConnection, now: i64) -> StoreResult<bool> {
    let behind: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM audit_log WHERE seq > (SELECT seq FROM webhook_outbox WHERE id = 1) LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if behind.is_some() {
        return Ok(true);
    }
    // Only a webhook's next delivery in order counts: the ones behind it wait for it.
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled = 1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
                         AND e.status = 'pending' AND e.seq < d.seq) LIMIT 1",
    )
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(due.is_some())
}

/// A delivery as served, with its attempts when asked for one.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000c",
    "webhook_id": "0190e0a4-0000-7000-8000-00000000000b", "event": "config.updated",
    "message_id": "msg_0190e0a4-0000-7000-8000-000000000009", "seq": 42, "status": "delivered",
    "attempts": 1, "next_attempt_at": null, "last_status_code": 200, "last_latency_ms": 12,
    "last_error": null, "created_at": "2026-02-01T08:30:00.000Z",
    "delivered_at": "2026-02-01T08:30:00.120Z"}))]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) webhook_id: String,
    /// The event type: `config.updated`, `flag.killed`, …, `webhook.test`.
    pub(crate) event: String,
    /// The `webhook-id` header, the same on every attempt (receivers deduplicate on it).
    pub(crate) message_id: String,
    /// The audit entry announced (0 for a test).
    pub(crate) seq: i64,
    /// `pending` (to be attempted at `next_attempt_at`), `delivered` or `failed` (given up).
    pub(crate) status: String,
    pub(crate) attempts: i64,
    /// When the next attempt is due (RFC 3339), while pending.
    #[sqlx(skip)]
    pub(crate) next_attempt_at: Option<String>,
    #[serde(skip)]
    #[sqlx(rename = "next_attempt_at")]
    pub(crate) next_attempt_ms: Option<i64>,
    pub(crate) last_status_code: Option<i64>,
    pub(crate) last_latency_ms: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: String,
    pub(crate) delivered_at: Option<String>,
    #[serde(skip)]
    pub(crate) failing_since: Option<i64>,
    #[serde(skip)]
    pub(crate) payload: String,
}

impl Delivery {
    fn dated(mut self) -> Delivery {
        self.next_attempt_at = self.next_attempt_ms.map(vexil_core::time::format_rfc3339);
        self
    }
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event, message_id, seq, status, attempts, \
    next_attempt_at, last_status_code, last_latency_ms, last_error, created_at, delivered_at, \
    failing_since, payload";

pub(crate) async fn insert_delivery(conn: &mut AnyConnection, d: &Delivery) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, message_id, seq, status, attempts, \
         next_attempt_at, last_status_code, last_latency_ms, last_error, created_at, delivered_at, \
         failing_since, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&d.id)
    .bind(&d.webhook_id)
    .bind(&d.event)
    .bind(&d.message_id)
    .bind(d.seq)
    .bind(&d.status)
    .bind(d.attempts)
    .bind(d.next_attempt_ms)
    .bind(d.last_status_code)
    .bind(d.last_latency_ms)
    .bind(&d.last_error)
    .bind(&d.created_at)
    .bind(&d.delivered_at)
    .bind(d.failing_since)
    .bind(&d.payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores what an attempt changed: status, counts, schedule and the last outcome.
pub(crate) async fn update_delivery(conn: &mut AnyConnection, d: &Delivery) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
         last_status_code = $4, last_latency_ms = $5, last_error = $6, delivered_at = $7, \
         failing_since = $8 WHERE id = $9",
    )
    .bind(&d.status)
    .bind(d.attempts)
    .bind(d.next_attempt_ms)
    .bind(d.last_status_code)
    .bind(d.last_latency_ms)
    .bind(&d.last_error)
    .bind(&d.delivered_at)
    .bind(d.failing_since)
    .bind(&d.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get_delivery(
    conn: &mut AnyConnection,
    webhook_id: &str,
    id: &str,
) -> StoreResult<Option<Delivery>> {
    let found: Option<Delivery> = super::fetch_opt(
        conn,
        format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2"
        ),
        &[id, webhook_id],
    )
    .await?;
    Ok(found.map(Delivery::dated))
}

/// A page of a webhook's deliveries, newest first, optionally of one status.
pub(crate) async fn deliveries(
    conn: &mut AnyConnection,
    webhook_id: &str,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Delivery>, i64)> {
    let mut params = vec![webhook_id.to_owned()];
    let mut from_where = "FROM webhook_deliveries WHERE webhook_id = $1".to_owned();
    if let Some(status) = status {
        params.push(status.to_owned());
        from_where.push_str(" AND status = $2");
    }
    let (items, total): (Vec<Delivery>, i64) = fetch_page(
        conn,
        (
            DELIVERY_COLUMNS,
            &from_where,
            "created_at DESC, seq DESC, id DESC",
        ),
        &params,
        limit,
        offset,
    )
    .await?;
    Ok((items.into_iter().map(Delivery::dated).collect(), total))
}

/// The webhook's next delivery in order: its pending delivery of the lowest `seq`.
pub(crate) async fn head(
    conn: &mut AnyConnection,
    webhook_id: &str,
) -> StoreResult<Option<Delivery>> {
    let found: Option<Delivery> = super::fetch_opt(
        conn,
        format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE webhook_id = $1 AND status = 'pending' ORDER BY seq, id LIMIT 1"
        ),
        &[webhook_id],
    )
    .await?;
    Ok(found.map(Delivery::dated))
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
#[schema(example = json!({"n": 1, "at": "2026-02-01T08:30:00.100Z", "status_code": 200,
    "latency_ms": 12, "error": null, "response": "ok"}))]
pub(crate) struct Attempt {
    pub(crate) n: i64,
    pub(crate) at: String,
    /// The receiver's HTTP status, when it answered.
    pub(crate) status_code: Option<i64>,
    pub(crate) latency_ms: i64,
    /// Why the attempt got no answer (timeout, connection refused, address refused, …).
    pub(crate) error: Option<String>,
    /// The first kilobyte of the receiver's answer.
    pub(crate) response: Option<String>,
}

pub(crate) async fn insert_attempt(
    conn: &mut AnyConnection,
    delivery_id: &str,
    a: &Attempt,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, n, at, status_code, latency_ms, error, response) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(delivery_id)
    .bind(a.n)
    .bind(&a.at)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(&a.error)
    .bind(&a.response)
    .execute(conn)
    .await?;
    Ok(())
}

/// The attempts of a delivery, first first.
pub(crate) async fn attempts(
    conn: &mut AnyConnection,
    delivery_id: &str,
) -> StoreResult<Vec<Attempt>> {
    Ok(sqlx::query_as(
        "SELECT n, at, status_code, latency_ms, error, response FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY n",
    )
    .bind(delivery_id)
    .fetch_all(conn)
    .await?)
}

/// Keys and names that messages show: a project's, an environment's, a flag's.
pub(crate) async fn key_of(
    conn: &mut AnyConnection,
    table: Named,
    id: &str,
) -> StoreResult<Option<(String, String)>> {
    let sql = match table {
        Named::Project => "SELECT key, name FROM projects WHERE id = $1",
        Named::Environment => "SELECT key, name FROM environments WHERE id = $1",
        Named::Flag => "SELECT key, name FROM flags WHERE id = $1",
        Named::Organization => {
            "SELECT o.key, o.name FROM organizations o JOIN projects p ON p.organization_id = o.id \
             WHERE p.id = $1"
        }
    };
    Ok(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?)
}

/// What [`key_of`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Named {
    Project,
    Environment,
    Flag,
    /// The organization of a project (by the project's id).
    Organization,
}

/// Deletes the final (delivered or failed) deliveries created before `before`, with their
/// attempts; how many went.
pub(crate) async fn purge(conn: &mut AnyConnection, before: &str) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
            .bind(before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
