//! Segment queries. A segment's evaluable part (`included`, `excluded`, `rules`) is stored
//! as one JSON document, the `SegmentDef` of `vexil-core`; [`referrers`] finds what still
//! uses a segment (flag configurations of any environment, other segments).

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use vexil_core::{Op, SegmentDef};

use super::StoreResult;

#[derive(Debug, Clone, FromRow)]
pub(crate) struct SegmentRow {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) definition: String,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// A segment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000006", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "key": "beta-testers", "name": "Beta testers", "description": "", "included": ["user-1"], "excluded": [],
    "rules": [{"id": "s1", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}],
    "version": 2, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct Segment {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(flatten)]
    #[schema(value_type = crate::schemas::SegmentDef)]
    pub(crate) definition: SegmentDef,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl TryFrom<SegmentRow> for Segment {
    type Error = super::StoreError;
    fn try_from(r: SegmentRow) -> StoreResult<Segment> {
        Ok(Segment {
            definition: serde_json::from_str(&r.definition)?,
            id: r.id,
            project_id: r.project_id,
            key: r.key,
            name: r.name,
            description: r.description,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, project_id, key, name, description, definition, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, s: &Segment) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO segments (id, project_id, key, name, description, definition, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.key)
    .bind(&s.name)
    .bind(&s.description)
    .bind(serde_json::to_string(&s.definition)?)
    .bind(s.version)
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn update(conn: &mut AnyConnection, s: &Segment) -> StoreResult<()> {
    sqlx::query(
        "UPDATE segments SET name = $1, description = $2, definition = $3, version = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(&s.name)
    .bind(&s.description)
    .bind(serde_json::to_string(&s.definition)?)
    .bind(s.version)
    .bind(&s.updated_at)
    .bind(&s.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Segment>> {
    let sql = format!("SELECT {COLUMNS} FROM segments WHERE id = $1");
    let row: Option<SegmentRow> = crate::store::fetch_opt(conn, sql, &[id]).await?;
    row.map(Segment::try_from).transpose()
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Option<Segment>> {
    let sql = format!("SELECT {COLUMNS} FROM segments WHERE project_id = $1 AND key = $2");
    let row: Option<SegmentRow> = crate::store::fetch_opt(conn, sql, &[project_id, key]).await?;
    row.map(Segment::try_from).transpose()
}

pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Segment>, i64)> {
    let query = (COLUMNS, "FROM segments WHERE project_id = $1", "key");
    let (rows, total): (Vec<SegmentRow>, i64) =
        super::fetch_page(conn, query, &[project_id.to_owned()], limit, offset).await?;
    let items = rows
        .into_iter()
        .map(Segment::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((items, total))
}

/// Every segment of a project as `(key, definition)`, for building rulesets.
pub(crate) async fn definitions(
    conn: &mut AnyConnection,
    project_id: &str,
) -> StoreResult<Vec<(String, SegmentDef)>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, definition FROM segments WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(conn)
            .await?;
    rows.into_iter()
        .map(|(k, d)| Ok((k, serde_json::from_str(&d)?)))
        .collect()
}

/// Something that uses a segment through an `in_segment` clause, which keeps the segment
/// from being deleted. Serialized as `{"flag", "environment"}` or `{"segment"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum Referrer {
    /// A rule of this flag's configuration in this environment (both keys).
    Flag { flag: String, environment: String },
    /// A rule of another segment of the project.
    Segment { segment: String },
}

/// Everything in the project that refers to segment `key`: flag configurations first
/// (by flag, then environment key), then segments (by key).
pub(crate) async fn referrers(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Vec<Referrer>> {
    let mut out = Vec::new();
    for (flag, environment, config) in configs(conn, project_id, false).await? {
        if config_refers_to(&config, key) {
            out.push(Referrer::Flag { flag, environment });
        }
    }
    let mut segments = definitions(conn, project_id).await?;
    segments.sort_by(|a, b| a.0.cmp(&b.0));
    for (segment, def) in segments {
        if segment != key && segment_refers_to(&def, key) {
            out.push(Referrer::Segment { segment });
        }
    }
    Ok(out)
}

/// The enabled flag configurations in protected environments whose rules use segment
/// `key`, directly or through other segments: `(flag key, environment key)`. What they
/// serve changes with the segment.
pub(crate) async fn protected_users(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Vec<(String, String)>> {
    // The segment and every segment that includes it, to a fixed point.
    let definitions = definitions(conn, project_id).await?;
    let mut reach = vec![key.to_owned()];
    loop {
        let before = reach.len();
        for (segment, def) in &definitions {
            if !reach.contains(segment)
                && referenced_segments(def).any(|k| reach.iter().any(|r| r == k))
            {
                reach.push(segment.clone());
            }
        }
        if reach.len() == before {
            break;
        }
    }
    let mut out = Vec::new();
    for (flag, environment, config) in configs(conn, project_id, true).await? {
        if reach.iter().any(|k| config_refers_to(&config, k)) {
            out.push((flag, environment));
        }
    }
    Ok(out)
}

/// The project's flag configurations as `(flag key, environment key, document)`, by flag
/// then environment; with `enabled_in_protected`, only those enabled in protected
/// environments. Configurations are JSON text, so their clauses are searched by the
/// caller rather than in SQL, which keeps one query text for both backends.
async fn configs(
    conn: &mut AnyConnection,
    project_id: &str,
    enabled_in_protected: bool,
) -> StoreResult<Vec<(String, String, Value)>> {
    let only = if enabled_in_protected {
        " AND c.enabled = 1 AND e.protected = 1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT f.key AS flag_key, e.key AS environment_key, c.config AS config \
         FROM flag_configs c JOIN flags f ON f.id = c.flag_id \
         JOIN environments e ON e.id = c.environment_id \
         WHERE f.project_id = $1{only} ORDER BY f.key, e.key"
    );
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter()
        .map(|(flag, env, config)| Ok((flag, env, serde_json::from_str(&config)?)))
        .collect()
}

/// Whether a flag configuration document has a rule clause `in_segment` naming `key`. Read
/// as loose JSON so that this check does not depend on every detail of the config format.
fn config_refers_to(config: &Value, key: &str) -> bool {
    fn as_array(v: &Value) -> &[Value] {
        v.as_array().map_or(&[], Vec::as_slice)
    }
    as_array(&config["rules"])
        .iter()
        .flat_map(|rule| as_array(&rule["clauses"]))
        .filter(|clause| clause["op"] == "in_segment")
        .any(|clause| as_array(&clause["values"]).iter().any(|v| v == key))
}

/// Whether a segment has a rule clause `in_segment` naming `key`.
pub(crate) fn segment_refers_to(def: &SegmentDef, key: &str) -> bool {
    referenced_segments(def).any(|k| k == key)
}

/// The segment keys a segment's rules name through `in_segment`, with duplicates.
pub(crate) fn referenced_segments(def: &SegmentDef) -> impl Iterator<Item = &str> {
    def.rules
        .iter()
        .flat_map(|r| &r.clauses)
        .filter(|c| c.op == Op::InSegment)
        .flat_map(|c| &c.values)
        .filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_in_segment_clauses_in_flag_configs() {
        let config = json!({"enabled": true, "rules": [
            {"clauses": [{"attribute": "email", "op": "ends_with", "values": ["beta"]}], "serve": {"variation": "on"}},
            {"clauses": [{"op": "in_segment", "values": ["other", "beta"]}], "serve": {"variation": "on"}}
        ]});
        assert!(config_refers_to(&config, "beta"));
        assert!(!config_refers_to(&config, "gamma"));
        assert!(!config_refers_to(&json!({"rules": "junk"}), "beta"));
    }
}
