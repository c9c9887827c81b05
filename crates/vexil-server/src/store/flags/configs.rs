//! Flag configuration queries: one configuration per (flag, environment), stored as a JSON
//! document with `enabled` denormalized into a column for filtering, and its revisions
//! (every version of the whole configuration, with actor and comment).

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use vexil_core::{FlagDef, FlagType, Prerequisite, Rule, Serve, Target, Variation};

use super::{Flag, list_all};
use crate::audit::Actor;
use crate::store::environments::{self, Environment};
use crate::store::{DbBool, StoreError, StoreResult, now_rfc3339};

/// The editable part of a flag's configuration in one environment (docs/concepts.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) enabled: bool,
    /// The variation served while disabled.
    pub(crate) off_variation: String,
    /// What is served when no target or rule matches.
    #[schema(value_type = crate::schemas::Serve)]
    pub(crate) fallthrough: Serve,
    #[serde(default)]
    #[schema(value_type = Vec<crate::schemas::Target>)]
    pub(crate) targets: Vec<Target>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::schemas::Rule>)]
    pub(crate) rules: Vec<Rule>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::schemas::Prerequisite>)]
    pub(crate) prerequisites: Vec<Prerequisite>,
    /// Tracked event keys attributed to the variation this configuration serves (insights).
    #[serde(default)]
    pub(crate) watch_events: Vec<String>,
}

impl Config {
    /// The configuration a new flag starts with (docs/concepts.md): disabled, off = `off` for
    /// booleans else the last variation, fallthrough = `on` for booleans else the first.
    /// A boolean flag without `on`/`off` variations falls back to first/last as well.
    pub(crate) fn initial(kind: FlagType, variations: &[Variation]) -> Config {
        let has = |k: &str| variations.iter().any(|v| v.key == k);
        let first = variations
            .first()
            .map(|v| v.key.clone())
            .unwrap_or_default();
        let last = variations.last().map(|v| v.key.clone()).unwrap_or_default();
        let boolean = kind == FlagType::Boolean;
        Config {
            enabled: false,
            off_variation: if boolean && has("off") {
                "off".into()
            } else {
                last
            },
            fallthrough: Serve::variation(if boolean && has("on") {
                "on".into()
            } else {
                first
            }),
            targets: Vec::new(),
            rules: Vec::new(),
            prerequisites: Vec::new(),
            watch_events: Vec::new(),
        }
    }

    /// The flag's evaluable definition with this configuration.
    pub(crate) fn to_def(&self, flag: &Flag, version: i64) -> FlagDef {
        FlagDef {
            kind: flag.kind,
            variations: flag.variations.clone(),
            enabled: self.enabled,
            off_variation: self.off_variation.clone(),
            fallthrough: self.fallthrough.clone(),
            targets: self.targets.clone(),
            rules: self.rules.clone(),
            prerequisites: self.prerequisites.clone(),
            client_side: flag.client_side,
            version: u64::try_from(version).unwrap_or(0),
            archived: flag.archived,
        }
    }
}

/// A flag's configuration in one environment, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"flag_id": "0190e0a4-0000-7000-8000-000000000005", "flag_key": "new-checkout",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "environment_key": "production",
    "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}, "targets": [],
    "rules": [{"id": "r1", "clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}],
    "serve": {"variation": "on"}}], "prerequisites": [], "version": 4, "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct FlagConfig {
    pub(crate) flag_id: String,
    pub(crate) flag_key: String,
    pub(crate) environment_id: String,
    pub(crate) environment_key: String,
    #[serde(flatten)]
    #[schema(value_type = crate::schemas::ConfigFields)]
    pub(crate) config: Config,
    pub(crate) version: i64,
    pub(crate) updated_at: String,
}

#[derive(Debug, FromRow)]
struct ConfigRow {
    flag_id: String,
    flag_key: String,
    environment_id: String,
    environment_key: String,
    #[sqlx(try_from = "DbBool")]
    enabled: bool,
    config: String,
    version: i64,
    updated_at: String,
}

