//! Segments of a project: list, create, update, delete. A segment is validated by
//! `vexil-core` against the other segments of its project (see [`definition`]), and every
//! change bumps the ruleset version of every environment of the project, since all of them
//! see the segment.

mod definition;

use serde::Deserialize;
use serde_json::json;
use vexil_core::{SegmentDef, SegmentRule};

use self::definition::{check_bounds, validate_in_project};
use super::Change;
use super::access::require_admin_for;
use super::fields::assign_rule_ids;
use super::fields::{Patch, check_comment, check_description, check_key, check_name};
use super::{At, By, Error, Result, load, load_at, remove, unchanged, update_in};
use crate::access::Principal;
use crate::audit::Action;
use crate::store::projects::Project;
use crate::store::segments::{self, Segment};
use crate::store::{Conn, Record as _, Store, WriteTx, environments, new_id, now_rfc3339};

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Segment>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    Ok(segments::list(&mut conn, project_id, limit, offset).await?)
}

/// What refers to a segment: flag configurations, then other segments.
pub(crate) async fn used_by(store: &Store, segment: &Segment) -> Result<Vec<segments::Referrer>> {
    let mut conn = store.read().await?;
    Ok(segments::referrers(&mut conn, &segment.project_id, &segment.key).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "beta-testers", "name": "Beta testers", "included": ["user-1"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}]}))]
pub(crate) struct NewSegment {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    key: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    description: String,
    /// Targeting keys always in the segment.
    #[serde(default)]
    included: Vec<String>,
    /// Targeting keys never in the segment (unless included).
    #[serde(default)]
    excluded: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::schemas::SegmentRule>)]
    rules: Vec<SegmentRule>,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

impl NewSegment {
    /// Checks the input and makes it a new segment (rules without ids yet), plus the
    /// comment for the audit entry.
    pub(crate) fn into_segment(self, project_id: String) -> Result<(Segment, Option<String>)> {
        check_key("key", &self.key)?;
        let name = self.name.unwrap_or_else(|| self.key.clone());
        check_fields(&name, &self.description)?;
        check_comment(self.comment.as_deref())?;
        let definition = SegmentDef {
            included: self.included,
            excluded: self.excluded,
            rules: self.rules,
        };
        check_bounds(&definition)?;
        let now = now_rfc3339();
        let segment = Segment {
            id: new_id(),
            project_id,
            key: self.key,
            name,
            description: self.description,
            definition,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        Ok((segment, self.comment))
    }
}

pub(crate) async fn create(
    store: &Store,
    by: &By,
    project_id: &str,
    input: NewSegment,
) -> Result<Segment> {
    let (segment, comment) = input.into_segment(project_id.to_owned())?;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    let segment = create_in(tx.conn(), by.because(comment.as_deref()), segment).await?;
    tx.commit().await?;
    Ok(segment)
}

/// [`create`] inside the caller's transaction, from a checked new segment.
pub(crate) async fn create_in(
    conn: &mut Conn,
    change: Change<'_>,
    mut segment: Segment,
) -> Result<Segment> {
    let (project_id, key) = (segment.project_id.clone(), segment.key.clone());
    if segments::get_by_key(conn, &project_id, &key)
        .await?
        .is_some()
    {
        let message = format!("segment '{key}' already exists");
        return Err(Error::conflict(message, json!({"key": key})));
    }
    assign_rule_ids(&mut segment.definition.rules, &[], new_id);
    validate_in_project(conn, &project_id, &key, &segment.definition).await?;
    segments::insert(conn, &segment).await?;
    change
        .created(conn, Action::SegmentCreate, &segment.id, &segment)
        .await?;
    bump_rulesets(conn, &segment).await?;
    Ok(segment)
}

/// The editable fields after a merge patch; `null` resets a list (or the description).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentChanges {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    included: Vec<String>,
    #[serde(default)]
    excluded: Vec<String>,
    #[serde(default)]
    rules: Vec<SegmentRule>,
}

/// `before` with `patch` applied and checked, at the next version (rules without ids yet).
fn patched(before: &Segment, patch: &Patch) -> Result<Segment> {
    let d = &before.definition;
    let changes: SegmentChanges = patch.apply(
        json!({"name": before.name, "description": before.description,
               "included": d.included, "excluded": d.excluded, "rules": d.rules}),
        &["key", "project_id", "id"],
        &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
    )?;
    check_fields(&changes.name, &changes.description)?;
    let definition = SegmentDef {
        included: changes.included,
        excluded: changes.excluded,
        rules: changes.rules,
    };
    check_bounds(&definition)?;
    Ok(Segment {
        name: changes.name,
        description: changes.description,
        definition,
        ..before.next_version()
    })
}

pub(crate) async fn update(
    store: &Store,
    principal: &Principal,
    by: &By,
    at: At<'_>,
    patch: &Patch,
) -> Result<Segment> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let before: Segment = load_at(tx.conn(), id, expected).await?;
    let change = by.because(patch.comment.as_deref());
    let after = update_in_tx(tx.conn(), principal, change, &before, patch).await?;
    tx.commit().await?;
    Ok(after)
}

/// [`update`] inside the caller's transaction; `before` itself when nothing changes.
pub(crate) async fn update_in_tx(
    conn: &mut Conn,
    principal: &Principal,
    change: Change<'_>,
    before: &Segment,
    patch: &Patch,
) -> Result<Segment> {
    let before = before.clone();
    let mut after = patched(&before, patch)?;
    assign_rule_ids(
        &mut after.definition.rules,
        &before.definition.rules,
        new_id,
    );
    if unchanged(&before, &after) {
        return Ok(before);
    }
    let serves_differently = after.definition != before.definition;
    let users = match serves_differently {
        true => segments::protected_users(conn, &before.project_id, &before.key).await?,
        false => Vec::new(),
    };
    let what = users.first().map(|(flag, env)| {
        format!(
            "segment '{}' decides what flag '{flag}' serves in protected environment '{env}'{}",
            before.key,
            match users.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        )
    });
    require_admin_for(conn, principal, &change.by.meta, what).await?;
    validate_in_project(conn, &after.project_id, &after.key, &after.definition).await?;
    update_in(conn, change, &before, &after, Action::SegmentUpdate).await?;
    bump_rulesets(conn, &after).await?;
    Ok(after)
}

/// Deletes a segment that no flag configuration or segment references.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    remove(store, by, at, Action::SegmentDelete, unless_referenced).await
}

/// Refuses while a configuration or segment references the segment; else every
/// environment sees it go.
pub(crate) async fn unless_referenced(tx: &mut WriteTx<'_>, segment: &Segment) -> Result<()> {
    let referrers = segments::referrers(tx.conn(), &segment.project_id, &segment.key).await?;
    if !referrers.is_empty() {
        return Err(Error::conflict(
            format!(
                "segment '{}' is still used by {} flag configuration(s) or segment(s); \
                 remove those references first",
                segment.key,
                referrers.len()
            ),
            json!({"referrers": referrers}),
        ));
    }
    bump_rulesets(tx.conn(), segment).await
}

/// A new ruleset version for every environment of the segment's project, naming it: all
/// of them see the segment.
async fn bump_rulesets(conn: &mut Conn, segment: &Segment) -> Result<()> {
    let changed = environments::RulesetChange::Segment(&segment.key);
    environments::bump_project_rulesets(conn, &segment.project_id, changed).await?;
    Ok(())
}

fn check_fields(name: &str, description: &str) -> Result<()> {
    check_name("name", name)?;
    check_description("description", description)
}
