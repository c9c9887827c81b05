//! Flag queries: definitions (`flags`), the environment's ruleset built from them, and the
//! prerequisite references between flags. Per-environment configurations and their
//! revisions are in [`configs`].
//!
//! A flag's `variations` and `tags` are stored as JSON text; `kind` is the lowercase type
//! name (`boolean`, `string`, `number`, `json`).

pub(crate) mod configs;

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use vexil_core::{FlagDef, FlagType, Ruleset, Variation};

use super::{DbBool, StoreError, StoreResult, environments, segments};

pub(crate) use configs::{Config, FlagConfig, Revision};

/// A flag as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000005", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "key": "new-checkout", "name": "New checkout", "description": "", "type": "boolean",
    "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}], "tags": ["checkout"],
    "client_side": false, "temporary": true, "archived": false, "version": 1,
    "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-01-31T12:00:00.000Z"}))]
pub(crate) struct Flag {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::schemas::FlagType)]
    pub(crate) kind: FlagType,
    #[schema(value_type = Vec<crate::schemas::Variation>)]
    pub(crate) variations: Vec<Variation>,
    pub(crate) tags: Vec<String>,
    pub(crate) client_side: bool,
    pub(crate) temporary: bool,
    pub(crate) archived: bool,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

#[derive(Debug, FromRow)]
struct FlagRow {
    id: String,
    project_id: String,
    key: String,
    name: String,
    description: String,
    kind: String,
    variations: String,
    tags: String,
    #[sqlx(try_from = "DbBool")]
    client_side: bool,
    #[sqlx(try_from = "DbBool")]
    temporary: bool,
    #[sqlx(try_from = "DbBool")]
    archived: bool,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl TryFrom<FlagRow> for Flag {
    type Error = StoreError;
    fn try_from(r: FlagRow) -> StoreResult<Flag> {
        Ok(Flag {
            kind: parse_kind(&r.kind)?,
            variations: serde_json::from_str(&r.variations)?,
            tags: serde_json::from_str(&r.tags)?,
            id: r.id,
            project_id: r.project_id,
            key: r.key,
            name: r.name,
            description: r.description,
            client_side: r.client_side,
            temporary: r.temporary,
            archived: r.archived,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn parse_kind(kind: &str) -> StoreResult<FlagType> {
    match kind {
        "boolean" => Ok(FlagType::Boolean),
        "string" => Ok(FlagType::String),
        "number" => Ok(FlagType::Number),
        "json" => Ok(FlagType::Json),
        other => Err(StoreError::Corrupt(format!("unknown flag type '{other}'"))),
    }
}

const COLUMNS: &str = "id, project_id, key, name, description, kind, variations, tags, \
    client_side, temporary, archived, version, created_at, updated_at";

fn rows_to_flags(rows: Vec<FlagRow>) -> StoreResult<Vec<Flag>> {
    rows.into_iter().map(Flag::try_from).collect()
}

pub(crate) async fn insert(conn: &mut AnyConnection, f: &Flag) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flags (id, project_id, key, name, description, kind, variations, tags, \
         client_side, temporary, archived, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&f.id)
    .bind(&f.project_id)
    .bind(&f.key)
    .bind(&f.name)
    .bind(&f.description)
    .bind(f.kind.as_str())
    .bind(serde_json::to_string(&f.variations)?)
    .bind(serde_json::to_string(&f.tags)?)
    .bind(i64::from(f.client_side))
    .bind(i64::from(f.temporary))
    .bind(i64::from(f.archived))
    .bind(f.version)
    .bind(&f.created_at)
    .bind(&f.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes every mutable field (`key`, `kind`, `project_id` and `created_at` never change).
pub(crate) async fn update(conn: &mut AnyConnection, f: &Flag) -> StoreResult<()> {
    sqlx::query(
        "UPDATE flags SET name = $1, description = $2, variations = $3, tags = $4, client_side = $5, \
         temporary = $6, archived = $7, version = $8, updated_at = $9 WHERE id = $10",
    )
    .bind(&f.name)
    .bind(&f.description)
    .bind(serde_json::to_string(&f.variations)?)
    .bind(serde_json::to_string(&f.tags)?)
    .bind(i64::from(f.client_side))
    .bind(i64::from(f.temporary))
    .bind(i64::from(f.archived))
    .bind(f.version)
    .bind(&f.updated_at)
    .bind(&f.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Flag>> {
    let sql = format!("SELECT {COLUMNS} FROM flags WHERE id = $1");
    let row: Option<FlagRow> = crate::store::fetch_opt(conn, sql, &[id]).await?;
    row.map(Flag::try_from).transpose()
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Option<Flag>> {
    let sql = format!("SELECT {COLUMNS} FROM flags WHERE project_id = $1 AND key = $2");
    let row: Option<FlagRow> = crate::store::fetch_opt(conn, sql, &[project_id, key]).await?;
    row.map(Flag::try_from).transpose()
}

/// Every flag of a project (archived ones included), ordered by key.
pub(crate) async fn list_all(conn: &mut AnyConnection, project_id: &str) -> StoreResult<Vec<Flag>> {
    let sql = format!("SELECT {COLUMNS} FROM flags WHERE project_id = $1 ORDER BY key");
    let rows: Vec<FlagRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_all(conn)
        .await?;
    rows_to_flags(rows)
}

/// Ids of the projects with this key, in any organization (the Simple API names its
/// project by key alone).
pub(crate) async fn project_ids_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM projects WHERE key = $1 ORDER BY id")
            .bind(key)
            .fetch_all(conn)
            .await?,
    )
}

/// Sort orders of the flag list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum FlagSort {
    #[default]
    Key,
    KeyDesc,
    Name,
    NameDesc,
    CreatedAt,
    CreatedAtDesc,
    UpdatedAt,
    UpdatedAtDesc,
}

impl FlagSort {
    /// Parses `key`, `-key`, `name`, `created_at`, `updated_at` (each optionally `-`).
    pub(crate) fn parse(s: &str) -> Option<FlagSort> {
        Some(match s {
            "key" => FlagSort::Key,
            "-key" => FlagSort::KeyDesc,
            "name" => FlagSort::Name,
            "-name" => FlagSort::NameDesc,
            "created_at" => FlagSort::CreatedAt,
            "-created_at" => FlagSort::CreatedAtDesc,
            "updated_at" => FlagSort::UpdatedAt,
            "-updated_at" => FlagSort::UpdatedAtDesc,
            _ => return None,
        })
    }

    /// The ORDER BY clause; a constant, so never a place for injection.
    fn sql(self) -> &'static str {
        match self {
            FlagSort::Key => "key, id",
            FlagSort::KeyDesc => "key DESC, id DESC",
            FlagSort::Name => "name, key, id",
            FlagSort::NameDesc => "name DESC, key DESC, id DESC",
            FlagSort::CreatedAt => "created_at, id",
            FlagSort::CreatedAtDesc => "created_at DESC, id DESC",
            FlagSort::UpdatedAt => "updated_at, id",
            FlagSort::UpdatedAtDesc => "updated_at DESC, id DESC",
        }
    }
}

/// Filters of the flag list. Text matches are case-insensitive.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlagFilter {
    /// Substring of the key, name or description.
    pub(crate) q: Option<String>,
    /// One of the flag's tags.
    pub(crate) tag: Option<String>,
    pub(crate) kind: Option<FlagType>,
    /// Archived flags only (`true`) or non-archived flags only (`false`).
    pub(crate) archived: bool,
    /// `(environment_id, enabled)`: flags whose configuration there is (not) enabled.
    pub(crate) enabled_in: Option<(String, bool)>,
    pub(crate) sort: FlagSort,
}

#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FlagFilter {
    /// The WHERE clause (from constant fragments and numbered placeholders) and its binds.
    fn to_sql(&self, project_id: &str) -> (String, Vec<Bind>) {
        let mut binds = vec![
            Bind::Text(project_id.to_owned()),
            Bind::Int(i64::from(self.archived)),
        ];
        let mut sql = String::from("project_id = $1 AND archived = $2");
        if let Some(q) = &self.q {
            binds.push(Bind::Text(format!("%{}%", escape_like(&q.to_lowercase()))));
            let n = binds.len();
            sql.push_str(&format!(
                " AND (LOWER(key) LIKE ${n} ESCAPE '\\' OR LOWER(name) LIKE ${n} ESCAPE '\\' \
                 OR LOWER(description) LIKE ${n} ESCAPE '\\')"
            ));
        }
        if let Some(tag) = &self.tag {
            // Tags are a JSON array of strings: look for the tag's JSON text, quotes included.
            let quoted = serde_json::Value::String(tag.to_lowercase()).to_string();
            binds.push(Bind::Text(format!("%{}%", escape_like(&quoted))));
            sql.push_str(&format!(
                " AND LOWER(tags) LIKE ${} ESCAPE '\\'",
                binds.len()
            ));
        }
        if let Some(kind) = self.kind {
            binds.push(Bind::Text(kind.as_str().to_owned()));
            sql.push_str(&format!(" AND kind = ${}", binds.len()));
        }
        if let Some((env, enabled)) = &self.enabled_in {
            binds.push(Bind::Text(env.clone()));
            binds.push(Bind::Int(i64::from(*enabled)));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM flag_configs c WHERE c.flag_id = flags.id \
                 AND c.environment_id = ${} AND c.enabled = ${})",
                binds.len() - 1,
                binds.len()
            ));
        }
        (sql, binds)
    }
}

