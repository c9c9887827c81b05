//! Audit log queries: append (inside the mutation's transaction), list, get, verify.

use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::{StoreResult, new_id, now_rfc3339};
use crate::audit::{Action, Actor, AuditEntry, GENESIS_HASH, RequestMeta};

/// What a mutation records; the store fills in id, time and the chain.
#[derive(Debug, Clone)]
pub(crate) struct NewEntry<'a> {
    pub(crate) actor: &'a Actor,
    pub(crate) action: Action,
    pub(crate) resource_id: &'a str,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
    pub(crate) comment: Option<&'a str>,
    pub(crate) meta: &'a RequestMeta,
}

#[derive(Debug, FromRow)]
struct Row {
    seq: i64,
    id: String,
    at: String,
    actor_id: String,
    actor_name: String,
    action: String,
    resource_type: String,
    resource_id: String,
    before_doc: Option<String>,
    after_doc: Option<String>,
    comment: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
    organization_id: Option<String>,
}

impl Row {
    fn into_entry(self) -> StoreResult<AuditEntry> {
        let doc = |d: Option<String>| d.map(|s| serde_json::from_str(&s)).transpose();
        Ok(AuditEntry {
            id: self.id,
            seq: self.seq,
            at: self.at,
            actor: serde_json::json!({"id": self.actor_id, "name": self.actor_name}),
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            before: doc(self.before_doc)?,
            after: doc(self.after_doc)?,
            comment: self.comment,
            ip: self.ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
            organization_id: self.organization_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

const COLUMNS: &str = "seq, id, at, actor_id, actor_name, action, resource_type, resource_id, \
    before_doc, after_doc, comment, ip, user_agent, request_id, prev_hash, hash, organization_id";

/// Appends an entry to the chain. Must run inside a write transaction (`Store::write`),
/// which serializes appends.
pub(crate) async fn append(conn: &mut AnyConnection, e: NewEntry<'_>) -> StoreResult<AuditEntry> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (prev_seq, prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    // The hash must cover the documents exactly as `verify` will read them back, and
    // serde_json's default float parsing does not round-trip every `f64` (a clause value
    // such as 1.079907802215119e-66 comes back one bit off). So the stored text is
    // produced first and the documents are hashed as parsed from it.
    let before_doc = e.before.as_ref().map(Value::to_string);
    let after_doc = e.after.as_ref().map(Value::to_string);
    let reread = |doc: &Option<String>| {
        doc.as_deref()
            .map(serde_json::from_str::<Value>)
            .transpose()
    };
    let mut entry = AuditEntry {
        id: new_id(),
        seq: prev_seq + 1,
        at: now_rfc3339(),
        actor: serde_json::json!({"id": e.actor.id, "name": e.actor.name}),
        action: e.action.as_str().to_owned(),
        resource_type: e.action.resource_type().to_owned(),
        resource_id: e.resource_id.to_owned(),
        before: reread(&before_doc)?,
        after: reread(&after_doc)?,
        comment: e.comment.map(str::to_owned),
        ip: e.meta.ip.clone(),
        user_agent: e.meta.user_agent.clone(),
        request_id: e.meta.request_id.clone(),
        organization_id: e.meta.organization_id.clone(),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    let (project_id, environment_id) = concerns(&mut *conn, &entry).await?;
    sqlx::query(
        "INSERT INTO audit_log (seq, id, at, actor_id, actor_name, action, resource_type, resource_id, \
         before_doc, after_doc, comment, ip, user_agent, request_id, prev_hash, hash, organization_id, \
         project_id, environment_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(entry.seq)
    .bind(&entry.id)
    .bind(&entry.at)
    .bind(&e.actor.id)
    .bind(&e.actor.name)
    .bind(&entry.action)
    .bind(&entry.resource_type)
    .bind(&entry.resource_id)
    .bind(before_doc)
    .bind(after_doc)
    .bind(&entry.comment)
    .bind(&entry.ip)
    .bind(&entry.user_agent)
    .bind(&entry.request_id)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .bind(&entry.organization_id)
    .bind(project_id)
    .bind(environment_id)
    .execute(&mut *conn)
    .await?;
    Ok(entry)
}

/// The project and environment an entry concerns, for webhooks to find it: from its
/// documents (`project_id`, `environment_id`, else the project of its `environment_id` or
/// `flag_id`), looked up while the resources still exist. Not part of the hash: derived.
async fn concerns(
    conn: &mut AnyConnection,
    entry: &AuditEntry,
) -> StoreResult<(Option<String>, Option<String>)> {
    let field = |name: &str| {
        [&entry.after, &entry.before]
            .into_iter()
            .flatten()
            .find_map(|doc| {
                let doc = match doc.as_array() {
                    // A change of several environments (the kill switch) concerns none of them.
                    Some(all) if all.len() > 1 && name == "environment_id" => return None,
                    Some(all) => all.first()?,
                    None => doc,
                };
                doc.get(name).and_then(Value::as_str).map(str::to_owned)
            })
    };
    let id = Some(entry.resource_id.clone());
    let environment_id = match entry.resource_type.as_str() {
        "environment" => id.clone(),
        _ => field("environment_id"),
    };
    let mut project_id = match entry.resource_type.as_str() {
        "project" => id.clone(),
        _ => field("project_id"),
    };
    if project_id.is_none() {
        let flag_id = match entry.resource_type.as_str() {
            "flag" => id,
            _ => field("flag_id"),
        };
        let lookup = match (&environment_id, &flag_id) {
            (Some(env), _) => Some(("SELECT project_id FROM environments WHERE id = $1", env)),
            (None, Some(flag)) => Some(("SELECT project_id FROM flags WHERE id = $1", flag)),
            (None, None) => None,
        };
        if let Some((sql, id)) = lookup {
            project_id = sqlx::query_scalar(sql)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        }
    }
    Ok((project_id, environment_id))
}

/// Filters of `GET /api/v1/audit-logs`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filter {
    pub(crate) resource_type: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) actor_id: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) organization_id: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    /// Who is reading: `None` sees everything (an instance token); otherwise only entries
    /// of these organizations and the reader's own actions.
    pub(crate) visible_to: Option<Visibility>,
}

/// What a caller other than an instance token may read of the audit trail.
#[derive(Debug, Default, Clone)]
pub(crate) struct Visibility {
    pub(crate) organizations: Vec<String>,
    pub(crate) actor_id: String,
}

/// Newest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<AuditEntry>, i64)> {
    let mut clauses = Vec::new();
    let mut binds: Vec<&str> = Vec::new();
    for (column, op, value) in [
        ("resource_type", "=", &f.resource_type),
        ("resource_id", "=", &f.resource_id),
        ("actor_id", "=", &f.actor_id),
        ("action", "=", &f.action),
        ("organization_id", "=", &f.organization_id),
        ("at", ">=", &f.since),
        ("at", "<", &f.until),
    ] {
        if let Some(v) = value {
            binds.push(v);
            clauses.push(format!("{column} {op} ${}", binds.len()));
        }
    }
    let mut owned: Vec<String> = Vec::new();
    if let Some(v) = &f.visible_to {
        let base = binds.len();
        let mut alternatives = vec![format!("actor_id = ${}", base + 1)];
        owned.push(v.actor_id.clone());
        for org in &v.organizations {
            owned.push(org.clone());
            alternatives.push(format!("organization_id = ${}", base + owned.len()));
        }
        clauses.push(format!("({})", alternatives.join(" OR ")));
    }
    binds.extend(owned.iter().map(String::as_str));
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let count_sql = format!("SELECT COUNT(*) FROM audit_log {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql));
    for b in &binds {
        count = count.bind(*b);
    }
    let total = count.fetch_one(&mut *conn).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log {filter} ORDER BY seq DESC LIMIT ${} OFFSET ${}",
        binds.len() + 1,
        binds.len() + 2
    );
    let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(*b);
    }
    let rows = query.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let entries = rows
        .into_iter()
        .map(Row::into_entry)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((entries, total))
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<AuditEntry>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE id = $1");
    let row = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Row::into_entry).transpose()
}

