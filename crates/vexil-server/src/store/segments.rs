//! Segment queries. A segment's evaluable part (`included`, `excluded`, `rules`) is stored
//! as one JSON document, the `SegmentDef` of `vexil-core`.

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use vexil_core::SegmentDef;

use super::StoreResult;

#[derive(Debug, Clone, FromRow)]
pub struct SegmentRow {
    pub id: String,
    pub project_id: String,
    pub key: String,
    pub name: String,
    pub description: String,
    pub definition: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A segment as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub id: String,
    pub project_id: String,
    pub key: String,
    pub name: String,
    pub description: String,
    #[serde(flatten)]
    pub definition: SegmentDef,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
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

pub async fn insert(conn: &mut AnyConnection, s: &Segment) -> StoreResult<()> {
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

pub async fn update(conn: &mut AnyConnection, s: &Segment) -> StoreResult<()> {
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

pub async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Segment>> {
    let sql = format!("SELECT {COLUMNS} FROM segments WHERE id = $1");
    let row: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Segment::try_from).transpose()
}

pub async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Segment>, i64)> {
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM segments WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM segments WHERE project_id = $1 ORDER BY key LIMIT $2 OFFSET $3"
    );
    let rows: Vec<SegmentRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(project_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(Segment::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((items, total))
}

/// Every segment of a project as `(key, definition)`, for building rulesets.
pub async fn definitions(
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

pub async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM segments WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