/// One page of a project's flags matching `filter`, and the total number matching.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    filter: &FlagFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Flag>, i64)> {
    let (filter_sql, binds) = filter.to_sql(project_id);
    let count_sql = format!("SELECT COUNT(*) FROM flags WHERE {filter_sql}");
    let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql));
    for b in &binds {
        count = match b {
            Bind::Text(s) => count.bind(s.clone()),
            Bind::Int(i) => count.bind(*i),
        };
    }
    let total = count.fetch_one(&mut *conn).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM flags WHERE {filter_sql} ORDER BY {} LIMIT ${} OFFSET ${}",
        filter.sort.sql(),
        binds.len() + 1,
        binds.len() + 2
    );
    let mut query = sqlx::query_as::<_, FlagRow>(AssertSqlSafe(sql));
    for b in &binds {
        query = match b {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    let rows = query.bind(limit).bind(offset).fetch_all(conn).await?;
    Ok((rows_to_flags(rows)?, total))
}

/// A flag that lists another as a prerequisite, in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Referrer {
    /// Key of the referring flag.
    pub(crate) flag: String,
    /// Key of the environment whose configuration holds the prerequisite.
    pub(crate) environment: String,
    #[serde(skip)]
    pub(crate) flag_id: String,
    #[serde(skip)]
    pub(crate) archived: bool,
}

