//! The Simple API's operations (docs/http-api.md): boolean flags by name in one environment. A
//! flag is `enabled` when it serves `true` to a context that says nothing about itself
//! (evaluated by the core against the environment's in-memory snapshot, so rules and
//! prerequisites count). Setting `enabled` turns the flag's configuration on or off.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vexil_core::{Context, FlagType, Snapshot};

use super::access::at_least;
use super::fields::check_description;
use super::flag_configs::set_enabled_in;
use super::flags::{create_in, new_flag, save_in};
use super::{By, Change, Error, Result};
use crate::access::{Principal, Role, to_change_environment};
use crate::audit::Action;
use crate::keys::KeyInfo;
use crate::snapshots::Snapshots;
use crate::store::Conn;
use crate::store::environments::{self, Environment};
use crate::store::flags::{self, Flag, configs};
use crate::store::projects;
use crate::store::{Record as _, Store, now_ms, scopes};

/// `?project=&environment=` (keys), defaulting to `default` and `production`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scope {
    project: Option<String>,
    environment: Option<String>,
}

/// A flag as the Simple API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "dark-mode", "enabled": true, "description": "",
    "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct SimpleFlag {
    name: String,
    enabled: bool,
    description: String,
    created_at: String,
    updated_at: String,
}

/// Who reads: a member of an organization (a token or session), or an API key, which
/// reads its own environment — a client or mobile key only its `client_side` flags.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reader<'a> {
    Member(&'a Principal),
    Key(&'a KeyInfo),
}

impl Reader<'_> {
    /// The environment read: the scope's for a member, the key's own for a key (a scope
    /// naming another project or environment is refused rather than silently ignored).
    async fn environment(self, conn: &mut Conn, scope: Scope) -> Result<Environment> {
        let key = match self {
            Reader::Member(principal) => return Ok(resolve(conn, scope, principal).await?.0),
            Reader::Key(key) => key,
        };
        let env = environments::get(conn, &key.environment_id)
            .await?
            .ok_or_else(|| Error::not_found("environment", &key.environment_id))?;
        let project = match &scope.project {
            Some(_) => projects::get(conn, &env.project_id).await?.map(|p| p.key),
            None => None,
        };
        let other_project = scope.project.is_some() && scope.project != project;
        let other_environment = scope.environment.as_ref().is_some_and(|e| *e != env.key);
        if other_project || other_environment {
            return Err(Error::Forbidden(format!(
                "an API key reads its own environment ('{}') only",
                env.key
            )));
        }
        Ok(env)
    }

    /// Whether the reader may see `flag`.
    fn sees(self, flag: &Flag) -> bool {
        match self {
            Reader::Member(_) => true,
            Reader::Key(key) => key.kind.is_server() || flag.client_side,
        }
    }
}

/// Every non-archived boolean flag of the environment with whether it is on.
pub(crate) async fn list(
    store: &Store,
    snapshots: &Snapshots,
    reader: Reader<'_>,
    scope: Scope,
) -> Result<Value> {
    let mut conn = store.read().await?;
    let env = reader.environment(&mut conn, scope).await?;
    let snapshot = snapshot(&mut conn, snapshots, &env).await?;
    let flags: Vec<Flag> = flags::list_all(&mut conn, &env.project_id)
        .await?
        .into_iter()
        .filter(|f| f.kind == FlagType::Boolean && !f.archived && reader.sees(f))
        .collect();
    let mut updated_at = env.updated_at.clone();
    for c in configs::of_environment(&mut conn, &env.id).await? {
        updated_at = updated_at.max(c.updated_at);
    }
    let mut out = Map::new();
    for f in &flags {
        updated_at = updated_at.max(f.updated_at.clone());
        out.insert(f.key.clone(), Value::Bool(is_on(snapshot.get(), &f.key)));
    }
    Ok(json!({"environment": env.key, "flags": out, "updated_at": updated_at}))
}

pub(crate) async fn get(
    store: &Store,
    snapshots: &Snapshots,
    reader: Reader<'_>,
    scope: Scope,
    name: &str,
) -> Result<SimpleFlag> {
    let mut conn = store.read().await?;
    let env = reader.environment(&mut conn, scope).await?;
    let flag = boolean_flag(&mut conn, &env, name).await?;
    if !reader.sees(&flag) {
        return Err(Error::not_found("boolean flag", name));
    }
    describe(&mut conn, snapshots, &flag, &env).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "dark-mode", "enabled": true, "description": "Dark theme"}))]
pub(crate) struct NewSimple {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    name: String,
    enabled: Option<bool>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    description: String,
}

