//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations, served
//! at `/api-docs/openapi.json`, with the vendored Swagger UI at `/docs` (works offline).

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{AppState, environments, ops, organizations, projects};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vexil",
        description = "Self-hosted feature flags: management API. Errors have the shape \
            `{\"error\": {\"code\", \"message\", \"details\"}}`; lists are `{items, total, limit, offset}`; \
            mutable resources carry `version`, returned as `ETag`, checked against `If-Match` (412).",
        license(name = "Apache-2.0")
    ),
    paths(
        ops::health, ops::ready, ops::metrics,
        organizations::list_organizations, organizations::create_organization, organizations::get_organization,
        organizations::update_organization, organizations::delete_organization,
        projects::list_projects, projects::create_project, projects::get_project, projects::update_project,
        projects::delete_project,
        environments::list_environments, environments::create_environment, environments::get_environment,
        environments::update_environment, environments::delete_environment,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "organizations"), (name = "projects"), (name = "environments"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `/api-docs/openapi.json` and the Swagger UI at `/docs`.
pub fn router() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/api-docs/openapi.json", ApiDoc::openapi()))
}
