//! Organizations: list what the caller can see, create (the creator becomes owner),
//! rename, delete (only when empty).

use serde::Deserialize;
use serde_json::json;

use super::fields::{Patch, check_comment, check_name, check_new};
use super::{At, By, Error, Result, edit, remove};
use crate::access::{Principal, Role, Subject};
use crate::audit::Action;
use crate::store::organizations::{self, Organization};
use crate::store::{Record as _, Store, WriteTx, new_id, now_rfc3339, projects, users};

pub(crate) async fn list(
    store: &Store,
    principal: &Principal,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Organization>, i64)> {
    let mut conn = store.read().await?;
    // Only the caller's organizations (all of them for the instance token).
    let visible = principal.visible_organizations(&mut conn).await?;
    Ok(organizations::list(&mut conn, visible.as_deref(), limit, offset).await?)
}

/// What a new organization needs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "acme", "name": "Acme", "comment": "new customer"}))]
pub(crate) struct NewOrganization {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    pub(crate) key: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub(crate) name: Option<String>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// Creates an organization owned by its creator (the instance token needs no membership).
pub(crate) async fn create(
    store: &Store,
    principal: &Principal,
    by: &By,
    input: NewOrganization,
) -> Result<Organization> {
    if let Subject::Service { .. } = principal.subject {
        return Err(Error::Forbidden(
            "a service token works within its organization; it cannot create organizations".into(),
        ));
    }
    if principal.token_id.is_some() && principal.cap < Role::Admin {
        return Err(Error::Forbidden(
            "a personal token capped below admin cannot create organizations".into(),
        ));
    }
    let name = check_new(&input.key, input.name)?;
    check_comment(input.comment.as_deref())?;
    let now = now_rfc3339();
    let org = Organization {
        id: new_id(),
        key: input.key,
        name,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut tx = store.write().await?;
    if organizations::get_by_key(tx.conn(), &org.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            format!("organization '{}' already exists", org.key),
            json!({"key": org.key}),
        ));
    }
    organizations::insert(tx.conn(), &org).await?;
    if let Some(user_id) = principal.user_id() {
        users::insert_membership(tx.conn(), &org.id, user_id, Role::Owner, &org.created_at).await?;
    }
    let by = by.in_organization(&org.id);
    let change = by.because(input.comment.as_deref());
    change
        .created(tx.conn(), Action::OrganizationCreate, &org.id, &org)
        .await?;
    tx.commit().await?;
    Ok(org)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationChanges {
    name: String,
}

/// Renames an organization (its key never changes).
pub(crate) async fn update(
    store: &Store,
    by: &By,
    at: At<'_>,
    patch: &Patch,
) -> Result<Organization> {
    let change = by.because(patch.comment.as_deref());
    edit(
        store,
        change,
        at,
        Action::OrganizationUpdate,
        |before: &Organization| {
            let changes: OrganizationChanges = patch.apply(
                json!({"name": before.name}),
                &["key"],
                &json!({"key": before.key}),
            )?;
            check_name("name", &changes.name)?;
            Ok(Organization {
                name: changes.name,
                ..before.next_version()
            })
        },
    )
    .await
}

/// Deletes an organization that holds no project.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    remove(
        store,
        by,
        at,
        Action::OrganizationDelete,
        unless_projects_left,
    )
    .await
}

/// Refuses while the organization has projects.
async fn unless_projects_left(tx: &mut WriteTx<'_>, org: &Organization) -> Result<()> {
    let n = projects::count_in_organization(tx.conn(), &org.id).await?;
    if n > 0 {
        return Err(Error::conflict(
            format!(
                "organization '{}' still has {n} project(s); delete them first",
                org.key
            ),
            json!({"projects": n}),
        ));
    }
    Ok(())
}
