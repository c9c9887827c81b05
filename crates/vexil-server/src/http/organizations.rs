//! `/api/v1/organizations`: list, create, get, update (merge patch), delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query, versioned, with_etag};
use crate::access::Principal;
use crate::manage::By;
use crate::manage::fields::Patch;
use crate::manage::organizations::{self, NewOrganization};
use crate::store::Store;
use crate::store::organizations::Organization;

pub(crate) fn router() -> Router<AppState> {
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

#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid,
        (status = 200, description = "A page of the caller's organizations (every one for the instance token)", body = Page<Organization>)))]
pub(crate) async fn list_organizations(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Organization>>> {
    let p = p.validate()?;
    let (items, total) = organizations::list(&store, &principal, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations",
    request_body(content = NewOrganization, description = "Unknown fields are rejected; `name` defaults to the key"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody,
        (status = 201, description = "Created, owned by its creator", body = Organization, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 403, description = "A service token (bound to its organization) cannot create one", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "An organization with this key exists", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_organization(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Json(body): Json<NewOrganization>,
) -> ApiResult<Response> {
    let org = organizations::create(&store, &principal, &by, body).await?;
    Ok((StatusCode::CREATED, with_etag(org.version, &org)).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, description = "Organization id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found", body = Organization, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_organization(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Organization>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, description = "Organization id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::OrganizationPatch, description = "JSON merge patch, plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated", body = Organization, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn update_organization(a: Aimed, Json(patch): Json<Patch>) -> ApiResult<Response> {
    let org = organizations::update(&a.store, &a.by, a.at(), &patch).await?;
    Ok(with_etag(org.version, &org))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, description = "Organization id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted"),
        (status = 409, description = "The organization still has projects; `details` says which", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn delete_organization(a: Aimed) -> ApiResult<StatusCode> {
    organizations::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}
