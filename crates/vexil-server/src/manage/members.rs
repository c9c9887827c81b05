//! Organization membership: list, add (an unknown email creates the user, with a one-time
//! password unless one is given), change a role, remove. Admins manage editors, viewers
//! and admins; only owners grant, change or remove the owner role, and the last owner
//! cannot be removed or demoted.

use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{at_least, parse_role};
use super::fields::{check_comment, check_email, check_name};
use super::users::{add_membership_in, hash_password, insert_in};
use super::{By, Error, Result, found};
use crate::access::{Principal, Role, Subject};
use crate::audit::Action;
use crate::credentials;
use crate::store::Conn;
use crate::store::{Store, now_rfc3339, users};

pub(crate) async fn list(
    store: &Store,
    org: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<users::Member>, i64)> {
    let mut conn = store.read().await?;
    Ok(users::list_members(&mut conn, org, limit, offset).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@example.com", "role": "editor", "name": "Bob"}))]
pub(crate) struct NewMember {
    email: String,
    /// `viewer`, `editor`, `admin` or `owner`.
    #[schema(example = "editor")]
    role: String,
    /// For a new user (default: the email's local part).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: Option<String>,
    /// For a new user (default: a generated one-time password, returned once).
    password: Option<String>,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

/// The caller's role in the organization (the authorization layer has checked it).
async fn caller_role(conn: &mut Conn, principal: &Principal, org: &str) -> Result<Role> {
    let role = principal.role_in(conn, org).await?;
    found(role, "organization", org)
}

/// The caller's role and the member they change, who must not be an owner unless the
/// caller is one.
async fn member_for(
    conn: &mut Conn,
    principal: &Principal,
    (org, user_id): (&str, &str),
) -> Result<(Role, users::Member)> {
    let caller = caller_role(conn, principal, org).await?;
    let member = found(
        users::get_member(conn, org, user_id).await?,
        "member",
        user_id,
    )?;
    require_owner_for(member.role, caller)?;
    Ok((caller, member))
}

/// Owners alone may touch the owner role.
fn require_owner_for(role: Role, caller: Role) -> Result<()> {
    if role == Role::Owner {
        at_least(caller, Role::Owner)?;
    }
    Ok(())
}

/// Adds a member: the member record, plus the generated password when the user was
/// created here without one.
pub(crate) async fn add(
    store: &Store,
    principal: &Principal,
    by: &By,
    org: &str,
    input: NewMember,
) -> Result<Value> {
    let email = check_email("email", &input.email)?;
    let role = parse_role("role", &input.role)?;
    let may_create_users = !matches!(principal.subject, Subject::Service { .. });
    check_comment(input.comment.as_deref())?;
    if let Some(name) = &input.name {
        check_name("name", name)?;
    }
    if let Some(password) = &input.password {
        credentials::check_password_strength(password)
            .map_err(|m| Error::invalid_field("password", m))?;
    }
    // Hashing is slow: done before taking the write lock, used only if the user is new.
    let generated = input.password.is_none().then(credentials::random_password);
    let password = input.password.clone().or_else(|| generated.clone());
    let hash = hash_password(password.unwrap_or_default()).await?;
    let change = by.because(input.comment.as_deref());
    let mut tx = store.write().await?;
    let caller = caller_role(tx.conn(), principal, org).await?;
    require_owner_for(role, caller)?;
    let (user, created) = match users::find_by_email(tx.conn(), &email).await? {
        Some((user, _)) => (user, false),
        None if !may_create_users => {
            return Err(Error::Forbidden(
                "a service token adds existing users only; people are created from a session or by an operator".into(),
            ));
        }
        None => {
            let name = input
                .name
                .clone()
                .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let user = insert_in(tx.conn(), &email, &name, &hash, change).await?;
            users::mark_password_set_by_other(tx.conn(), &user.id).await?;
            (user, true)
        }
    };
    // An account whose password its creator knows could be anyone's: it joins another
    // organization only once its user has chosen their own password.
    if !created
        && !principal.is_instance()
        && users::password_set_by_other(tx.conn(), &user.id).await?
    {
        return Err(Error::conflict(
            format!(
                "{email} has not yet chosen their own password; they must log in and change it before joining another organization"
            ),
            json!({"user_id": user.id}),
        ));
    }
    if users::role_in(tx.conn(), &user.id, org).await?.is_some() {
        return Err(Error::conflict(
            format!("{email} is already a member"),
            json!({"user_id": user.id}),
        ));
    }
    add_membership_in(tx.conn(), org, &user, role, change).await?;
    let member = users::get_member(tx.conn(), org, &user.id)
        .await?
        .ok_or_else(|| Error::internal("membership vanished"))?;
    tx.commit().await?;
    let mut out = json!(member);
    if created && let (Some(p), Some(map)) = (generated, out.as_object_mut()) {
        map.insert("password".into(), json!(p));
    }
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin", "comment": "now runs releases"}))]
pub(crate) struct MemberChanges {
    /// `viewer`, `editor`, `admin` or `owner`.
    #[schema(example = "admin")]
    role: String,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

pub(crate) async fn update(
    store: &Store,
    principal: &Principal,
    by: &By,
    (org, user_id): (&str, &str),
    input: MemberChanges,
) -> Result<users::Member> {
    let role = parse_role("role", &input.role)?;
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    let (caller, before) = member_for(tx.conn(), principal, (org, user_id)).await?;
    require_owner_for(role, caller)?;
    if before.role == Role::Owner
        && role != Role::Owner
        && users::count_owners(tx.conn(), org).await? <= 1
    {
        return Err(Error::conflict(
            "the organization's last owner cannot be demoted; make someone else owner first",
            json!({"user_id": user_id}),
        ));
    }
    users::set_role(tx.conn(), org, user_id, role, &now_rfc3339()).await?;
    let after = found(
        users::get_member(tx.conn(), org, user_id).await?,
        "member",
        user_id,
    )?;
    let change = by.because(input.comment.as_deref());
    change
        .record(
            tx.conn(),
            Action::MemberUpdate,
            user_id,
            Some(&before),
            Some(&after),
        )
        .await?;
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn remove(
    store: &Store,
    principal: &Principal,
    by: &By,
    (org, user_id): (&str, &str),
) -> Result<()> {
    let mut tx = store.write().await?;
    let (_, before) = member_for(tx.conn(), principal, (org, user_id)).await?;
    if before.role == Role::Owner && users::count_owners(tx.conn(), org).await? <= 1 {
        return Err(Error::conflict(
            "the organization's last owner cannot be removed",
            json!({"user_id": user_id}),
        ));
    }
    users::delete_membership(tx.conn(), org, user_id).await?;
    let change = by.because(None);
    change
        .record(
            tx.conn(),
            Action::MemberRemove,
            user_id,
            Some(&before),
            None,
        )
        .await?;
    tx.commit().await?;
    Ok(())
}
