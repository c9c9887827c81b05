//! Segments: `/api/v1/projects/{projectId}/segments` (list, create) and
//! `/api/v1/segments/{id}` (get, update, delete). A segment is validated by `vexil-core`
//! against the other segments of its project, and every change bumps the ruleset version of
//! every environment of the project, since all of them see the segment.

mod definition;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use vexil_core::{SegmentDef, SegmentRule};

use self::definition::{assign_rule_ids, check_bounds, validate_in_project};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, Page, Pagination, Query, RequestMeta, with_etag};
use super::patch::{Patch, check_comment, check_description, check_key, check_name};
use crate::audit::Actor;
use crate::store::segments::{self, Segment};
use crate::store::{Store, WriteTx, audit, environments, new_id, now_rfc3339, projects};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/segments",
            get(list_segments).post(create_segment),
        )
        .route(
            "/api/v1/segments/{id}",
            get(get_segment)
                .patch(update_segment)
                .delete(delete_segment),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/segments", tag = "segments", params(("project_id" = String, Path, description = "Parent id"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of segments"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project")))]
pub(crate) async fn list_segments(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Segment>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    projects::get(&mut conn, &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let (items, total) = segments::list(&mut conn, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSegment {
    key: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    included: Vec<String>,
    #[serde(default)]
    excluded: Vec<String>,
    #[serde(default)]
    rules: Vec<SegmentRule>,
    comment: Option<String>,
}

impl CreateSegment {
    /// Checks the request and makes it a new segment (rules without ids yet), plus the
    /// comment for the audit entry.
    fn into_segment(self, project_id: String) -> ApiResult<(Segment, Option<String>)> {
        check_key("key", &self.key)?;
        let name = self.name.unwrap_or_else(|| self.key.clone());
        check_fields(&name, &self.description, self.comment.as_deref())?;
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

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/segments", tag = "segments", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected: key, name?, description?, included?, excluded?, rules?, comment?"), responses((status = 201, description = "Created; every environment of the project gets a new ruleset version; ETag carries the version"), (status = 400, description = "Invalid input, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_segment(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    Json(body): Json<CreateSegment>,
) -> ApiResult<Response> {
    let (mut segment, comment) = body.into_segment(project_id)?;
    let (project_id, key) = (segment.project_id.clone(), segment.key.clone());
    let mut tx = store.write().await?;
    projects::get(tx.conn(), &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    if segments::get_by_key(tx.conn(), &project_id, &key)
        .await?
        .is_some()
    {
        let message = format!("segment '{key}' already exists");
        return Err(ApiError::conflict(message, json!({"key": key})));
    }
    assign_rule_ids(&mut segment.definition.rules, &[]);
    validate_in_project(tx.conn(), &project_id, &key, &segment.definition).await?;
    segments::insert(tx.conn(), &segment).await?;
    let change = Change::new(&actor, &meta, "segment.create", comment.as_deref());
    record(&mut tx, change, &segment, None, Some(&segment)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, with_etag(segment.version, &segment)).into_response())
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let segment = segments::get(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("segment", &id))?;
    Ok(with_etag(segment.version, &segment))
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
fn patched(before: &Segment, patch: &Patch) -> ApiResult<Segment> {
    let d = &before.definition;
    let changes: SegmentChanges = patch.apply(
        json!({"name": before.name, "description": before.description,
               "included": d.included, "excluded": d.excluded, "rules": d.rules}),
        &["key", "project_id", "id"],
        &json!({"key": before.key, "project_id": before.project_id, "id": before.id}),
    )?;
    check_fields(&changes.name, &changes.description, None)?;
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
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    })
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch of name, description, included, excluded, rules (`null` resets a list; key and project_id cannot change), plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated; every environment of the project gets a new ruleset version"), (status = 400, description = "Invalid input, or a definition invalid among the project's segments; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn update_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let before = segments::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("segment", &id))?;
    if_match.check(before.version)?;
    let mut after = patched(&before, &patch)?;
    assign_rule_ids(&mut after.definition.rules, &before.definition.rules);
    validate_in_project(tx.conn(), &after.project_id, &after.key, &after.definition).await?;
    segments::update(tx.conn(), &after).await?;
    let change = Change::new(&actor, &meta, "segment.update", patch.comment.as_deref());
    record(&mut tx, change, &after, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 400, description = "Malformed If-Match"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 409, description = "Still used by flag configurations or segments; `details.referrers` lists them"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_segment(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let segment = segments::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("segment", &id))?;
    if_match.check(segment.version)?;
    let referrers = segments::referrers(tx.conn(), &segment.project_id, &segment.key).await?;
    if !referrers.is_empty() {
        return Err(ApiError::conflict(
            format!(
                "segment '{}' is still used by {} flag configuration(s) or segment(s); \
                 remove those references first",
                segment.key,
                referrers.len()
            ),
            json!({"referrers": referrers}),
        ));
    }
    segments::delete(tx.conn(), &id).await?;
    let change = Change::new(&actor, &meta, "segment.delete", None);
    record(&mut tx, change, &segment, Some(&segment), None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who changed a segment, how and why: the parts of its audit entry beyond the documents.
struct Change<'a> {
    actor: &'a Actor,
    meta: &'a RequestMeta,
    action: &'static str,
    comment: Option<&'a str>,
}

impl<'a> Change<'a> {
    fn new(
        actor: &'a Actor,
        meta: &'a RequestMeta,
        action: &'static str,
        comment: Option<&'a str>,
    ) -> Self {
        Change {
            actor,
            meta,
            action,
            comment,
        }
    }
}

/// Records a change of `segment` in `tx`: its audit entry, and a new ruleset version for
/// every environment of the project.
async fn record(
    tx: &mut WriteTx<'_>,
    change: Change<'_>,
    segment: &Segment,
    before: Option<&Segment>,
    after: Option<&Segment>,
) -> ApiResult<()> {
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: change.actor,
            action: change.action,
            resource_type: "segment",
            resource_id: &segment.id,
            before: before.map(|s| json!(s)),
            after: after.map(|s| json!(s)),
            comment: change.comment,
            meta: change.meta,
        },
    )
    .await?;
    environments::bump_project_rulesets(
        tx.conn(),
        &segment.project_id,
        environments::RulesetChange::Segment(&segment.key),
    )
    .await?;
    Ok(())
}

fn check_fields(name: &str, description: &str, comment: Option<&str>) -> ApiResult<()> {
    check_name("name", name)?;
    check_description("description", description)?;
    check_comment(comment)
}
