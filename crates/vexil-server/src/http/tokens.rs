//! Management tokens for automation: `GET/POST /api/v1/tokens`, `GET/DELETE
//! /api/v1/tokens/{id}`, `PATCH /api/v1/tokens/{id}/revoke`. Who may make and see which
//! token is decided in `manage::tokens`; revocation takes effect on the next request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Page, Pagination, Query};
use crate::access::Principal;
use crate::manage::By;
use crate::manage::tokens::{self, NewToken};
use crate::store::Store;
use crate::store::tokens::Token;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", get(get_token).delete(delete_token))
        .route("/api/v1/tokens/{id}/revoke", patch(revoke_token))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body(content = Object, description = "`{name, kind?: personal|service (default personal), organization_id? (service), role? (service: required; personal: a cap, default none), expires_at? (RFC 3339, in the future), comment?}`"), responses((status = 201, description = "The token record plus `token`, the secret (`vx_pat_…`), shown only in this response"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "A personal token needs a user; a service token needs admin in its organization, and no token gets more than its creator's role")))]
pub(crate) async fn create_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    let token = tokens::create(&store, &principal, &by, body).await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of the tokens the caller manages: their personal tokens and the service tokens of organizations where they are admin (never secrets)"), (status = 401, description = "Missing or invalid credentials")))]
pub(crate) async fn list_tokens(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Token>>> {
    let p = p.validate()?;
    let (items, total) = tokens::list(&store, &principal, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 200, description = "The token record (never the secret)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn get_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    Ok(Json(tokens::get(&store, &principal, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path)), responses((status = 200, description = "Revoked: refused from the next request on (idempotent)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn revoke_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let after = tokens::end(&store, &principal, &by, &id, false).await?;
    Ok(Json(after).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "Deleted (and so refused from the next request on)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown token, or not one the caller manages")))]
pub(crate) async fn delete_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::end(&store, &principal, &by, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