impl TryFrom<ConfigRow> for FlagConfig {
    type Error = StoreError;
    fn try_from(r: ConfigRow) -> StoreResult<FlagConfig> {
        let mut config: Config = serde_json::from_str(&r.config)?;
        config.enabled = r.enabled;
        Ok(FlagConfig {
            flag_id: r.flag_id,
            flag_key: r.flag_key,
            environment_id: r.environment_id,
            environment_key: r.environment_key,
            config,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

const SELECT: &str = "SELECT c.flag_id, f.key AS flag_key, c.environment_id, \
    e.key AS environment_key, c.enabled, c.config, c.version, c.updated_at \
    FROM flag_configs c JOIN flags f ON f.id = c.flag_id JOIN environments e ON e.id = c.environment_id";

fn rows_to_configs(rows: Vec<ConfigRow>) -> StoreResult<Vec<FlagConfig>> {
    rows.into_iter().map(FlagConfig::try_from).collect()
}

pub(crate) async fn get(
    conn: &mut AnyConnection,
    flag_id: &str,
    environment_id: &str,
) -> StoreResult<Option<FlagConfig>> {
    let sql = format!("{SELECT} WHERE c.flag_id = $1 AND c.environment_id = $2");
    let row: Option<ConfigRow> =
        crate::store::fetch_opt(conn, sql, &[flag_id, environment_id]).await?;
    row.map(FlagConfig::try_from).transpose()
}

/// A flag's configurations in every environment, ordered by environment key.
pub(crate) async fn of_flag(
    conn: &mut AnyConnection,
    flag_id: &str,
) -> StoreResult<Vec<FlagConfig>> {
    select_where(conn, "c.flag_id = $1 ORDER BY e.key", flag_id).await
}

/// Every configuration of an environment, ordered by flag key.
pub(crate) async fn of_environment(
    conn: &mut AnyConnection,
    environment_id: &str,
) -> StoreResult<Vec<FlagConfig>> {
    select_where(conn, "c.environment_id = $1 ORDER BY f.key", environment_id).await
}

/// The configurations matching `filter` (with one parameter, `$1`) in its order.
async fn select_where(
    conn: &mut AnyConnection,
    filter: &str,
    param: &str,
) -> StoreResult<Vec<FlagConfig>> {
    let sql = format!("{SELECT} WHERE {filter}");
    let rows: Vec<ConfigRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(param)
        .fetch_all(conn)
        .await?;
    rows_to_configs(rows)
}

/// One page of an environment's configurations, ordered by flag key.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    environment_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<FlagConfig>, i64)> {
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM flag_configs WHERE environment_id = $1")
        .bind(environment_id)
        .fetch_one(&mut *conn)
        .await?;
    let sql = format!("{SELECT} WHERE c.environment_id = $1 ORDER BY f.key LIMIT $2 OFFSET $3");
    let rows: Vec<ConfigRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(environment_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?;
    Ok((rows_to_configs(rows)?, total))
}

/// Whether each of these flags is on, per environment: `(flag_id, environment_id, enabled)`
/// (the console's flag list shows a switch per environment for one page of flags).
pub(crate) async fn switches_of(
    conn: &mut AnyConnection,
    flag_ids: &[String],
) -> StoreResult<Vec<(String, String, bool)>> {
    let mut out = Vec::with_capacity(flag_ids.len() * 2);
    for chunk in flag_ids.chunks(200) {
        let placeholders = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT flag_id, environment_id, enabled FROM flag_configs WHERE flag_id IN ({placeholders})"
        );
        let mut query = sqlx::query_as::<_, (String, String, DbBool)>(AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for (flag, env, enabled) in query.fetch_all(&mut *conn).await? {
            out.push((flag, env, enabled.into()));
        }
    }
    Ok(out)
}

/// `(flag_id, config, version)` of every configuration of an environment.
pub(super) async fn raw_of_environment(
    conn: &mut AnyConnection,
    environment_id: &str,
) -> StoreResult<Vec<(String, Config, i64)>> {
    let rows: Vec<(String, DbBool, String, i64)> = sqlx::query_as(
        "SELECT flag_id, enabled, config, version FROM flag_configs WHERE environment_id = $1",
    )
    .bind(environment_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(id, enabled, text, version)| {
            let mut config: Config = serde_json::from_str(&text)?;
            config.enabled = enabled.into();
            Ok((id, config, version))
        })
        .collect()
}

/// Inserts a configuration and its first revision.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    c: &FlagConfig,
    actor: &Actor,
    comment: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flag_configs (flag_id, environment_id, enabled, config, version, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.flag_id)
    .bind(&c.environment_id)
    .bind(i64::from(c.config.enabled))
    .bind(serde_json::to_string(&c.config)?)
    .bind(c.version)
    .bind(&c.updated_at)
    .execute(&mut *conn)
    .await?;
    insert_revision(conn, c, actor, comment).await
}

/// Stores a new version of a configuration: the row, its revision, and a new ruleset
/// version for the environment.
pub(crate) async fn save(
    conn: &mut AnyConnection,
    c: &FlagConfig,
    actor: &Actor,
    comment: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE flag_configs SET enabled = $1, config = $2, version = $3, updated_at = $4 \
         WHERE flag_id = $5 AND environment_id = $6",
    )
    .bind(i64::from(c.config.enabled))
    .bind(serde_json::to_string(&c.config)?)
    .bind(c.version)
    .bind(&c.updated_at)
    .bind(&c.flag_id)
    .bind(&c.environment_id)
    .execute(&mut *conn)
    .await?;
    insert_revision(conn, c, actor, comment).await?;
    environments::bump_ruleset(
        conn,
        &c.environment_id,
        environments::RulesetChange::Flag(&c.flag_key),
    )
    .await
}

/// Creates the initial configuration (and revision 1) of every flag of the environment's
/// project in a newly created environment.
pub(crate) async fn create_for_environment(
    conn: &mut AnyConnection,
    env: &Environment,
    actor: &Actor,
) -> StoreResult<()> {
    for flag in list_all(conn, &env.project_id).await? {
        let config = FlagConfig {
            flag_id: flag.id.clone(),
            flag_key: flag.key.clone(),
            environment_id: env.id.clone(),
            environment_key: env.key.clone(),
            config: Config::initial(flag.kind, &flag.variations),
            version: 1,
            updated_at: env.created_at.clone(),
        };
        insert(conn, &config, actor, None).await?;
    }
    Ok(())
}

/// One stored version of a configuration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"version": 4, "config": {"enabled": true, "off_variation": "off",
    "fallthrough": {"variation": "on"}, "targets": [], "rules": [], "prerequisites": []},
    "actor": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "comment": "launch", "created_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct Revision {
    pub(crate) version: i64,
    pub(crate) config: Config,
    pub(crate) actor: Actor,
    pub(crate) comment: Option<String>,
    pub(crate) created_at: String,
}