/// Creates a boolean flag (in every environment of the project), optionally enabled in
/// this one.
pub(crate) async fn create(
    store: &Store,
    snapshots: &Snapshots,
    principal: &Principal,
    by: &By,
    scope: Scope,
    input: NewSimple,
) -> Result<SimpleFlag> {
    check_description("description", &input.description)?;
    let mut tx = store.write().await?;
    let (env, role) = resolve(tx.conn(), scope, principal).await?;
    let by = by.in_organization(&role.1);
    require_change(role.0, &env, input.enabled == Some(true))?;
    let flag = new_flag(env.project_id.clone(), input.name, None, None)
        .map_err(|e| e.rename_field("key", "name"))?;
    let flag = Flag {
        description: input.description,
        ..flag
    };
    let change = by.because(None);
    create_in(tx.conn(), &flag, change).await?;
    if input.enabled == Some(true) {
        set_enabled(tx.conn(), &flag, &env, true, change).await?;
    }
    tx.commit().await?;
    let mut conn = store.read().await?;
    describe(&mut conn, snapshots, &flag, &env).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub(crate) struct SimpleChanges {
    enabled: Option<bool>,
    #[schema(max_length = 4000)]
    description: Option<String>,
}

/// Changes a flag's description and turns it on or off in the environment.
pub(crate) async fn update(
    store: &Store,
    snapshots: &Snapshots,
    principal: &Principal,
    by: &By,
    (scope, name): (Scope, &str),
    input: SimpleChanges,
) -> Result<SimpleFlag> {
    let mut tx = store.write().await?;
    let (env, role) = resolve(tx.conn(), scope, principal).await?;
    let by = by.in_organization(&role.1);
    require_change(role.0, &env, input.enabled.is_some())?;
    let mut flag = boolean_flag(tx.conn(), &env, name).await?;
    let change = by.because(None);
    if let Some(description) = input.description.filter(|d| *d != flag.description) {
        check_description("description", &description)?;
        let after = Flag {
            description,
            ..flag.next_version()
        };
        save_in(tx.conn(), &flag, &after, change, Action::FlagUpdate).await?;
        flag = after;
    }
    if let Some(enabled) = input.enabled {
        set_enabled(tx.conn(), &flag, &env, enabled, change).await?;
    }
    tx.commit().await?;
    let mut conn = store.read().await?;
    describe(&mut conn, snapshots, &flag, &env).await
}

/// The environment named by the scope, among the projects the caller can see (404 for
/// an unknown project or environment), with the caller's role in its organization and
/// that organization's id.
async fn resolve(
    conn: &mut Conn,
    scope: Scope,
    principal: &Principal,
) -> Result<(Environment, (Role, String))> {
    let project = scope.project.unwrap_or_else(|| "default".into());
    let env_key = scope.environment.unwrap_or_else(|| "production".into());
    let mut visible = Vec::new();
    for id in flags::project_ids_by_key(conn, &project).await? {
        if let Some(s) = scopes::of(conn, scopes::Of::Project, &id).await?
            && let Some(role) = principal.role_in(conn, &s.organization_id).await?
        {
            visible.push((id, s.organization_id, role));
        }
    }
    let (project_id, org, role) = match visible.as_slice() {
        [one] => one.clone(),
        [] => return Err(Error::not_found("project", &project)),
        _ => {
            return Err(Error::invalid_field(
                "project",
                format!("several of your organizations have a project '{project}'"),
            ));
        }
    };
    let env = environments::get_by_key(conn, &project_id, &env_key)
        .await?
        .ok_or_else(|| Error::not_found("environment", &env_key))?;
    Ok((env, (role, org)))
}

/// Requires the role a simple-API change needs: editor, or admin to turn a flag on or
/// off in a protected environment.
fn require_change(role: Role, env: &Environment, toggles: bool) -> Result<()> {
    let need = if toggles {
        to_change_environment(env.protected)
    } else {
        Role::Editor
    };
    at_least(role, need)
}

/// A non-archived boolean flag of the environment's project (else 404).
async fn boolean_flag(conn: &mut Conn, env: &Environment, name: &str) -> Result<Flag> {
    flags::get_by_key(conn, &env.project_id, name)
        .await?
        .filter(|f| f.kind == FlagType::Boolean && !f.archived)
        .ok_or_else(|| Error::not_found("boolean flag", name))
}

/// The environment's compiled snapshot: the evaluation plane's, which commits keep
/// current; compiled from the database only when that one is not loaded yet (an
/// environment another node created a moment ago).
enum Compiled {
    Shared(std::sync::Arc<crate::snapshots::EnvSnapshot>),
    Own(Box<Snapshot>),
}

impl Compiled {
    fn get(&self) -> &Snapshot {
        match self {
            Compiled::Shared(env) => &env.snapshot,
            Compiled::Own(snapshot) => snapshot,
        }
    }
}

async fn snapshot(conn: &mut Conn, snapshots: &Snapshots, env: &Environment) -> Result<Compiled> {
    if let Some(shared) = snapshots.get(&env.id) {
        return Ok(Compiled::Shared(shared));
    }
    let (ruleset, _) = flags::load_ruleset(conn, &env.id)
        .await?
        .ok_or_else(|| Error::not_found("environment", &env.key))?;
    let compiled = Snapshot::compile(&ruleset).map_err(|e| {
        Error::Internal(anyhow::Error::new(e).context("the stored ruleset does not compile"))
    })?;
    Ok(Compiled::Own(Box::new(compiled)))
}

/// Whether the flag serves `true` to a context without attributes.
fn is_on(snapshot: &Snapshot, key: &str) -> bool {
    snapshot.evaluate(key, &Context::new(), now_ms()).value == Some(&Value::Bool(true))
}

async fn describe(
    conn: &mut Conn,
    snapshots: &Snapshots,
    flag: &Flag,
    env: &Environment,
) -> Result<SimpleFlag> {
    let config = configs::get(conn, &flag.id, &env.id)
        .await?
        .ok_or_else(|| Error::not_found("boolean flag", &flag.key))?;
    let snapshot = snapshot(conn, snapshots, env).await?;
    Ok(SimpleFlag {
        name: flag.key.clone(),
        enabled: is_on(snapshot.get(), &flag.key),
        description: flag.description.clone(),
        created_at: flag.created_at.clone(),
        updated_at: flag.updated_at.clone().max(config.updated_at),
    })
}

/// Turns the flag's configuration in `env` on or off (a no-op when already so).
async fn set_enabled(
    conn: &mut Conn,
    flag: &Flag,
    env: &Environment,
    enabled: bool,
    change: Change<'_>,
) -> Result<()> {
    let before = configs::get(conn, &flag.id, &env.id)
        .await?
        .ok_or_else(|| Error::not_found("boolean flag", &flag.key))?;
    let action = Some(Action::FlagConfigUpdate);
    set_enabled_in(conn, flag, &before, enabled, change, action).await?;
    Ok(())
}
