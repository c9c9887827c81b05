//! The Simple API, for clients that only need on/off: boolean flags by name in one
//! environment, `/v1/feature-flags/` (list, create) and `/v1/feature-flags/{name}` (get,
//! update). A management token works in project `default`, environment `production`,
//! unless `?project=<key>&environment=<key>` says otherwise; the reads also take an API key,
//! which reads its own environment (a client or mobile key its `client_side` flags only).
//! The operations are in `manage::simple`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tower_http::cors::{Any, CorsLayer};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::eval_auth::EvalKey;
use super::extract::{Json, Query};
use crate::access::Principal;
use crate::keys::KeyInfo;
use crate::manage::By;
use crate::manage::simple::{self, NewSimple, Reader, Scope, SimpleChanges, SimpleFlag};
use crate::snapshots::Snapshots;
use crate::store::Store;

/// A reader's credential: an API key (reads only; see `auth::require_auth_or_api_key`) or
/// a member's token or session.
#[derive(Debug)]
pub(crate) enum Credential {
    Key(Arc<KeyInfo>),
    Member(Principal),
}

impl Credential {
    fn reader(&self) -> Reader<'_> {
        match self {
            Credential::Key(key) => Reader::Key(key),
            Credential::Member(principal) => Reader::Member(principal),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Credential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(EvalKey(key)) = parts.extensions.get::<EvalKey>() {
            return Ok(Credential::Key(key.clone()));
        }
        Principal::from_request_parts(parts, state)
            .await
            .map(Credential::Member)
    }
}

/// Browsers call the Simple API's reads cross-origin with API keys, as the evaluation
/// plane; its writes stay same-origin.
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION, HeaderName::from_static("x-api-key")])
        .max_age(std::time::Duration::from_secs(3600))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/feature-flags/", get(list_simple).post(create_simple))
        .route("/v1/feature-flags", get(list_simple).post(create_simple))
        .route(
            "/v1/feature-flags/{name}",
            get(get_simple).put(update_simple),
        )
}

#[utoipa::path(get, path = "/v1/feature-flags/", tag = "simple API", security(("bearer" = []), ("session" = []), ("api_key" = [])),
    params(("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")),
    responses(super::openapi::errors::Authenticated, (status = 429, description = "An API key's rate limit is reached (`rate_limited`); `Retry-After` says when to try again", body = super::openapi::errors::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))), (status = 400, description = "Invalid input or query parameter, or several of the caller's organizations have a project with this key; `details.fields` maps each field to its problem", body = super::openapi::errors::ErrorBody), (status = 404, description = "Unknown project or environment (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "The non-archived boolean flags of the environment; `/v1/feature-flags` and `/v1/feature-flags/` alike", body = super::openapi::bodies::SimpleList)))]
pub(crate) async fn list_simple(
    State(store): State<Arc<Store>>,
    State(snapshots): State<Arc<Snapshots>>,
    reader: Credential,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        simple::list(&store, &snapshots, reader.reader(), scope).await?,
    ))
}

#[utoipa::path(get, path = "/v1/feature-flags/{name}", tag = "simple API", security(("bearer" = []), ("session" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "Flag key"), ("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")),
    responses(super::openapi::errors::Authenticated, (status = 429, description = "An API key's rate limit is reached (`rate_limited`); `Retry-After` says when to try again", body = super::openapi::errors::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))), (status = 400, description = "Invalid input or query parameter, or several of the caller's organizations have a project with this key; `details.fields` maps each field to its problem", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Found; `enabled`: whether the flag serves true to a context without attributes", body = SimpleFlag),
        (status = 404, description = "Unknown project or environment, or no non-archived boolean flag of this name (`not_found`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn get_simple(
    State(store): State<Arc<Store>>,
    State(snapshots): State<Arc<Snapshots>>,
    Path(name): Path<String>,
    reader: Credential,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<SimpleFlag>> {
    let flag = simple::get(&store, &snapshots, reader.reader(), scope, &name).await?;
    Ok(Json(flag))
}

#[utoipa::path(post, path = "/v1/feature-flags/", tag = "simple API",
    params(("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")),
    request_body(content = NewSimple, description = "Unknown fields are rejected"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, (status = 400, description = "Invalid input or query parameter, or several of the caller's organizations have a project with this key; `details.fields` maps each field to its problem", body = super::openapi::errors::ErrorBody), (status = 404, description = "Unknown project or environment (`not_found`)", body = super::openapi::errors::ErrorBody),
        (status = 201, description = "Created as a boolean flag in every environment of the project, enabled in the chosen one when `enabled` is true; `/v1/feature-flags` and `/v1/feature-flags/` alike", body = SimpleFlag),
        (status = 409, description = "A flag with this name (key) already exists", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_simple(
    State(store): State<Arc<Store>>,
    State(snapshots): State<Arc<Snapshots>>,
    principal: Principal,
    by: By,
    Query(scope): Query<Scope>,
    Json(body): Json<NewSimple>,
) -> ApiResult<Response> {
    let flag = simple::create(&store, &snapshots, &principal, &by, scope, body).await?;
    Ok((StatusCode::CREATED, Json(flag)).into_response())
}

#[utoipa::path(put, path = "/v1/feature-flags/{name}", tag = "simple API",
    params(("name" = String, Path, description = "Flag key"), ("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")),
    request_body(content = SimpleChanges, description = "`enabled` turns the flag's configuration in the environment on or off; unknown fields are rejected"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, (status = 400, description = "Invalid input or query parameter, or several of the caller's organizations have a project with this key; `details.fields` maps each field to its problem", body = super::openapi::errors::ErrorBody),
        (status = 200, description = "Updated", body = SimpleFlag),
        (status = 404, description = "Unknown project or environment, or no non-archived boolean flag of this name (`not_found`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_simple(
    State(store): State<Arc<Store>>,
    State(snapshots): State<Arc<Snapshots>>,
    Path(name): Path<String>,
    principal: Principal,
    by: By,
    Query(scope): Query<Scope>,
    Json(body): Json<SimpleChanges>,
) -> ApiResult<Json<SimpleFlag>> {
    let at = (scope, name.as_str());
    let flag = simple::update(&store, &snapshots, &principal, &by, at, body).await?;
    Ok(Json(flag))
}
