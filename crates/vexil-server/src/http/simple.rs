//! The Simple API (DESIGN §4), for clients that only need on/off: boolean flags by name in
//! one environment, `/v1/feature-flags/` (list, create) and `/v1/feature-flags/{name}`
//! (get, update). A management token works in project `default`, environment `production`,
//! unless `?project=<key>&environment=<key>` says otherwise.
//!
//! A flag is `enabled` here when it serves `true` to a context that says nothing about
//! itself (evaluated by the core, so rules and prerequisites count). Setting `enabled`
//! turns the flag's configuration in the environment on or off.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::AnyConnection;
use vexil_core::{Context, FlagType, Snapshot};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query, RequestMeta};
use super::flag_configs::{Change, commit_config};
use super::flags::{create, entry, new_flag};
use super::patch::check_description;
use crate::access::{Principal, Role, forbidden, to_change_environment};
use crate::audit::Actor;
use crate::store::environments::{self, Environment};
use crate::store::flags::{self, Config, Flag, configs};
use crate::store::{Store, audit, now_ms, now_rfc3339, scopes};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/feature-flags/", get(list_simple).post(create_simple))
        .route("/v1/feature-flags", get(list_simple).post(create_simple))
        .route(
            "/v1/feature-flags/{name}",
            get(get_simple).put(update_simple),
        )
}

/// `?project=&environment=` (keys), defaulting to `default` and `production`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scope {
    project: Option<String>,
    environment: Option<String>,
}

/// A flag as the Simple API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SimpleFlag {
    name: String,
    enabled: bool,
    description: String,
    created_at: String,
    updated_at: String,
}

