//! Management tokens for automation: `GET/POST /api/v1/tokens`, `GET/DELETE
//! /api/v1/tokens/{id}`, `PATCH /api/v1/tokens/{id}/revoke`. A personal token (`kind:
//! personal`) acts as its user, with at most its `role`; a service token (`kind: service`)
//! belongs to one organization with its `role` there, and is managed by that
//! organization's admins. The secret (`vx_pat_…`) is in the creation response only; the
//! store keeps its SHA-256 hash. Revocation takes effect on the next request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyConnection;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Page, Pagination, Query, RequestMeta};
use super::patch::{check_comment, check_name};
use crate::access::{Principal, Role, Subject, forbidden};
use crate::audit::hash_secret;
use crate::bootstrap::TOKEN_PREFIX;
use crate::credentials::random_secret;
use crate::store::{Store, audit, new_id, now_rfc3339, tokens};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", get(get_token).delete(delete_token))
        .route("/api/v1/tokens/{id}/revoke", patch(revoke_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
    kind: Option<String>,
    organization_id: Option<String>,
    role: Option<String>,
    expires_at: Option<String>,
    comment: Option<String>,
}

/// Whether the caller may see and manage this token.
async fn may_manage(
    conn: &mut AnyConnection,
    principal: &Principal,
    token: &tokens::Token,
) -> ApiResult<bool> {
    if principal.is_instance() {
        return Ok(true);
    }
    // A personal token reaches no token of more power than its own cap.
    if principal.token_id.is_some() && Role::parse(&token.role).is_none_or(|r| r > principal.cap) {
        return Ok(false);
    }
    Ok(match token.kind.as_str() {
        "personal" => token.user_id.as_deref() == principal.user_id(),
        "service" => match &token.organization_id {
            Some(org) => principal
                .role_in(conn, org)
                .await?
                .is_some_and(|r| r >= Role::Admin),
            None => false,
        },
        _ => false,
    })
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body(content = Object, description = "`{name, kind?: personal|service (default personal), organization_id? (service), role? (service: required; personal: a cap, default none), expires_at? (RFC 3339, in the future), comment?}`"), responses((status = 201, description = "The token record plus `token`, the secret (`vx_pat_…`), shown only in this response"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "A personal token needs a user; a service token needs admin in its organization, and no token gets more than its creator's role")))]
pub(crate) async fn create_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    mut meta: RequestMeta,
    Json(body): Json<CreateToken>,
) -> ApiResult<Response> {
    check_name("name", &body.name)?;
    check_comment(body.comment.as_deref())?;
    // A token never makes tokens (which would outlive its revocation or expiry): they are
    // made from a session, or with the operator's instance token.
    if principal.token_id.is_some() && !principal.is_instance() {
        return Err(ApiError::Forbidden(
            "tokens are created from a logged-in session (or with the instance token), not with another token".into(),
        ));
    }
    let kind = body.kind.as_deref().unwrap_or("personal");
    let role = body
        .role
        .as_deref()
        .map(|r| Role::parse_field("role", r))
        .transpose()?;
    let now = now_rfc3339();
    let expires_at = match &body.expires_at {
        None => None,
        Some(at) => {
            let ms = vexil_core::time::parse_rfc3339(at).ok_or_else(|| {
                ApiError::invalid_field("expires_at", "must be an RFC 3339 date-time")
            })?;
            if ms <= crate::store::now_ms() {
                return Err(ApiError::invalid_field(
                    "expires_at",
                    "must be in the future",
                ));
            }
            Some(vexil_core::time::format_rfc3339(ms))
        }
    };
    let mut tx = store.write().await?;
    let (user_id, organization_id, role) = match kind {
        "personal" => {
            if body.organization_id.is_some() {
                return Err(ApiError::invalid_field(
                    "organization_id",
                    "only service tokens belong to an organization",
                ));
            }
            let Subject::User { user_id } = &principal.subject else {
                return Err(ApiError::Forbidden(
                    "personal tokens belong to users: log in, or create a service token".into(),
                ));
            };
            // A token never gets more than the credential that makes it.
            let role = role.unwrap_or(principal.cap).min(principal.cap);
            (Some(user_id.clone()), None, role)
        }
        "service" => {
            let org = body.organization_id.clone().ok_or_else(|| {
                ApiError::invalid_field("organization_id", "required for a service token")
            })?;
            let role = role
                .ok_or_else(|| ApiError::invalid_field("role", "required for a service token"))?;
            let caller = principal
                .require(tx.conn(), &org, Role::Admin, || {
                    ApiError::not_found("organization", &org)
                })
                .await?;
            if role > caller {
                return Err(forbidden(caller, role));
            }
            meta.organization_id = Some(org.clone());
            (None, Some(org), role)
        }
        _ => {
            return Err(ApiError::invalid_field(
                "kind",
                "must be personal or service",
            ));
        }
    };
    let secret = random_secret(TOKEN_PREFIX);
    let token = tokens::Token {
        id: new_id(),
        name: body.name,
        kind: kind.to_owned(),
        prefix: secret.chars().take(12).collect(),
        role: role.as_str().to_owned(),
        user_id,
        organization_id,
        created_at: now,
        created_by: Some(principal.actor.id.clone()),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    tokens::insert(tx.conn(), &token, &hash_secret(&secret)).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: "token.create",
            resource_type: "token",
            resource_id: &token.id,
            before: None,
            after: Some(json!(token)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    let mut out = json!(token);
    if let Some(map) = out.as_object_mut() {
        map.insert("token".into(), json!(secret));
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of the tokens the caller manages: their personal tokens and the service tokens of organizations where they are admin (never secrets)"), (status = 401, description = "Missing or invalid credentials")))]
pub(crate) async fn list_tokens(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<tokens::Token>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    let orgs = principal.organizations(&mut conn).await?.map(|orgs| {
        orgs.into_iter()
            .filter(|(_, role)| *role >= Role::Admin)
            .map(|(org, _)| org)
            .collect::<Vec<_>>()
    });
    let (items, total) = tokens::list(
        &mut conn,
        principal.user_id(),
        orgs.as_deref(),
        p.limit,
        p.offset,
    )
    .await?;
    Ok(Json(Page::new(items, total, p)))
}

async fn load(
    conn: &mut AnyConnection,
    principal: &Principal,
    id: &str,
) -> ApiResult<tokens::Token> {
    match tokens::get(conn, id).await? {
        Some(t) if may_manage(conn, principal, &t).await? => Ok(t),
        _ => Err(ApiError::not_found("token", id)),
    }
}

#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 200, description = "The token record (never the secret)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn get_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<tokens::Token>> {
    let mut conn = store.read().await?;
    Ok(Json(load(&mut conn, &principal, &id).await?))
}

async fn end_token(
    store: &Store,
    principal: &Principal,
    mut meta: RequestMeta,
    id: &str,
    delete: bool,
) -> ApiResult<Option<tokens::Token>> {
    let mut tx = store.write().await?;
    let before = load(tx.conn(), principal, id).await?;
    meta.organization_id.clone_from(&before.organization_id);
    let now = now_rfc3339();
    let after = if delete {
        tokens::delete(tx.conn(), id).await?;
        None
    } else {
        tokens::revoke(tx.conn(), id, &now).await?;
        tokens::get(tx.conn(), id).await?
    };
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: if delete {
                "token.delete"
            } else {
                "token.revoke"
            },
            resource_type: "token",
            resource_id: id,
            before: Some(json!(before)),
            after: after.as_ref().map(|t| json!(t)),
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[utoipa::path(patch, path = "/api/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path)), responses((status = 200, description = "Revoked: refused from the next request on (idempotent)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn revoke_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let after = end_token(&store, &principal, meta, &id, false).await?;
    Ok(Json(after).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "Deleted (and so refused from the next request on)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn delete_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    end_token(&store, &principal, meta, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
