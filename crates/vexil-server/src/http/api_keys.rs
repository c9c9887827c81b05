//! API keys of the evaluation plane: `/api/v1/projects/{projectId}/api-keys` (list, create),
//! `DELETE /api/v1/api-keys/{id}` and `PATCH /api/v1/api-keys/{id}/revoke`. A key is bound
//! to one project and environment; its secret is shown once, in the creation response, and
//! stored only as a SHA-256 hash with a visible prefix (DESIGN §2). The key ring reloads
//! after every committed write, so a revoke or delete takes effect at commit.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Page, Pagination, Query, RequestMeta};
use super::flag_configs::{CommentBody, OptionalJson};
use super::patch::{check_comment, check_name};
use crate::audit::{Actor, hash_secret};
use crate::keys::KeyKind;
use crate::store::api_keys::{self, ApiKey};
use crate::store::{Store, audit, environments, new_id, now_ms, now_rfc3339, projects};

/// How many characters of the secret every key record shows.
const PREFIX_LEN: usize = 12;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/api-keys",
            get(list_api_keys).post(create_api_key),
        )
        .route("/api/v1/api-keys/{id}", delete(delete_api_key))
        .route("/api/v1/api-keys/{id}/revoke", patch(revoke_api_key))
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/api-keys", tag = "API keys", params(("project_id" = String, Path, description = "Parent id"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of key records, newest first (never the secret or its hash)"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project")))]
pub(crate) async fn list_api_keys(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    projects::get(&mut conn, &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let (items, total) = api_keys::list(&mut conn, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    environment_id: String,
    expires_at: Option<String>,
    comment: Option<String>,
}

/// The creation response: the record plus the secret, which no other response shows.
#[derive(Debug, Serialize)]
struct CreatedApiKey {
    #[serde(flatten)]
    record: ApiKey,
    key: String,
}

impl CreateApiKey {
    /// Checks every field that needs no database; returns the kind and the normalized
    /// expiry, or a 400 naming each bad field.
    fn check(&self) -> ApiResult<(KeyKind, Option<String>)> {
        let mut fields = Map::new();
        let mut note = |result: ApiResult<()>| {
            if let Err(ApiError::Invalid { fields: f, .. }) = result {
                fields.extend(f);
            }
        };
        note(check_name("name", &self.name));
        note(check_comment(self.comment.as_deref()));
        let kind = KeyKind::parse(&self.kind);
        if kind.is_none() {
            note(Err(ApiError::invalid_field(
                "type",
                "must be one of server, client, mobile",
            )));
        }
        let expires_at = match self.expires_at.as_deref().map(expiry) {
            Some(Ok(at)) => Some(at),
            Some(Err(e)) => {
                note(Err(e));
                None
            }
            None => None,
        };
        match kind {
            Some(kind) if fields.is_empty() => Ok((kind, expires_at)),
            _ => Err(invalid(fields)),
        }
    }
}

/// An expiry as stored (fixed-width RFC 3339 UTC), if it is a timestamp in the future.
fn expiry(text: &str) -> ApiResult<String> {
    let ms = vexil_core::time::parse_rfc3339(text).ok_or_else(|| {
        ApiError::invalid_field(
            "expires_at",
            "must be an RFC 3339 timestamp such as 2030-01-01T00:00:00Z",
        )
    })?;
    if ms <= now_ms() {
        return Err(ApiError::invalid_field(
            "expires_at",
            "must be in the future",
        ));
    }
    Ok(vexil_core::time::format_rfc3339(ms))
}

/// A 400 listing several fields.
fn invalid(fields: Map<String, Value>) -> ApiError {
    let message = fields
        .iter()
        .map(|(field, problem)| format!("{field}: {}", problem.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Invalid { message, fields }
}

/// A new secret: the kind's prefix and 64 hex characters of randomness.
fn new_secret(kind: KeyKind) -> String {
    format!(
        "{}{}{}",
        kind.prefix(),
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/api-keys", tag = "API keys", params(("project_id" = String, Path)), request_body(content = Object, description = "JSON; unknown fields are rejected: name, type (server|client|mobile), environment_id (of this project), expires_at? (RFC 3339, in the future), comment?"), responses((status = 201, description = "Created: the key record plus `key`, the full secret, shown in this response only"), (status = 400, description = "Invalid input, or an environment of another project; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_api_key(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    Json(body): Json<CreateApiKey>,
) -> ApiResult<Response> {
    let (kind, expires_at) = body.check()?;
    let mut tx = store.write().await?;
    projects::get(tx.conn(), &project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &project_id))?;
    let in_project = environments::get(tx.conn(), &body.environment_id)
        .await?
        .is_some_and(|env| env.project_id == project_id);
    if !in_project {
        return Err(ApiError::invalid_field(
            "environment_id",
            "no such environment in this project",
        ));
    }
    let secret = new_secret(kind);
    let record = ApiKey {
        id: new_id(),
        project_id,
        environment_id: body.environment_id,
        name: body.name,
        kind: body.kind,
        prefix: secret.chars().take(PREFIX_LEN).collect(),
        created_at: now_rfc3339(),
        created_by: actor.id.clone(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    api_keys::insert(tx.conn(), &record, &hash_secret(&secret)).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "api_key.create",
            resource_type: "api_key",
            resource_id: &record.id,
            before: None,
            after: Some(json!(record)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    let created = CreatedApiKey {
        record,
        key: secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(patch, path = "/api/v1/api-keys/{id}/revoke", tag = "API keys", params(("id" = String, Path)), request_body(content = Option<Object>, description = "Optional: `{comment?}` for the audit trail; the body may be left out"), responses((status = 200, description = "Revoked (the key stops authenticating at once); unchanged when already revoked. The key record"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn revoke_api_key(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
    OptionalJson(body): OptionalJson<CommentBody>,
) -> ApiResult<Json<ApiKey>> {
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    let before = api_keys::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key", &id))?;
    if before.revoked_at.is_some() {
        return Ok(Json(before));
    }
    let at = now_rfc3339();
    api_keys::revoke(tx.conn(), &id, &at).await?;
    let after = ApiKey {
        revoked_at: Some(at),
        ..before.clone()
    };
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "api_key.revoke",
            resource_type: "api_key",
            resource_id: &id,
            before: Some(json!(before)),
            after: Some(json!(after)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "API keys", params(("id" = String, Path)), responses((status = 204, description = "Deleted (the key stops authenticating at once)"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown id")))]
pub(crate) async fn delete_api_key(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    actor: Actor,
    meta: RequestMeta,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let key = api_keys::get(tx.conn(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key", &id))?;
    api_keys::delete(tx.conn(), &id).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &actor,
            action: "api_key.delete",
            resource_type: "api_key",
            resource_id: &id,
            before: Some(json!(key)),
            after: None,
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
