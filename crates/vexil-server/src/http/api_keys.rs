//! API keys of the evaluation plane: `/api/v1/projects/{projectId}/api-keys` (list, create),
//! `DELETE /api/v1/api-keys/{id}` and `PATCH /api/v1/api-keys/{id}/revoke`. A key is bound
//! to one project and environment; its secret is shown once, in the creation response
//! (docs/concepts.md). The operations are in `manage::api_keys`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use serde::Serialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{CommentBody, Json, OptionalJson, Page, Pagination, Query};
use crate::manage::By;
use crate::manage::api_keys::{self, NewApiKey};
use crate::store::Store;
use crate::store::api_keys::ApiKey;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/api-keys",
            get(list_api_keys).post(create_api_key),
        )
        .route("/api/v1/api-keys/{id}", delete(delete_api_key))
        .route("/api/v1/api-keys/{id}/revoke", patch(revoke_api_key))
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/api-keys", tag = "API keys",
    params(("project_id" = String, Path, description = "Project id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of key records, newest first (never the secret or its hash)", body = Page<ApiKey>)))]
pub(crate) async fn list_api_keys(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let p = p.validate()?;
    let (items, total) = api_keys::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

/// The creation response: the record plus the secret, which no other response shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000007", "project_id": "0190e0a4-0000-7000-8000-000000000003",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "name": "web", "type": "client",
    "prefix": "vx_client_8fK2", "created_at": "2026-01-31T12:00:00.000Z",
    "created_by": "0190e0a4-0000-7000-8000-000000000002", "expires_at": null, "revoked_at": null,
    "last_used_at": null, "key": "vx_client_8fK2…"}))]
struct CreatedApiKey {
    #[serde(flatten)]
    record: ApiKey,
    key: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/api-keys", tag = "API keys",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewApiKey, description = "Unknown fields are rejected; `environment_id` must be of this project, `expires_at` (RFC 3339) in the future"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created: the key record plus `key`, the full secret, shown in this response only", body = CreatedApiKey),
        (status = 400, description = "Invalid input, or an environment of another project; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_api_key(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewApiKey>,
) -> ApiResult<Response> {
    let (record, key) = api_keys::create(&store, &by, &project_id, body).await?;
    let created = CreatedApiKey { record, key };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(patch, path = "/api/v1/api-keys/{id}/revoke", tag = "API keys",
    params(("id" = String, Path, description = "API key id")),
    request_body(content = Option<CommentBody>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Revoked (the key stops authenticating at once); unchanged when already revoked", body = ApiKey)))]
pub(crate) async fn revoke_api_key(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Json<ApiKey>> {
    let key = api_keys::revoke(&store, &by, &id, body.comment.as_deref()).await?;
    Ok(Json(key))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "API keys",
    params(("id" = String, Path, description = "API key id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 204, description = "Deleted (the key stops authenticating at once)")))]
pub(crate) async fn delete_api_key(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    by: By,
) -> ApiResult<StatusCode> {
    api_keys::delete(&store, &by, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
