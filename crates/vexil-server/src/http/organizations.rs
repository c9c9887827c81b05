//! `/api/v1/organizations`: list, create, get, update (merge patch), delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, Page, Pagination, Query, RequestMeta, with_etag};
use super::patch::{Patch, check_comment, check_key, check_name};
use crate::access::{Principal, Role, Subject};
use crate::audit::Actor;
use crate::store::organizations::{self, Organization};
use crate::store::{Store, audit, new_id, now_rfc3339, projects, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations",
            get(list_organizations).post(create_organization),
        )
        .route(
            "/api/v1/organizations/{id}",
            get(get_organization)
                .patch(update_organization)
                .delete(delete_organization),
        )
}

#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations", params(("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of organizations"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn list_organizations(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Organization>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    // Only the caller's organizations (all of them for the instance token).
    let visible: Option<Vec<String>> = principal
        .organizations(&mut conn)
        .await?
        .map(|orgs| orgs.into_iter().map(|(org, _)| org).collect());
    let (items, total) =
        organizations::list(&mut conn, visible.as_deref(), p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrganization {
    key: String,
    name: Option<String>,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations", request_body(content = Object, description = "JSON; unknown fields are rejected"), responses((status = 201, description = "Created; ETag carries the version"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 403, description = "A service token (bound to its organization)"), (status = 409, description = "Duplicate key"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_organization(
    State(store): State<Arc<Store>>,
    actor: Actor,
    principal: Principal,
    mut meta: RequestMeta,
    Json(body): Json<CreateOrganization>,
) -> ApiResult<Response> {
    if let Subject::Service { .. } = principal.subject {
        return Err(ApiError::Forbidden(
            "a service token works within its organization; it cannot create organizations".into(),
        ));
    }
    if principal.token_id.is_some() && principal.cap < Role::Admin {
        return Err(ApiError::Forbidden(
            "a personal token capped below admin cannot create organizations".into(),
        ));
    }
    check_key("key", &body.key)?;
    check_comment(body.comment.as_deref())?;
    let name = body.name.unwrap_or_else(|| body.key.clone());
    check_name("name", &name)?;
    let now = now_rfc3339();
    let org = Organization {
        id: new_id(),
        key: body.key,
        name,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut tx = store.write().await?;
    if organizations::get_by_key(tx.conn(), &org.key)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            format!("organization '{}' already exists", org.key),
            json!({"key": org.key}),
        ));
    }
    organizations::insert(tx.conn(), &org).await?;
    meta.organization_id = Some(org.id.clone());
    // Whoever creates an organization owns it (the instance token needs no membership).
    if let Some(user_id) = principal.user_id() {
        users::insert_membership(
            tx.conn(),
            &org.id,
            user_id,
            Role::Owner.as_str(),
            &org.created_at,
        )
        .await?;
    }
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "organization.create",
            resource_type: "organization",
            resource_id: &org.id,
            before: None,
            after: Some(json!(org)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, with_etag(org.version, &org)).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)), responses((status = 200, description = "Found; ETag carries the version"), (status = 404, description = "Unknown id"), (status = 401, description = "Missing or invalid token")))]
pub(crate) async fn get_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = store.read().await?;
    let org = organizations::get(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &id))?;
    Ok(with_etag(org.version, &org))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizationChanges {
    name: String,
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), request_body(content = Object, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"), responses((status = 200, description = "Updated"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 412, description = "If-Match does not match the current version")))]
pub(crate) async fn update_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let mut tx = store.write().await?;
    let before = organizations::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &id))?;
    if_match.check(before.version)?;
    let changes: OrganizationChanges = patch.apply(
        json!({"name": before.name}),
        &["key"],
        &json!({"key": before.key}),
    )?;
    check_name("name", &changes.name)?;
    let after = Organization {
        name: changes.name,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    organizations::update(tx.conn(), &after).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "organization.update",
            resource_type: "organization",
            resource_id: &id,
            before: Some(json!(before)),
            after: Some(json!(after)),
            comment: patch.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(after.version, &after))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")), responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown id"), (status = 409, description = "Still referenced or not empty; `details` says by what"), (status = 412, description = "Version mismatch")))]
pub(crate) async fn delete_organization(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let org = organizations::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &id))?;
    if_match.check(org.version)?;
    let n = projects::count_in_organization(tx.conn(), &id).await?;
    if n > 0 {
        return Err(ApiError::conflict(
            format!(
                "organization '{}' still has {n} project(s); delete them first",
                org.key
            ),
            json!({"projects": n}),
        ));
    }
    organizations::delete(tx.conn(), &id).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "organization.delete",
            resource_type: "organization",
            resource_id: &id,
            before: Some(json!(org)),
            after: None,
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
