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

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body(content = NewToken, description = "A personal token acts as its creator (capped at `role`); a service token acts in one organization with one role"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 201, description = "The token record plus `token`, the secret (`vx_pat_…` personal, `vx_svc_…` service), shown only in this response", body = super::openapi::bodies::CreatedToken),
        (status = 403, description = "A personal token needs a user; a service token needs admin in its organization, and no token gets more than its creator's role (`forbidden`)", body = super::openapi::errors::ErrorBody),
        (status = 404, description = "Unknown organization (or not the caller's) (`not_found`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    let token = tokens::create(&store, &principal, &by, body).await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid,
        (status = 200, description = "A page of the tokens the caller manages: their personal tokens and the service tokens of organizations where they are admin (never secrets)", body = Page<Token>)))]
pub(crate) async fn list_tokens(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Token>>> {
    let p = p.validate()?;
    let (items, total) = tokens::list(&store, &principal, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(super::openapi::errors::Authenticated, (status = 404, description = "Unknown token, or not one the caller manages (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "The token record (never the secret)", body = Token)))]
pub(crate) async fn get_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    Ok(Json(tokens::get(&store, &principal, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tokens/{id}/revoke", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(super::openapi::errors::Authenticated, (status = 404, description = "Unknown token, or not one the caller manages (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Revoked: refused from the next request on (idempotent)", body = Token)))]
pub(crate) async fn revoke_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let after = tokens::end(&store, &principal, &by, &id, false).await?;
    Ok(Json(after).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(super::openapi::errors::Authenticated, (status = 404, description = "Unknown token, or not one the caller manages (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 204, description = "Deleted (and so refused from the next request on)")))]
pub(crate) async fn delete_token(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::end(&store, &principal, &by, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
