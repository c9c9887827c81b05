//! Flags as code: `GET /api/v1/projects/{projectId}/export` (the project as one document)
//! and `POST /api/v1/projects/{projectId}/import` (a document applied all or nothing, or a
//! dry run's plan). `vexil export` and `vexil apply` are their command-line clients. The
//! operations are in `manage::as_code`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Query};
use crate::access::Principal;
use crate::manage::By;
use crate::manage::as_code::{self, Document, ImportInput, Imported};
use crate::store::Store;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project_id}/export", get(export_project))
        .route("/api/v1/projects/{project_id}/import", post(import_project))
}

/// Which configurations to export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// Only this environment's configurations (its key).
    environment: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/export", tag = "flags as code",
    params(("project_id" = String, Path, description = "Project id"),
        ("environment" = Option<String>, Query, description = "Only this environment's configurations (its key)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The project as one document: its segments, and its flags with their variations and each environment's configuration, by key", body = Document)))]
pub(crate) async fn export_project(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Json<Document>> {
    Ok(Json(
        as_code::export(&store, &project_id, q.environment.as_deref()).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/import", tag = "flags as code",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = ImportInput, description = "A document as the export answers it; `dry_run` plans without changing anything; `prune` also deletes what the document does not name"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Applied all or nothing (or, in a dry run, planned): every change, each made through the usual validation with its own audit entry and revision carrying the comment", body = Imported),
        (status = 403, description = "A change in a protected environment needs the admin role", body = super::openapi::errors::ErrorBody),
        (status = 409, description = "A conflict: an environment requires approval (`approval_required`), a release plan owns a configuration (`release_running`), or a pruned flag or segment is still used", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn import_project(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    principal: Principal,
    by: By,
    Json(body): Json<ImportInput>,
) -> ApiResult<Json<Imported>> {
    Ok(Json(
        as_code::import(&store, &principal, &by, &project_id, body).await?,
    ))
}
