//! Flag templates: a project's predefined flag shapes, keyed like flags; the definition
//! (type, variations, tags, flags, per-environment starting configurations) is one JSON
//! document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use vexil_core::{FlagType, Variation};

use super::StoreResult;
use super::flags::configs::Config;

/// What a template makes: everything of a flag but its key and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateDef {
    #[serde(rename = "type")]
    pub(crate) kind: FlagType,
    pub(crate) variations: Vec<Variation>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) client_side: bool,
    #[serde(default)]
    pub(crate) temporary: bool,
    /// Environment key → the configuration a new flag starts with there (others start as
    /// every new flag does: off).
    #[serde(default)]
    pub(crate) environments: BTreeMap<String, Config>,
}

/// A template as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000d", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "key": "release-toggle", "name": "Release toggle", "description": "Temporary; on for staff in development",
    "type": "boolean", "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
    "tags": ["release"], "client_side": false, "temporary": true,
    "environments": {"development": {"enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"},
        "targets": [], "rules": [], "prerequisites": [], "watch_events": []}},
    "version": 1, "created_at": "2026-02-01T08:30:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct Template {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub(crate) def: TemplateDef,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

#[derive(Debug, FromRow)]
struct Row {
    id: String,
    project_id: String,
    key: String,
    name: String,
    description: String,
    definition: String,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl Row {
    fn into_template(self) -> StoreResult<Template> {
        Ok(Template {
            id: self.id,
            project_id: self.project_id,
            key: self.key,
            name: self.name,
            description: self.description,
            def: serde_json::from_str(&self.definition)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, project_id, key, name, description, definition, version, created_at, updated_at";

pub(crate) async fn insert(conn: &mut AnyConnection, t: &Template) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flag_templates (id, project_id, key, name, description, definition, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.id)
    .bind(&t.project_id)
    .bind(&t.key)
    .bind(&t.name)
    .bind(&t.description)
    .bind(serde_json::to_string(&t.def)?)
    .bind(t.version)
    .bind(&t.created_at)
    .bind(&t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn update(conn: &mut AnyConnection, t: &Template) -> StoreResult<()> {
    sqlx::query(
        "UPDATE flag_templates SET name = $1, description = $2, definition = $3, version = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(&t.name)
    .bind(&t.description)
    .bind(serde_json::to_string(&t.def)?)
    .bind(t.version)
    .bind(&t.updated_at)
    .bind(&t.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Template>> {
    let sql = format!("SELECT {COLUMNS} FROM flag_templates WHERE id = $1");
    let row: Option<Row> = super::fetch_opt(conn, sql, &[id]).await?;
    row.map(Row::into_template).transpose()
}

pub(crate) async fn get_by_key(
    conn: &mut AnyConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Option<Template>> {
    let sql = format!("SELECT {COLUMNS} FROM flag_templates WHERE project_id = $1 AND key = $2");
    let row: Option<Row> = super::fetch_opt(conn, sql, &[project_id, key]).await?;
    row.map(Row::into_template).transpose()
}

/// A page of the project's templates, by key.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Template>, i64)> {
    let (rows, total): (Vec<Row>, i64) = super::fetch_page(
        conn,
        (COLUMNS, "FROM flag_templates WHERE project_id = $1", "key"),
        &[project_id.to_owned()],
        limit,
        offset,
    )
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_template)
        .collect::<StoreResult<_>>()?;
    Ok((items, total))
}
