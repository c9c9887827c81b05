//! People: creating users (by the operator, an organization admin, or single sign-on),
//! memberships, the caller's own account (name, password), the operator's password reset,
//! and claiming an admin-created account through single sign-on.

use serde::Deserialize;
use serde_json::{Value, json};

use super::fields::{Patch, check_name};
use super::{By, Change, Error, Result};
use crate::access::{Principal, Role};
use crate::audit::{Action, Actor};
use crate::credentials;
use crate::store::Conn;
use crate::store::{Store, new_id, now_rfc3339, organizations, sessions, tokens, users};

/// Hashes a password off the async workers (argon2 is deliberately slow).
pub(crate) async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await?
        .map_err(Error::Internal)
}

/// A hash no password matches, for accounts that sign in through the identity provider.
pub(crate) async fn unusable_password() -> Result<String> {
    tokio::task::spawn_blocking(credentials::unusable_password_hash)
        .await?
        .map_err(Error::Internal)
}

/// Inserts a user and its `user.create` audit entry (every way a user comes to be: the
/// operator, an organization admin, single sign-on).
pub(crate) async fn insert_in(
    conn: &mut Conn,
    email: &str,
    name: &str,
    password_hash: &str,
    change: Change<'_>,
) -> Result<users::User> {
    let now = now_rfc3339();
    let user = users::User {
        id: new_id(),
        email: email.to_owned(),
        name: name.to_owned(),
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    users::insert(conn, &user, password_hash).await?;
    change
        .record(conn, Action::UserCreate, &user.id, None, Some(&user))
        .await?;
    Ok(user)
}

/// Makes a user a member of an organization, with its `member.add` audit entry (filed in
/// that organization).
pub(crate) async fn add_membership_in(
    conn: &mut Conn,
    organization_id: &str,
    user: &users::User,
    role: Role,
    change: Change<'_>,
) -> Result<()> {
    users::insert_membership(conn, organization_id, &user.id, role, &now_rfc3339()).await?;
    let by = change.by.in_organization(organization_id);
    let after = json!({"user_id": user.id, "email": user.email, "role": role.as_str()});
    by.because(change.comment)
        .record_json(conn, Action::MemberAdd, &user.id, None, Some(after))
        .await
}

/// Creates a user as the operator (`vexil admin`, first start), optionally as a member of
/// the organization with key `organization`. The email is normalized and the password
/// hashed already.
pub(crate) async fn create_by_operator(
    store: &Store,
    email: &str,
    name: &str,
    password_hash: &str,
    membership: Option<(&str, Role)>,
    comment: &str,
) -> Result<users::User> {
    let by = By::system();
    let change = by.because(Some(comment));
    let mut tx = store.write().await?;
    if users::find_by_email(tx.conn(), email).await?.is_some() {
        return Err(Error::conflict(
            format!("a user with email {email} already exists"),
            Value::Null,
        ));
    }
    let org = match membership {
        Some((key, role)) => match organizations::get_by_key(tx.conn(), key).await? {
            Some(org) => Some((org.id, role)),
            None => return Err(Error::NotFound(format!("no organization with key '{key}'"))),
        },
        None => None,
    };
    let user = insert_in(tx.conn(), email, name, password_hash, change).await?;
    if let Some((org, role)) = org {
        add_membership_in(tx.conn(), &org, &user, role, change).await?;
    }
    tx.commit().await?;
    Ok(user)
}

/// Sets a user's password (hashed already) as the operator, ends their sessions and
/// revokes their personal tokens: whoever knew the old password is locked out.
pub(crate) async fn reset_password(
    store: &Store,
    email: &str,
    password_hash: &str,
) -> Result<users::User> {
    let mut tx = store.write().await?;
    let (user, _) = users::find_by_email(tx.conn(), email)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user with email {email}")))?;
    let by = By::system();
    let change = by.because(Some("vexil admin reset-password"));
    lock_out_in(
        tx.conn(),
        &user,
        password_hash,
        change,
        Action::UserPasswordReset,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Replaces a user's password hash, ends their sessions and revokes their personal tokens,
/// recorded as `action` with what ended (plus `extra` fields).
async fn lock_out_in(
    conn: &mut Conn,
    user: &users::User,
    password_hash: &str,
    change: Change<'_>,
    action: Action,
    extra: Option<(&str, &str)>,
) -> Result<()> {
    let now = now_rfc3339();
    users::set_password(conn, &user.id, password_hash, &now).await?;
    let sessions_ended = sessions::delete_for_user(conn, &user.id).await?;
    let tokens_revoked = tokens::revoke_personal(conn, &user.id, &now).await?;
    let mut after = json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked});
    if let (Some((k, v)), Some(map)) = (extra, after.as_object_mut()) {
        map.insert(k.into(), json!(v));
    }
    change
        .record_json(conn, action, &user.id, None, Some(after))
        .await
}

/// The caller as a user (sessions and personal tokens), or forbidden.
pub(crate) fn user_id(principal: &Principal) -> Result<&str> {
    principal.user_id().ok_or_else(|| {
        Error::Forbidden(
            "this credential is not a user's (use a session or a personal token)".into(),
        )
    })
}

/// The caller's account and organizations.
pub(crate) async fn me(store: &Store, principal: &Principal) -> Result<(users::User, Value)> {
    let id = user_id(principal)?;
    let mut conn = store.read().await?;
    let user = users::get(&mut conn, id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let organizations = users::organizations_of(&mut conn, id).await?;
    Ok((user, json!(organizations)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChanges {
    name: String,
}

/// Renames the caller (email and id never change here).
pub(crate) async fn update_me(
    store: &Store,
    principal: &Principal,
    by: &By,
    patch: &Patch,
) -> Result<users::User> {
    let id = user_id(principal)?.to_owned();
    let mut tx = store.write().await?;
    let before = users::get(tx.conn(), &id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let changes: UserChanges = patch.apply(
        json!({"name": before.name}),
        &["email", "id"],
        &json!({"email": before.email, "id": before.id}),
    )?;
    check_name("name", &changes.name)?;
    let after = users::User {
        name: changes.name,
        version: before.version + 1,
        updated_at: now_rfc3339(),
        ..before.clone()
    };
    users::update_name(tx.conn(), &after).await?;
    let change = by.because(patch.comment.as_deref());
    change
        .record(
            tx.conn(),
            Action::UserUpdate,
            &id,
            Some(&before),
            Some(&after),
        )
        .await?;
    tx.commit().await?;
    Ok(after)
}

/// The caller's account and stored password hash (for a password check).
pub(crate) async fn with_password(
    store: &Store,
    principal: &Principal,
) -> Result<(users::User, String)> {
    let id = user_id(principal)?;
    let mut conn = store.read().await?;
    let user = users::get(&mut conn, id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let stored = users::password_hash(&mut conn, id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok((user, stored))
}

/// The caller's own password change: the new one must be strong enough, the current one
/// right (checked under the same limits as sign-in, so that a stolen session is no
/// password oracle). Then as [`change_password`].
pub(crate) async fn change_own_password(
    store: &Store,
    limiter: &crate::login_limit::LoginLimiter,
    principal: &Principal,
    by: &By,
    current: String,
    new: String,
) -> Result<()> {
    user_id(principal)?;
    credentials::check_password_strength(&new)
        .map_err(|m| Error::invalid_field("new_password", m))?;
    if current.len() > credentials::MAX_PASSWORD_LEN {
        return Err(Error::WrongCurrentPassword);
    }
    let (user, stored) = with_password(store, principal).await?;
    let ip = by.meta.ip.as_deref();
    if let Err(wait) = limiter.check(&user.email, ip) {
        return Err(Error::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let hashed = tokio::task::spawn_blocking(move || {
        credentials::verify_password(&current, &stored)
            .then(|| credentials::hash_password(&new))
            .transpose()
    })
    .await?
    .map_err(Error::Internal)?;
    let Some(hashed) = hashed else {
        return Err(Error::WrongCurrentPassword);
    };
    limiter.record_success(&user.email, ip);
    change_password(store, by, &user, &hashed).await
}

/// Whether the signed-in user's password was set by someone else (an admin adding them, an
/// operator resetting it): the console then asks for a new one before anything else.
pub(crate) async fn must_change_password(store: &Store, principal: &Principal) -> Result<bool> {
    let Ok(id) = user_id(principal) else {
        return Ok(false);
    };
    let mut conn = store.read().await?;
    Ok(users::password_set_by_other(&mut conn, id).await?)
}

/// Sets the caller's new password (verified and hashed by the caller). Every session of
/// the user ends, this one included, and so do their personal tokens: whoever knew the
/// old password is logged out, and the user logs in again with the new one.
pub(crate) async fn change_password(
    store: &Store,
    by: &By,
    user: &users::User,
    password_hash: &str,
) -> Result<()> {
    let mut tx = store.write().await?;
    let change = by.because(None);
    let action = Action::UserPasswordChange;
    lock_out_in(tx.conn(), user, password_hash, change, action, None).await?;
    tx.commit().await?;
    Ok(())
}

/// The provider vouches that this person owns the email, but an organization admin set
/// the account's password: whoever knows it is locked out (password made unusable,
/// sessions ended, personal tokens revoked) before the person signs in.
pub(crate) async fn claim_by_sso(store: &Store, user: users::User, by: &By) -> Result<users::User> {
    let hash = unusable_password().await?;
    let by = By {
        actor: Actor {
            id: user.id.clone(),
            name: user.email.clone(),
        },
        meta: by.meta.clone(),
    };
    let change = by.because(Some(
        "signed in through the identity provider; the admin-set password no longer works",
    ));
    let mut tx = store.write().await?;
    let action = Action::UserClaimed;
    lock_out_in(
        tx.conn(),
        &user,
        &hash,
        change,
        action,
        Some(("via", "oidc")),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// The user with this email, or a new one (with an unusable password: they sign in
/// through the provider) joining `provision` (an organization key and role) when given.
pub(crate) async fn find_or_create_by_sso(
    store: &Store,
    by: &By,
    email: &str,
    name: &str,
    provision: Option<(&str, Role)>,
) -> Result<users::User> {
    {
        let mut conn = store.read().await?;
        if let Some((user, _)) = users::find_by_email(&mut conn, email).await? {
            if !users::password_set_by_other(&mut conn, &user.id).await? {
                return Ok(user);
            }
            drop(conn);
            return claim_by_sso(store, user, by).await;
        }
    }
    let hash = unusable_password().await?;
    let mut tx = store.write().await?;
    if let Some((user, _)) = users::find_by_email(tx.conn(), email).await? {
        return Ok(user);
    }
    let name = if name.trim().is_empty() { email } else { name };
    let by = By {
        actor: Actor {
            id: "oidc".into(),
            name: format!("single sign-on ({email})"),
        },
        meta: by.meta.clone(),
    };
    let change = by.because(Some("first single sign-on"));
    let user = insert_in(tx.conn(), email, name, &hash, change).await?;
    if let Some((org_key, role)) = provision
        && let Some(org) = organizations::get_by_key(tx.conn(), org_key).await?
    {
        add_membership_in(tx.conn(), &org.id, &user, role, change).await?;
    }
    tx.commit().await?;
    Ok(user)
}