#[derive(Debug, FromRow)]
struct RevisionRow {
    version: i64,
    config: String,
    actor_id: String,
    actor_name: String,
    comment: Option<String>,
    created_at: String,
}

impl TryFrom<RevisionRow> for Revision {
    type Error = StoreError;
    fn try_from(r: RevisionRow) -> StoreResult<Revision> {
        Ok(Revision {
            version: r.version,
            config: serde_json::from_str(&r.config)?,
            actor: Actor {
                id: r.actor_id,
                name: r.actor_name,
            },
            comment: r.comment,
            created_at: r.created_at,
        })
    }
}

async fn insert_revision(
    conn: &mut AnyConnection,
    c: &FlagConfig,
    actor: &Actor,
    comment: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flag_revisions (flag_id, environment_id, version, config, actor_id, actor_name, \
         comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.flag_id)
    .bind(&c.environment_id)
    .bind(c.version)
    .bind(serde_json::to_string(&c.config)?)
    .bind(&actor.id)
    .bind(&actor.name)
    .bind(comment)
    .bind(now_rfc3339())
    .execute(conn)
    .await?;
    Ok(())
}

const REVISION_COLUMNS: &str = "version, config, actor_id, actor_name, comment, created_at";

/// One page of a configuration's revisions, newest first.
pub(crate) async fn revisions(
    conn: &mut AnyConnection,
    flag_id: &str,
    environment_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Revision>, i64)> {
    let total = sqlx::query_scalar(
        "SELECT COUNT(*) FROM flag_revisions WHERE flag_id = $1 AND environment_id = $2",
    )
    .bind(flag_id)
    .bind(environment_id)
    .fetch_one(&mut *conn)
    .await?;
    let sql = format!(
        "SELECT {REVISION_COLUMNS} FROM flag_revisions WHERE flag_id = $1 AND environment_id = $2 \
         ORDER BY version DESC LIMIT $3 OFFSET $4"
    );
    let rows: Vec<RevisionRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(flag_id)
        .bind(environment_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(Revision::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((items, total))
}

pub(crate) async fn revision(
    conn: &mut AnyConnection,
    flag_id: &str,
    environment_id: &str,
    version: i64,
) -> StoreResult<Option<Revision>> {
    let sql = format!(
        "SELECT {REVISION_COLUMNS} FROM flag_revisions \
         WHERE flag_id = $1 AND environment_id = $2 AND version = $3"
    );
    let row: Option<RevisionRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(flag_id)
        .bind(environment_id)
        .bind(version)
        .fetch_optional(conn)
        .await?;
    row.map(Revision::try_from).transpose()
}
