//! Where a resource lives, for authorization: its organization, and whether changing it
//! touches a protected environment.

use sqlx::{AnyConnection, FromRow};

use super::{DbBool, StoreResult};

/// The organization a resource belongs to, and whether the requested change would alter
/// what a protected environment serves.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Scope {
    pub(crate) organization_id: String,
    #[sqlx(try_from = "DbBool")]
    pub(crate) protected: bool,
}

/// What a scope is looked up for, by the id of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Of {
    Organization,
    Project,
    Environment,
    Flag,
    /// A flag, `protected` when it is enabled in some protected environment: deleting,
    /// archiving or restoring it then changes what that environment serves.
    FlagLifecycle,
    Segment,
    /// An API key, protected as its environment.
    ApiKey,
    /// A scheduled change or change request, protected as its environment.
    PendingChange,
    Webhook,
    Template,
}

impl Of {
    fn sql(self) -> &'static str {
        match self {
            Of::Organization => {
                "SELECT id AS organization_id, CAST(0 AS BIGINT) AS protected FROM organizations \
                 WHERE id = $1"
            }
            Of::Project => {
                "SELECT organization_id, CAST(0 AS BIGINT) AS protected FROM projects WHERE id = $1"
            }
            Of::Environment => {
                "SELECT p.organization_id, e.protected FROM environments e \
                 JOIN projects p ON p.id = e.project_id WHERE e.id = $1"
            }
            Of::Flag => {
                "SELECT p.organization_id, CAST(0 AS BIGINT) AS protected FROM flags f \
                 JOIN projects p ON p.id = f.project_id WHERE f.id = $1"
            }
            Of::FlagLifecycle => {
                "SELECT p.organization_id, CAST( \
                   CASE WHEN EXISTS (SELECT 1 FROM flag_configs c JOIN environments e ON e.id = c.environment_id \
                                     WHERE c.flag_id = f.id AND c.enabled = 1 AND e.protected = 1) \
                        THEN 1 ELSE 0 END AS BIGINT) AS protected \
                 FROM flags f JOIN projects p ON p.id = f.project_id WHERE f.id = $1"
            }
            Of::Segment => {
                "SELECT p.organization_id, CAST(0 AS BIGINT) AS protected FROM segments s \
                 JOIN projects p ON p.id = s.project_id WHERE s.id = $1"
            }
            Of::ApiKey => {
                "SELECT p.organization_id, e.protected FROM api_keys k \
                 JOIN projects p ON p.id = k.project_id \
                 JOIN environments e ON e.id = k.environment_id WHERE k.id = $1"
            }
            Of::PendingChange => {
                "SELECT c.organization_id, e.protected FROM pending_changes c \
                 JOIN environments e ON e.id = c.environment_id WHERE c.id = $1"
            }
            Of::Template => {
                "SELECT p.organization_id, CAST(0 AS BIGINT) AS protected FROM flag_templates t \
                 JOIN projects p ON p.id = t.project_id WHERE t.id = $1"
            }
            Of::Webhook => {
                "SELECT p.organization_id, CAST(0 AS BIGINT) AS protected FROM webhooks w \
                 JOIN projects p ON p.id = w.project_id WHERE w.id = $1"
            }
        }
    }
}

/// The scope of the resource `id` of kind `of` (`None`: there is no such resource).
pub(crate) async fn of(conn: &mut AnyConnection, of: Of, id: &str) -> StoreResult<Option<Scope>> {
    Ok(sqlx::query_as(of.sql())
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A flag's configuration in an environment: both must exist in the same project.
pub(crate) async fn flag_in_environment(
    conn: &mut AnyConnection,
    flag_id: &str,
    environment_id: &str,
) -> StoreResult<Option<Scope>> {
    Ok(sqlx::query_as(
        "SELECT p.organization_id, e.protected FROM flags f \
         JOIN projects p ON p.id = f.project_id \
         JOIN environments e ON e.project_id = f.project_id \
         WHERE f.id = $1 AND e.id = $2",
    )
    .bind(flag_id)
    .bind(environment_id)
    .fetch_optional(conn)
    .await?)
}

/// Whether any of these flags is enabled in a protected environment (optionally: in
/// this one environment only).
pub(crate) async fn any_enabled_in_protected(
    conn: &mut AnyConnection,
    flag_ids: &[String],
    environment_id: Option<&str>,
) -> StoreResult<bool> {
    for chunk in flag_ids.chunks(200) {
        let mut sql = format!(
            "SELECT COUNT(*) FROM flag_configs c JOIN environments e ON e.id = c.environment_id \
             WHERE c.enabled = 1 AND e.protected = 1 AND {}",
            super::in_list("c.flag_id", 1, chunk.len())
        );
        if environment_id.is_some() {
            sql.push_str(&format!(" AND e.id = ${}", chunk.len() + 1));
        }
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        if let Some(env) = environment_id {
            q = q.bind(env);
        }
        if q.fetch_one(&mut *conn).await? > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The keys of the protected environments where the flag is enabled.
pub(crate) async fn protected_enabled_environments(
    conn: &mut AnyConnection,
    flag_id: &str,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT e.key FROM flag_configs c JOIN environments e ON e.id = c.environment_id \
         WHERE c.flag_id = $1 AND c.enabled = 1 AND e.protected = 1 ORDER BY e.key",
    )
    .bind(flag_id)
    .fetch_all(conn)
    .await?)
}
