//! Release plans over HTTP: start, read, advance, pause, resume, roll back and cancel the
//! plan of a flag in an environment (`…/release`), and a project's plans. The operations
//! are in `manage::release`; the release guard job takes the automatic steps.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query};
use crate::manage::release::{self, NewPlan, Plan, RollbackInput};

pub(crate) fn router() -> Router<AppState> {
    let at = "/api/v1/flags/{flag_id}/environments/{env_id}/release";
    Router::new()
        .route(at, get(get_plan).post(start).delete(cancel))
        .route(&format!("{at}/advance"), post(advance))
        .route(&format!("{at}/pause"), post(pause))
        .route(&format!("{at}/resume"), post(resume))
        .route(&format!("{at}/rollback"), post(rollback))
        .route("/api/v1/projects/{project_id}/releases", get(project_plans))
}

/// A flag in an environment, as the paths name them.
type FlagEnv = Aimed<(String, String)>;
/// A plan after a step.
type Stepped = ApiResult<Json<Plan>>;

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id")),
    request_body(content = NewPlan, description = "Every field is optional for a boolean flag: treatment `on`, control `off`, bucketed by `targetingKey`, stages 1 %, 10 %, 50 %, 100 %, advancing by itself, no guard"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Started: the configuration is on and serves the first stage (a new revision)", body = Plan),
        (status = 409, description = "A plan is already live here, the flag is archived, or (`approval_required`) the environment requires approval", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn start(a: FlagEnv, Json(body): Json<NewPlan>) -> ApiResult<Response> {
    let plan = release::start(&a.store, &a.by, a.pair(), body).await?;
    Ok((StatusCode::CREATED, Json(plan)).into_response())
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "The live plan (with the guard's readings now), else the latest that ended", body = Plan)))]
pub(crate) async fn get_plan(a: FlagEnv) -> Stepped {
    let (flag, env) = a.pair();
    Ok(Json(release::get(&a.store, flag, env).await?))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release/advance", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The plan's expected `version`, e.g. `\"3\"`; a plan that moved meanwhile (the guard advanced it) is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::IfMatch, super::openapi::errors::NotFound,
        (status = 200, description = "On the next stage now (the last stage completes the plan)", body = Plan),
        (status = 409, description = "No live plan", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn advance(a: FlagEnv) -> Stepped {
    Ok(Json(
        release::advance(&a.store, &a.by, a.pair(), a.expected).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release/pause", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The plan's expected `version`, e.g. `\"3\"`; a plan that moved meanwhile (the guard advanced it) is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::IfMatch, super::openapi::errors::NotFound,
        (status = 200, description = "Paused: it no longer advances by itself; the guard still rolls it back", body = Plan),
        (status = 409, description = "Not running", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn pause(a: FlagEnv) -> Stepped {
    Ok(Json(
        release::pause(&a.store, &a.by, a.pair(), a.expected).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release/resume", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The plan's expected `version`, e.g. `\"3\"`; a plan that moved meanwhile (the guard advanced it) is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::IfMatch, super::openapi::errors::NotFound,
        (status = 200, description = "Running again", body = Plan),
        (status = 409, description = "Not paused", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn resume(a: FlagEnv) -> Stepped {
    Ok(Json(
        release::resume(&a.store, &a.by, a.pair(), a.expected).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release/rollback", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The plan's expected `version`, e.g. `\"3\"`; a plan that moved meanwhile (the guard advanced it) is 412")),
    request_body(content = RollbackInput, description = "Why (recorded in the audit log)"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::IfMatch, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 200, description = "Rolled back: every unit outside targets and rules gets the control", body = Plan),
        (status = 409, description = "No live plan", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn rollback(a: FlagEnv, Json(body): Json<RollbackInput>) -> Stepped {
    Ok(Json(
        release::rollback(&a.store, &a.by, a.pair(), a.expected, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/flags/{flag_id}/environments/{env_id}/release", tag = "release plans",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The plan's expected `version`, e.g. `\"3\"`; a plan that moved meanwhile (the guard advanced it) is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::IfMatch, super::openapi::errors::NotFound,
        (status = 200, description = "Cancelled; the configuration is left as it is", body = Plan),
        (status = 409, description = "No live plan", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn cancel(a: FlagEnv) -> Stepped {
    Ok(Json(
        release::cancel(&a.store, &a.by, a.pair(), a.expected).await?,
    ))
}

/// The filters and window of a project's listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListPlans {
    status: Option<String>,
    environment_id: Option<String>,
    #[serde(default = "crate::manage::fields::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/releases", tag = "release plans",
    params(("project_id" = String, Path, description = "Project id"),
        ("status" = Option<String>, Query, description = "running, paused, completed, rolled_back or cancelled; several comma-separated"),
        ("environment_id" = Option<String>, Query, description = "Only this environment's"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "The project's release plans, newest first (live ones with their guard's readings)", body = Page<Plan>)))]
pub(crate) async fn project_plans(
    store: Db,
    id: Id,
    q: Query<ListPlans>,
) -> ApiResult<Json<Page<Plan>>> {
    let p = Pagination {
        limit: q.0.limit,
        offset: q.0.offset,
    }
    .validate()?;
    let statuses = release::parse_statuses(q.0.status.as_deref())?;
    let env = q.0.environment_id.as_deref().filter(|e| !e.is_empty());
    let (items, total) = release::list(&store, &id, env, &statuses, (p.limit, p.offset)).await?;
    Ok(Json(Page::new(items, total, p)))
}