/// The result of walking the chain.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"valid": true, "entries": 1234, "first_broken": null,
    "head_hash": "5d41402abc4b2a76b9719d911017c592ae2f4e6b5d41402abc4b2a76b9719d91"}))]
pub(crate) struct Verification {
    pub(crate) valid: bool,
    /// Entries checked: all of them when the chain is valid, else those up to and
    /// including the first broken one.
    pub(crate) entries: i64,
    /// Id of the first entry whose link or content does not check out.
    pub(crate) first_broken: Option<String>,
    /// Hash of the last entry: record it elsewhere to also detect removal of the tail.
    pub(crate) head_hash: String,
}

/// Walks the whole chain in order, in pages, recomputing every hash. With `scope` (the
/// organizations an admin may see), the whole chain is still checked — each entry links
/// to the one before, whoever's it is — but the answer speaks of the scope's entries
/// only: how many, the last one's hash, and the first broken one if it is theirs (a break
/// elsewhere makes the chain invalid without naming another organization's entry).
pub(crate) async fn verify(
    conn: &mut AnyConnection,
    scope: Option<&[String]>,
) -> StoreResult<Verification> {
    let in_scope = |org: &Option<String>| match scope {
        None => true,
        Some(orgs) => org.as_ref().is_some_and(|o| orgs.contains(o)),
    };
    let mut scoped_head = GENESIS_HASH.to_owned();
    const PAGE: i64 = 1000;
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    let (mut last_seq, mut prev_hash, mut count) = (0i64, GENESIS_HASH.to_owned(), 0i64);
    loop {
        let rows = sqlx::query_as::<_, Row>(AssertSqlSafe(sql.clone()))
            .bind(last_seq)
            .bind(PAGE)
            .fetch_all(&mut *conn)
            .await?;
        let done = (rows.len() as i64) < PAGE;
        for row in rows {
            let id = row.id.clone();
            let seq = row.seq;
            let counted = in_scope(&row.organization_id);
            count += i64::from(counted);
            // A row whose documents no longer parse has been tampered with too.
            let entry = match row.into_entry() {
                Ok(entry)
                    if seq == last_seq + 1
                        && entry.prev_hash == prev_hash
                        && entry.compute_hash() == entry.hash =>
                {
                    entry
                }
                _ => {
                    return Ok(Verification {
                        valid: false,
                        entries: count,
                        first_broken: counted.then_some(id),
                        head_hash: scoped_head,
                    });
                }
            };
            if counted {
                scoped_head.clone_from(&entry.hash);
            }
            prev_hash = entry.hash;
            last_seq = seq;
        }
        if done {
            break;
        }
    }
    Ok(Verification {
        valid: true,
        entries: count,
        first_broken: None,
        head_hash: scoped_head,
    })
}