/// Every (flag, environment) of the project whose configuration has `flag_key` as a
/// prerequisite, ordered by flag then environment key.
pub(crate) async fn referrers(
    conn: &mut AnyConnection,
    project_id: &str,
    flag_key: &str,
) -> StoreResult<Vec<Referrer>> {
    #[derive(FromRow)]
    struct Row {
        flag_id: String,
        flag_key: String,
        #[sqlx(try_from = "DbBool")]
        archived: bool,
        environment_key: String,
        config: String,
    }
    // The LIKE is a cheap pre-filter (it may over-match); the parsed config decides.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT f.id AS flag_id, f.key AS flag_key, f.archived, e.key AS environment_key, c.config \
         FROM flag_configs c JOIN flags f ON f.id = c.flag_id JOIN environments e ON e.id = c.environment_id \
         WHERE f.project_id = $1 AND f.key <> $2 AND c.config LIKE $3 ESCAPE '\\' \
         ORDER BY f.key, e.key",
    )
    .bind(project_id)
    .bind(flag_key)
    .bind(format!("%{}%", escape_like(flag_key)))
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let config: Config = serde_json::from_str(&row.config)?;
        if config.prerequisites.iter().any(|p| p.flag == flag_key) {
            out.push(Referrer {
                flag: row.flag_key,
                environment: row.environment_key,
                flag_id: row.flag_id,
                archived: row.archived,
            });
        }
    }
    Ok(out)
}