#[utoipa::path(get, path = "/v1/feature-flags/", tag = "simple API", params(("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")), responses((status = 200, description = "`{environment, flags: {<name>: bool}, updated_at}` for the non-archived boolean flags; `true` when the flag serves true to a context without attributes; `/v1/feature-flags` and `/v1/feature-flags/` alike"), (status = 400, description = "Unknown query parameter, or several organizations have a project with this key"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project or environment")))]
pub(crate) async fn list_simple(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<Value>> {
    let mut conn = store.read().await?;
    let (env, _) = resolve(&mut conn, scope, &principal, None).await?;
    let snapshot = snapshot(&mut conn, &env).await?;
    let flags: Vec<Flag> = flags::list_all(&mut conn, &env.project_id)
        .await?
        .into_iter()
        .filter(|f| f.kind == FlagType::Boolean && !f.archived)
        .collect();
    let mut updated_at = env.updated_at.clone();
    for c in configs::of_environment(&mut conn, &env.id).await? {
        updated_at = updated_at.max(c.updated_at);
    }
    let mut out = Map::new();
    for f in &flags {
        updated_at = updated_at.max(f.updated_at.clone());
        out.insert(f.key.clone(), Value::Bool(is_on(&snapshot, &f.key)));
    }
    Ok(Json(
        json!({"environment": env.key, "flags": out, "updated_at": updated_at}),
    ))
}

#[utoipa::path(get, path = "/v1/feature-flags/{name}", tag = "simple API", params(("name" = String, Path, description = "Flag key"), ("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")), responses((status = 200, description = "`{name, enabled, description, created_at, updated_at}`; `enabled`: whether the flag serves true to a context without attributes"), (status = 400, description = "Unknown query parameter, or several organizations have a project with this key"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project or environment, or no non-archived boolean flag of this name")))]
pub(crate) async fn get_simple(
    State(store): State<Arc<Store>>,
    Path(name): Path<String>,
    principal: Principal,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<SimpleFlag>> {
    let mut conn = store.read().await?;
    let (env, _) = resolve(&mut conn, scope, &principal, None).await?;
    let flag = boolean_flag(&mut conn, &env, &name).await?;
    Ok(Json(describe(&mut conn, &flag, &env).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSimple {
    name: String,
    enabled: Option<bool>,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/v1/feature-flags/", tag = "simple API", params(("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")), request_body(content = Object, description = "`{name, enabled?, description?}`; unknown fields are rejected"), responses((status = 201, description = "Created as a boolean flag in every environment of the project, enabled in the chosen one when `enabled` is true: `{name, enabled, description, created_at, updated_at}`; `/v1/feature-flags` and `/v1/feature-flags/` alike"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project or environment"), (status = 409, description = "A flag with this name (key) already exists"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn create_simple(
    State(store): State<Arc<Store>>,
    actor: Actor,
    principal: Principal,
    mut meta: RequestMeta,
    Query(scope): Query<Scope>,
    Json(body): Json<CreateSimple>,
) -> ApiResult<Response> {
    check_description("description", &body.description)?;
    let mut tx = store.write().await?;
    let (env, role) = resolve(tx.conn(), scope, &principal, Some(&mut meta)).await?;
    require_change(role, &env, body.enabled == Some(true))?;
    let flag = new_flag(env.project_id.clone(), body.name, None, None)
        .map_err(|e| rename_field(e, "key", "name"))?;
    let flag = Flag {
        description: body.description,
        ..flag
    };
    create(tx.conn(), &flag, &actor, &meta, None).await?;
    if body.enabled == Some(true) {
        set_enabled(tx.conn(), &flag, &env, true, (&actor, &meta)).await?;
    }
    let out = describe(tx.conn(), &flag, &env).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSimple {
    enabled: Option<bool>,
    description: Option<String>,
}

#[utoipa::path(put, path = "/v1/feature-flags/{name}", tag = "simple API", params(("name" = String, Path, description = "Flag key"), ("project" = Option<String>, Query, description = "Project key; default `default`"), ("environment" = Option<String>, Query, description = "Environment key; default `production`")), request_body(content = Object, description = "`{enabled?, description?}`: `enabled` turns the flag's configuration in the environment on or off; unknown fields are rejected"), responses((status = 200, description = "Updated: `{name, enabled, description, created_at, updated_at}`"), (status = 400, description = "Invalid input; `details.fields` maps each field path to its problem"), (status = 401, description = "Missing or invalid token"), (status = 404, description = "Unknown project or environment, or no non-archived boolean flag of this name"), (status = 413, description = "Body over 1 MiB")))]
pub(crate) async fn update_simple(
    State(store): State<Arc<Store>>,
    Path(name): Path<String>,
    actor: Actor,
    principal: Principal,
    mut meta: RequestMeta,
    Query(scope): Query<Scope>,
    Json(body): Json<UpdateSimple>,
) -> ApiResult<Json<SimpleFlag>> {
    let mut tx = store.write().await?;
    let (env, role) = resolve(tx.conn(), scope, &principal, Some(&mut meta)).await?;
    require_change(role, &env, body.enabled.is_some())?;
    let mut flag = boolean_flag(tx.conn(), &env, &name).await?;
    if let Some(description) = body.description.filter(|d| *d != flag.description) {
        check_description("description", &description)?;
        flag = describe_flag(tx.conn(), flag, description, (&actor, &meta)).await?;
    }
    if let Some(enabled) = body.enabled {
        set_enabled(tx.conn(), &flag, &env, enabled, (&actor, &meta)).await?;
    }
    let out = describe(tx.conn(), &flag, &env).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// The environment named by the scope, among the projects the caller can see (404 for
/// an unknown project or environment), with the caller's role in its organization.
async fn resolve(
    conn: &mut AnyConnection,
    scope: Scope,
    principal: &Principal,
    meta: Option<&mut RequestMeta>,
) -> ApiResult<(Environment, Role)> {
    let project = scope.project.unwrap_or_else(|| "default".into());
    let env_key = scope.environment.unwrap_or_else(|| "production".into());
    let mut visible = Vec::new();
    for id in flags::project_ids_by_key(conn, &project).await? {
        if let Some(s) = scopes::project(conn, &id).await?
            && let Some(role) = principal.role_in(conn, &s.organization_id).await?
        {
            visible.push((id, s.organization_id, role));
        }
    }
    let (project_id, org, role) = match visible.as_slice() {
        [one] => one.clone(),
        [] => return Err(ApiError::not_found("project", &project)),
        _ => {
            return Err(ApiError::invalid_field(
                "project",
                format!("several of your organizations have a project '{project}'"),
            ));
        }
    };
    if let Some(meta) = meta {
        meta.organization_id = Some(org);
    }
    let env = environments::get_by_key(conn, &project_id, &env_key)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &env_key))?;
    Ok((env, role))
}

/// Requires the role a simple-API change needs: editor, or admin to turn a flag on or
/// off in a protected environment.
fn require_change(role: Role, env: &Environment, toggles: bool) -> ApiResult<()> {
    let need = if toggles {
        to_change_environment(env.protected)
    } else {
        Role::Editor
    };
    if role < need {
        return Err(forbidden(role, need));
    }
    Ok(())
}

/// A non-archived boolean flag of the environment's project (else 404).
async fn boolean_flag(conn: &mut AnyConnection, env: &Environment, name: &str) -> ApiResult<Flag> {
    flags::get_by_key(conn, &env.project_id, name)
        .await?
        .filter(|f| f.kind == FlagType::Boolean && !f.archived)
        .ok_or_else(|| ApiError::not_found("boolean flag", name))
}

async fn snapshot(conn: &mut AnyConnection, env: &Environment) -> ApiResult<Snapshot> {
    let ruleset = flags::load_ruleset(conn, &env.id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &env.key))?;
    Snapshot::compile(&ruleset).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("the stored ruleset does not compile"))
    })
}

/// Whether the flag serves `true` to a context without attributes.
fn is_on(snapshot: &Snapshot, key: &str) -> bool {
    snapshot.evaluate(key, &Context::new(), now_ms()).value == Some(&Value::Bool(true))
}

async fn describe(
    conn: &mut AnyConnection,
    flag: &Flag,
    env: &Environment,
) -> ApiResult<SimpleFlag> {
    let config = configs::get(conn, &flag.id, &env.id)
        .await?
        .ok_or_else(|| ApiError::not_found("boolean flag", &flag.key))?;
    let snapshot = snapshot(conn, env).await?;
    Ok(SimpleFlag {
        name: flag.key.clone(),
        enabled: is_on(&snapshot, &flag.key),
        description: flag.description.clone(),
        created_at: flag.created_at.clone(),
        updated_at: flag.updated_at.clone().max(config.updated_at),
    })
}

/// Turns the flag's configuration in `env` on or off (a no-op when already so).
async fn set_enabled(
    conn: &mut AnyConnection,
    flag: &Flag,
    env: &Environment,
    enabled: bool,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<()> {
    let before = configs::get(conn, &flag.id, &env.id)
        .await?
        .ok_or_else(|| ApiError::not_found("boolean flag", &flag.key))?;
    if before.config.enabled != enabled {
        let config = Config {
            enabled,
            ..before.config.clone()
        };
        let change = Change::new(actor, meta, "flag_config.update", None);
        commit_config(conn, flag, &before, config, &change).await?;
    }
    Ok(())
}

/// Stores a new description for the flag (new version, audited).
async fn describe_flag(
    conn: &mut AnyConnection,
    flag: Flag,
    description: String,
    (actor, meta): (&Actor, &RequestMeta),
) -> ApiResult<Flag> {
    let after = Flag {
        description,
        version: flag.version + 1,
        updated_at: now_rfc3339(),
        ..flag.clone()
    };
    flags::update(conn, &after).await?;
    let (before, after_doc) = (Some(json!(flag)), Some(json!(after)));
    audit::append(
        conn,
        entry(actor, meta, "flag.update", &after.id, before, after_doc),
    )
    .await?;
    Ok(after)
}

/// The Simple API calls a flag's key its `name`: report problems under that field.
fn rename_field(e: ApiError, from: &str, to: &str) -> ApiError {
    match e {
        ApiError::Invalid {
            message,
            mut fields,
        } => {
            if let Some(v) = fields.remove(from) {
                fields.insert(to.to_owned(), v);
            }
            ApiError::Invalid {
                message: message.replacen(from, to, 1),
                fields,
            }
        }
        other => other,
    }
}
