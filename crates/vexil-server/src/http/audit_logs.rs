//! The audit trail: `GET /api/v1/audit-logs` (newest first, filtered), `GET
//! /api/v1/audit-logs/{id}` and `GET /api/v1/audit-logs/verify`, which walks the hash chain.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Page, Pagination, Query};
use crate::access::Principal;
use crate::audit::AuditEntry;
use crate::manage;
use crate::store::{Store, audit};

pub(crate) fn router() -> Router<AppState> {
    // A literal segment outranks a parameter in axum's router, so `verify` never reaches
    // `get_audit_log` as an id, whatever the order of these routes.
    Router::new()
        .route("/api/v1/audit-logs", get(list_audit_logs))
        .route("/api/v1/audit-logs/verify", get(verify_audit_log))
        .route("/api/v1/audit-logs/{id}", get(get_audit_log))
}

/// Filters are exact matches; `since` is inclusive and `until` exclusive, so consecutive
/// windows neither overlap nor leave gaps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListAuditLogs {
    resource_type: Option<String>,
    resource_id: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    organization_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "audit logs",
    params(("resource_type" = Option<String>, Query, description = "Exact match, e.g. flag, flag_config, segment"),
        ("resource_id" = Option<String>, Query, description = "Exact match"),
        ("actor_id" = Option<String>, Query, description = "Exact match: the user's or token's id"),
        ("organization_id" = Option<String>, Query, description = "Exact match"),
        ("action" = Option<String>, Query, description = "Exact match, e.g. flag.kill_switch"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339 timestamp, inclusive"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339 timestamp, exclusive"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid,
        (status = 200, description = "A page of audit entries, newest first: those of the caller's organizations and the caller's own actions (the instance token sees all)", body = Page<AuditEntry>)))]
pub(crate) async fn list_audit_logs(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(q): Query<ListAuditLogs>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let stored = |field: &str, t: Option<String>| {
        t.map(|t| manage::audit_log::stored_time(field, &t))
            .transpose()
    };
    let filter = audit::Filter {
        since: stored("since", q.since)?,
        until: stored("until", q.until)?,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        actor_id: q.actor_id,
        action: q.action,
        organization_id: q.organization_id,
        visible_to: None,
    };
    let (items, total) =
        manage::audit_log::list(&store, &principal, filter, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(get, path = "/api/v1/audit-logs/{id}", tag = "audit logs",
    params(("id" = String, Path, description = "Audit entry id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = AuditEntry)))]
pub(crate) async fn get_audit_log(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<AuditEntry>> {
    let entry = manage::audit_log::get(&store, &principal, &id).await?;
    Ok(Json(entry))
}

#[utoipa::path(get, path = "/api/v1/audit-logs/verify", tag = "audit logs",
    params(("organization_id" = Option<String>, Query, description = "Only this organization's entries (you must be its admin); default: every organization you administer, or for the instance token the whole chain")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid,
        (status = 200, description = "The whole hash chain recomputed. For an organization's admin, `entries` counts that organization's entries (up to the first broken one), `head_hash` is the hash of its last entry and `first_broken` names a broken entry only if it is the organization's; the instance token sees the whole chain. Keep `head_hash` elsewhere to also detect removal of the tail", body = audit::Verification),
        (status = 403, description = "Not an admin of any organization (`forbidden`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn verify_audit_log(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(q): Query<VerifyScope>,
) -> ApiResult<Json<audit::Verification>> {
    Ok(Json(
        manage::audit_log::verify(&store, &principal, q.organization_id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyScope {
    organization_id: Option<String>,
}