/// The full ruleset of an environment (docs/concepts.md), and the tracked event keys each
/// flag watches there: every flag of its project with its
/// configuration there (archived flags included, marked `archived`), and every segment.
/// `None` when the environment does not exist.
pub(crate) async fn load_ruleset(
    conn: &mut AnyConnection,
    environment_id: &str,
) -> StoreResult<Option<(Ruleset, BTreeMap<String, Vec<String>>)>> {
    let Some(env) = environments::get(conn, environment_id).await? else {
        return Ok(None);
    };
    let flags: BTreeMap<String, Flag> = list_all(conn, &env.project_id)
        .await?
        .into_iter()
        .map(|f| (f.id.clone(), f))
        .collect();
    let mut ruleset = Ruleset {
        version: u64::try_from(env.ruleset_version).unwrap_or(0),
        ..Ruleset::default()
    };
    let mut watching = BTreeMap::new();
    for (flag_id, config, version) in configs::raw_of_environment(conn, environment_id).await? {
        if let Some(flag) = flags.get(&flag_id) {
            ruleset
                .flags
                .insert(flag.key.clone(), config.to_def(flag, version));
            if !config.watch_events.is_empty() {
                watching.insert(flag.key.clone(), config.watch_events);
            }
        }
    }
    ruleset.segments = segments::definitions(conn, &env.project_id)
        .await?
        .into_iter()
        .collect();
    Ok(Some((ruleset, watching)))
}

/// Flag `key`'s definition in an environment, if the flag exists there.
pub(crate) async fn def_in_environment(
    conn: &mut AnyConnection,
    project_id: &str,
    environment_id: &str,
    key: &str,
) -> StoreResult<Option<FlagDef>> {
    let Some(flag) = get_by_key(conn, project_id, key).await? else {
        return Ok(None);
    };
    Ok(configs::get(conn, &flag.id, environment_id)
        .await?
        .map(|c| c.config.to_def(&flag, c.version)))
}

/// The part of an environment's ruleset needed to validate flag `key` as `def`: the flag,
/// every flag reachable through prerequisites (references, variations, cycles), the
/// project's segments, and — with `with_referrers` — the flags that name `key` as a
/// prerequisite. A few queries instead of loading the whole environment on every write.
pub(crate) async fn ruleset_around(
    conn: &mut AnyConnection,
    project_id: &str,
    environment_id: &str,
    key: &str,
    def: FlagDef,
    with_referrers: bool,
) -> StoreResult<Ruleset> {
    let mut ruleset = Ruleset::default();
    let mut queue: Vec<String> = def.prerequisites.iter().map(|p| p.flag.clone()).collect();
    if with_referrers {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT f.key, c.config FROM flag_configs c JOIN flags f ON f.id = c.flag_id \
             WHERE c.environment_id = $1 AND f.key <> $2 AND c.config LIKE $3 ESCAPE '\\'",
        )
        .bind(environment_id)
        .bind(key)
        .bind(format!("%{}%", escape_like(key)))
        .fetch_all(&mut *conn)
        .await?;
        for (other, config) in rows {
            let config: Config = serde_json::from_str(&config)?;
            if config.prerequisites.iter().any(|p| p.flag == key) {
                queue.push(other);
            }
        }
    }
    ruleset.flags.insert(key.to_owned(), def);
    while let Some(next) = queue.pop() {
        if ruleset.flags.contains_key(&next) {
            continue;
        }
        if let Some(found) = def_in_environment(conn, project_id, environment_id, &next).await? {
            queue.extend(found.prerequisites.iter().map(|p| p.flag.clone()));
            ruleset.flags.insert(next, found);
        }
    }
    ruleset.segments = segments::definitions(conn, project_id)
        .await?
        .into_iter()
        .collect();
    Ok(ruleset)
}
