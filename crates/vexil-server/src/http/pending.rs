//! Release control over HTTP: scheduled changes (`…/scheduled-changes`) and change requests
//! (`…/change-requests`, approve, reject, apply), per flag and environment and per project.
//! The operations are in `manage::pending`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, OptionalJson, Page, Pagination, Query};
use crate::manage::pending::{
    self, ChangeRequest, Decision, Listing, NewPending, ReviewInput, ScheduledChange, View,
};
use crate::store::Store;

pub(crate) fn router() -> Router<AppState> {
    let at = "/api/v1/flags/{flag_id}/environments/{env_id}";
    Router::new()
        .route(
            &format!("{at}/scheduled-changes"),
            get(list_scheduled).post(create_scheduled),
        )
        .route(
            "/api/v1/projects/{project_id}/scheduled-changes",
            get(project_scheduled),
        )
        .route(
            "/api/v1/scheduled-changes/{id}",
            get(get_scheduled).delete(cancel_scheduled),
        )
        .route(
            &format!("{at}/change-requests"),
            get(list_requests).post(create_request),
        )
        .route(
            "/api/v1/projects/{project_id}/change-requests",
            get(project_requests),
        )
        .route(
            "/api/v1/change-requests/{id}",
            get(get_request).delete(cancel_request),
        )
        .route(
            "/api/v1/change-requests/{id}/approve",
            post(approve_request),
        )
        .route("/api/v1/change-requests/{id}/reject", post(reject_request))
        .route("/api/v1/change-requests/{id}/apply", post(apply_request))
}

/// The filters and window of a listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListPending {
    status: Option<String>,
    environment_id: Option<String>,
    #[serde(default = "crate::manage::fields::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

