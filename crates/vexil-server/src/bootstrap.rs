//! First start: an empty database gets organization `default`, project `default` with
//! environments `development` and `production`, and a way in — the instance token from
//! `VEXIL_BOOTSTRAP_TOKEN` (idempotently), or else an admin user (owner of `default`) whose
//! generated password is printed once. Also the operators' user commands
//! (`vexil admin create-user`, `vexil admin reset-password`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::access::Role;
use crate::audit::{Actor, hash_secret};
use crate::credentials;
use crate::http::extract::RequestMeta;
use crate::store::organizations::{self, Organization};
use crate::store::projects::Project;
use crate::store::{
    Store, StoreResult, WriteTx, audit, new_id, now_rfc3339, sessions, tokens, users,
};

/// Visible prefix of management tokens.
pub const TOKEN_PREFIX: &str = "vx_pat_";

pub async fn run(
    store: &Store,
    bootstrap_token: Option<&SecretString>,
    admin_email: &str,
) -> anyhow::Result<()> {
    let mut tx = store.write().await?;
    let actor = Actor::system();
    let meta = RequestMeta::default();
    if organizations::count(tx.conn()).await? == 0 {
        let now = now_rfc3339();
        let org = Organization {
            id: new_id(),
            key: "default".into(),
            name: "Default".into(),
            version: 1,
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        organizations::insert(tx.conn(), &org).await?;
        audit::append(
            tx.conn(),
            audit::NewEntry {
                actor: &actor,
                action: "organization.create",
                resource_type: "organization",
                resource_id: &org.id,
                before: None,
                after: Some(json!(org)),
                comment: Some("first start"),
                meta: &meta,
            },
        )
        .await?;
        let project = Project {
            id: new_id(),
            organization_id: org.id,
            key: "default".into(),
            name: "Default".into(),
            description: String::new(),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        crate::http::projects::create_with_environments(
            &mut tx,
            &project,
            &actor,
            &meta,
            Some("first start"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the default project: {e}"))?;
        tracing::info!("first start: created organization, project and environments 'default'");
    }

    match bootstrap_token {
        Some(token) => {
            let token = token.expose_secret();
            let prefix: String = token.chars().take(12).collect();
            if tokens::ensure(
                tx.conn(),
                "bootstrap",
                &hash_secret(token),
                &prefix,
                "admin",
            )
            .await?
            {
                audit::append(
                    tx.conn(),
                    audit::NewEntry {
                        actor: &actor,
                        action: "token.create",
                        resource_type: "token",
                        resource_id: &prefix,
                        before: None,
                        after: Some(
                            json!({"name": "bootstrap", "prefix": prefix, "role": "admin"}),
                        ),
                        comment: Some("VEXIL_BOOTSTRAP_TOKEN"),
                        meta: &meta,
                    },
                )
                .await?;
                tracing::info!(prefix = %prefix, "created the admin token from VEXIL_BOOTSTRAP_TOKEN");
            }
        }
        None if tokens::count(tx.conn()).await? == 0 && users::count(tx.conn()).await? == 0 => {
            let email = admin_email.trim().to_lowercase();
            let password = credentials::random_password();
            let hash = credentials::hash_password(&password)?;
            let org = organizations::get_by_key(tx.conn(), "default").await?;
            let user = create_user(
                &mut tx,
                &email,
                "Admin",
                &hash,
                org.as_ref().map(|o| (o.id.as_str(), Role::Owner)),
                Some("first start"),
            )
            .await?;
            // Shown exactly once, on the terminal, not in the structured log stream.
            eprintln!(
                "\n  Vexil first start: created the admin user (owner of organization 'default').\n  \
                 Log in with POST /api/v1/auth/login and change the password (PUT /api/v1/users/me/password):\n\n    \
                 email:    {}\n    password: {password}\n\n  \
                 This password is shown only now. Lost it? `vexil admin reset-password --email {}`.\n  \
                 For automation, set VEXIL_BOOTSTRAP_TOKEN to an admin token of your choice.\n",
                user.email, user.email
            );
        }
        None => {}
    }
    tx.commit().await?;
    Ok(())
}

/// Creates a user (the email already normalized, the password already hashed), optionally
/// as a member of an organization, with audit entries, as the operator (`vexil admin`, first
/// start). Inside the caller's transaction.
pub async fn create_user(
    tx: &mut WriteTx<'_>,
    email: &str,
    name: &str,
    password_hash: &str,
    membership: Option<(&str, Role)>,
    comment: Option<&str>,
) -> anyhow::Result<users::User> {
    let actor = Actor::system();
    let meta = RequestMeta::default();
    if users::find_by_email(tx.conn(), email).await?.is_some() {
        anyhow::bail!("a user with email {email} already exists");
    }
    let user = insert_user(
        tx.conn(),
        email,
        name,
        password_hash,
        &actor,
        &meta,
        comment,
    )
    .await?;
    if let Some((org, role)) = membership {
        add_membership(tx.conn(), org, &user, role, &actor, &meta, comment).await?;
    }
    Ok(user)
}

/// Inserts a user and its `user.create` audit entry (every way a user comes to be: the
/// operator, an organization admin, single sign-on).
pub async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    email: &str,
    name: &str,
    password_hash: &str,
    actor: &Actor,
    meta: &RequestMeta,
    comment: Option<&str>,
) -> StoreResult<users::User> {
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
    audit::append(
        conn,
        audit::NewEntry {
            actor,
            action: "user.create",
            resource_type: "user",
            resource_id: &user.id,
            before: None,
            after: Some(json!(user)),
            comment,
            meta,
        },
    )
    .await?;
    Ok(user)
}

/// Makes a user a member of an organization, with its `member.add` audit entry (recorded in
/// that organization).
pub async fn add_membership(
    conn: &mut sqlx::AnyConnection,
    organization_id: &str,
    user: &users::User,
    role: Role,
    actor: &Actor,
    meta: &RequestMeta,
    comment: Option<&str>,
) -> StoreResult<()> {
    users::insert_membership(
        conn,
        organization_id,
        &user.id,
        role.as_str(),
        &now_rfc3339(),
    )
    .await?;
    let meta = RequestMeta {
        organization_id: Some(organization_id.to_owned()),
        ..meta.clone()
    };
    audit::append(
        conn,
        audit::NewEntry {
            actor,
            action: "member.add",
            resource_type: "member",
            resource_id: &user.id,
            before: None,
            after: Some(json!({"user_id": user.id, "email": user.email, "role": role.as_str()})),
            comment,
            meta: &meta,
        },
    )
    .await?;
    Ok(())
}

/// Sets a user's password (hashed already), ends their sessions and revokes their personal
/// tokens: whoever knew the old password is locked out. Returns the user.
pub async fn reset_password(
    tx: &mut WriteTx<'_>,
    email: &str,
    password_hash: &str,
) -> anyhow::Result<users::User> {
    let (user, _) = users::find_by_email(tx.conn(), email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    let now = now_rfc3339();
    users::set_password(tx.conn(), &user.id, password_hash, &now).await?;
    let sessions_ended = sessions::delete_for_user(tx.conn(), &user.id).await?;
    let tokens_revoked = tokens::revoke_personal(tx.conn(), &user.id, &now).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &Actor::system(),
            action: "user.password_reset",
            resource_type: "user",
            resource_id: &user.id,
            before: None,
            after: Some(
                json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked}),
            ),
            comment: Some("vexil admin reset-password"),
            meta: &RequestMeta::default(),
        },
    )
    .await?;
    Ok(user)
}
