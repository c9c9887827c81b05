//! Projects: list what the caller can see, create (with `development` and `production`),
//! update, delete (only when it holds no flags or segments; its environments go with it).

use serde::Deserialize;
use serde_json::json;

use super::access::at_least;
use super::fields::{Patch, check_comment, check_description, check_name, check_new};
use super::{At, By, Change, Error, Result, delete_in, edit, remove};
use crate::access::{Principal, Role};
use crate::audit::Action;
use crate::store::environments::{self, Environment};
use crate::store::projects::{self, Project};
use crate::store::{Conn, Record as _, Store, new_id, now_rfc3339, organizations};

/// Projects the caller can see, optionally of one organization.
pub(crate) async fn list(
    store: &Store,
    principal: &Principal,
    organization_id: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Project>, i64)> {
    let mut conn = store.read().await?;
    let visible = principal.visible_organizations(&mut conn).await?;
    let scope: Option<Vec<String>> = match (organization_id, visible) {
        (Some(org), Some(visible)) => Some(visible.into_iter().filter(|o| *o == org).collect()),
        (Some(org), None) => Some(vec![org]),
        (None, visible) => visible,
    };
    Ok(projects::list(&mut conn, scope.as_deref(), limit, offset).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"organization_id": "0190e0a4-0000-7000-8000-000000000001", "key": "web",
    "name": "Web shop", "description": "The storefront"}))]
pub(crate) struct NewProject {
    pub(crate) organization_id: String,
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    pub(crate) key: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub(crate) description: String,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// Creates a project with its two standard environments; needs admin in the organization.
pub(crate) async fn create(
    store: &Store,
    principal: &Principal,
    by: &By,
    input: NewProject,
) -> Result<Project> {
    let name = check_new(&input.key, input.name)?;
    check_description("description", &input.description)?;
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    // An organization the caller is not in is as unknown as one that does not exist.
    let role = if organizations::get(tx.conn(), &input.organization_id)
        .await?
        .is_some()
    {
        principal.role_in(tx.conn(), &input.organization_id).await?
    } else {
        None
    };
    let Some(role) = role else {
        return Err(Error::invalid_field(
            "organization_id",
            format!("organization '{}' not found", input.organization_id),
        ));
    };
    at_least(role, Role::Admin)?;
    let by = by.in_organization(&input.organization_id);
    if projects::get_by_key(tx.conn(), &input.organization_id, &input.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("project '{}' already exists", input.key),
            json!({"key": input.key}),
        ));
    }
    let now = now_rfc3339();
    let project = Project {
        id: new_id(),
        organization_id: input.organization_id,
        key: input.key,
        name,
        description: input.description,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    create_in(tx.conn(), &project, by.because(input.comment.as_deref())).await?;
    tx.commit().await?;
    Ok(project)
}

/// Inserts a project and its two standard environments, with audit entries.
pub(crate) async fn create_in(
    conn: &mut Conn,
    project: &Project,
    change: Change<'_>,
) -> Result<()> {
    projects::insert(conn, project).await?;
    change
        .created(conn, Action::ProjectCreate, &project.id, project)
        .await?;
    for (key, name, production) in [
        ("development", "Development", false),
        ("production", "Production", true),
    ] {
        let env = Environment {
            id: new_id(),
            project_id: project.id.clone(),
            key: key.into(),
            name: name.into(),
            description: String::new(),
            is_production: production,
            protected: production,
            requires_approval: false,
            ruleset_version: 1,
            version: 1,
            created_at: project.created_at.clone(),
            updated_at: project.created_at.clone(),
        };
        environments::insert(conn, &env).await?;
        change
            .record(conn, Action::EnvironmentCreate, &env.id, None, Some(&env))
            .await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectChanges {
    name: String,
    description: String,
}

pub(crate) async fn update(store: &Store, by: &By, at: At<'_>, patch: &Patch) -> Result<Project> {
    let change = by.because(patch.comment.as_deref());
    edit(
        store,
        change,
        at,
        Action::ProjectUpdate,
        |before: &Project| {
            let changes: ProjectChanges = patch.apply(
                json!({"name": before.name, "description": before.description}),
                &["key", "organization_id"],
                &json!({"key": before.key, "organization_id": before.organization_id}),
            )?;
            check_name("name", &changes.name)?;
            check_description("description", &changes.description)?;
            Ok(Project {
                name: changes.name,
                description: changes.description,
                ..before.next_version()
            })
        },
    )
    .await
}

/// Deletes a project without flags or segments, and its environments.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    remove(store, by, at, Action::ProjectDelete, async |tx, project: &Project| {
        let (flags, segments) = projects::count_contents(tx.conn(), &project.id).await?;
        if flags + segments > 0 {
            return Err(Error::conflict(
                format!(
                    "project '{}' still has {flags} flag(s) and {segments} segment(s); delete them first",
                    project.key
                ),
                json!({"flags": flags, "segments": segments}),
            ));
        }
        for env in environments::list_all(tx.conn(), &project.id).await? {
            delete_in(tx.conn(), by.because(None), &env, Action::EnvironmentDelete).await?;
        }
        // The environments' API keys go with them.
        tx.keys_changed();
        Ok(())
    })
    .await
}

/// The `default` organization, its `default` project and the project's environment `key`,
/// as ids (where offline mode serves), if they exist.
pub(crate) async fn default_environment(
    store: &Store,
    key: &str,
) -> Result<Option<(String, String, String)>> {
    let mut conn = store.read().await?;
    let Some(org) = organizations::get_by_key(&mut conn, "default").await? else {
        return Ok(None);
    };
    let Some(project) = projects::get_by_key(&mut conn, &org.id, "default").await? else {
        return Ok(None);
    };
    let env = environments::get_by_key(&mut conn, &project.id, key).await?;
    Ok(env.map(|e| (org.id, project.id, e.id)))
}