async fn listing<T: View>(
    store: &Store,
    place: Listing<'_>,
    q: &ListPending,
) -> ApiResult<Json<Page<T>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let status = pending::parse_status(q.status.as_deref())?;
    let (items, total) = pending::list(store, place, status, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

/// A flag in an environment, as the paths name them.
type FlagEnv = Aimed<(String, String)>;
/// A page of held changes.
type Listed<T> = ApiResult<Json<Page<T>>>;
/// A change request after a step.
type Reviewed = ApiResult<Json<ChangeRequest>>;

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes", tag = "release control",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id")),
    request_body(content = NewPending, description = "`execute_at` (RFC 3339, in the future, within 5 years) is required; the patch is validated now and again when applied"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Scheduled", body = ScheduledChange),
        (status = 409, description = "`approval_required`: the environment requires approval (propose a change request with `execute_at` instead)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_scheduled(
    a: FlagEnv,
    Json(body): Json<NewPending>,
) -> ApiResult<Response> {
    let made = pending::schedule(&a.store, &a.principal, &a.by, a.pair(), body).await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes", tag = "release control",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"),
        ("status" = Option<String>, Query, description = "pending, applied, failed or cancelled"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The flag's scheduled changes in the environment, soonest first", body = Page<ScheduledChange>)))]
pub(crate) async fn list_scheduled(a: FlagEnv, q: Query<ListPending>) -> Listed<ScheduledChange> {
    listing(&a.store, Listing::Flag(&a.id.0, &a.id.1), &q.0).await
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/scheduled-changes", tag = "release control",
    params(("project_id" = String, Path, description = "Project id"),
        ("status" = Option<String>, Query, description = "pending, applied, failed or cancelled"),
        ("environment_id" = Option<String>, Query, description = "Only this environment's"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The project's scheduled changes, soonest first", body = Page<ScheduledChange>)))]
pub(crate) async fn project_scheduled(
    store: Db,
    id: Id,
    q: Query<ListPending>,
) -> Listed<ScheduledChange> {
    listing(
        &store,
        Listing::Project(&id, q.0.environment_id.as_deref()),
        &q.0,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/scheduled-changes/{id}", tag = "release control",
    params(("id" = String, Path, description = "Scheduled change id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = ScheduledChange)))]
pub(crate) async fn get_scheduled(store: Db, id: Id) -> ApiResult<Json<ScheduledChange>> {
    Ok(Json(pending::get(&store, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/scheduled-changes/{id}", tag = "release control",
    params(("id" = String, Path, description = "Scheduled change id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Cancelled (kept, with status `cancelled`)", body = ScheduledChange),
        (status = 409, description = "Already applied, failed or cancelled", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn cancel_scheduled(a: Aimed) -> ApiResult<Json<ScheduledChange>> {
    Ok(Json(
        pending::cancel(&a.store, &a.principal, &a.by, &a.id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests", tag = "release control",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id")),
    request_body(content = NewPending, description = "The patch is validated now and again when applied; with `execute_at`, an approved request is applied at that time"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Proposed (status `open`)", body = ChangeRequest)))]
pub(crate) async fn create_request(
    a: FlagEnv,
    Json(body): Json<NewPending>,
) -> ApiResult<Response> {
    let made = pending::propose(&a.store, &a.principal, &a.by, a.pair(), body).await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests", tag = "release control",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"),
        ("status" = Option<String>, Query, description = "open, approved, applied, rejected, failed or cancelled"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The flag's change requests in the environment", body = Page<ChangeRequest>)))]
pub(crate) async fn list_requests(a: FlagEnv, q: Query<ListPending>) -> Listed<ChangeRequest> {
    listing(&a.store, Listing::Flag(&a.id.0, &a.id.1), &q.0).await
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/change-requests", tag = "release control",
    params(("project_id" = String, Path, description = "Project id"),
        ("status" = Option<String>, Query, description = "open, approved, applied, rejected, failed or cancelled"),
        ("environment_id" = Option<String>, Query, description = "Only this environment's"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The project's change requests", body = Page<ChangeRequest>)))]
pub(crate) async fn project_requests(
    store: Db,
    id: Id,
    q: Query<ListPending>,
) -> Listed<ChangeRequest> {
    listing(
        &store,
        Listing::Project(&id, q.0.environment_id.as_deref()),
        &q.0,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/change-requests/{id}", tag = "release control",
    params(("id" = String, Path, description = "Change request id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = ChangeRequest)))]
pub(crate) async fn get_request(store: Db, id: Id) -> ApiResult<Json<ChangeRequest>> {
    Ok(Json(pending::get(&store, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/change-requests/{id}", tag = "release control",
    params(("id" = String, Path, description = "Change request id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Cancelled, by its author or a member with the role the change needs", body = ChangeRequest),
        (status = 409, description = "Already applied, rejected, failed or cancelled", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn cancel_request(a: Aimed) -> ApiResult<Json<ChangeRequest>> {
    Ok(Json(
        pending::cancel(&a.store, &a.principal, &a.by, &a.id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/change-requests/{id}/approve", tag = "release control",
    params(("id" = String, Path, description = "Change request id")),
    request_body(content = Option<ReviewInput>, description = "An optional comment"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Approved at the configuration's current version", body = ChangeRequest),
        (status = 403, description = "The caller proposed it, or lacks the role the change needs", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Not open", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn approve_request(a: Aimed, body: OptionalJson<ReviewInput>) -> Reviewed {
    Ok(Json(
        pending::review(&a.store, &a.by, &a.id, Decision::Approve, body.0).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/change-requests/{id}/reject", tag = "release control",
    params(("id" = String, Path, description = "Change request id")),
    request_body(content = Option<ReviewInput>, description = "An optional comment"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Rejected (final)", body = ChangeRequest),
        (status = 403, description = "The caller proposed it, or lacks the role the change needs", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Not open", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn reject_request(a: Aimed, body: OptionalJson<ReviewInput>) -> Reviewed {
    Ok(Json(
        pending::review(&a.store, &a.by, &a.id, Decision::Reject, body.0).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/change-requests/{id}/apply", tag = "release control",
    params(("id" = String, Path, description = "Change request id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Applied: the configuration has a new version", body = ChangeRequest),
        (status = 403, description = "Only the author or an approver applies", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "Not approved; or `stale`: the configuration changed after the approval (the request is open again and needs a new approval)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn apply_request(a: Aimed) -> Reviewed {
    Ok(Json(pending::apply(&a.store, &a.by, &a.id).await?))
}
