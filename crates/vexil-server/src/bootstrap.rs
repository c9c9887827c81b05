//! First start: an empty database gets organization `default`, project `default` with
//! environments `development` and `production`, and a way in — the instance token from
//! `VEXIL_BOOTSTRAP_TOKEN` (idempotently), or else an admin user (owner of `default`) whose
//! generated password is printed once. It runs before the server listens, through the same
//! domain operations as everything else.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::access::Role;
use crate::audit::{Action, hash_secret};
use crate::config::MIN_BOOTSTRAP_TOKEN_LEN;
use crate::credentials;
use crate::manage::By;
use crate::manage::projects::create_in;
use crate::manage::users::{add_membership_in, insert_in};
use crate::store::organizations::{self, Organization};
use crate::store::projects::Project;
use crate::store::{Store, new_id, now_rfc3339, tokens, users};

/// What the token list shows in place of a prefix for the operator's own token.
const BOOTSTRAP_PREFIX: &str = "(bootstrap)";

pub(crate) async fn run(
    store: &Store,
    bootstrap_token: Option<&SecretString>,
    admin_email: &str,
) -> anyhow::Result<()> {
    let mut tx = store.write().await?;
    let by = By::system();
    let change = by.because(Some("first start"));
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
        change
            .created(tx.conn(), Action::OrganizationCreate, &org.id, &org)
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
        create_in(tx.conn(), &project, change).await?;
        tracing::info!("first start: created organization, project and environments 'default'");
    }

    match bootstrap_token {
        Some(token) => {
            let token = token.expose_secret();
            anyhow::ensure!(
                token.chars().count() >= MIN_BOOTSTRAP_TOKEN_LEN,
                "VEXIL_BOOTSTRAP_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LEN} characters: \
                 it is an owner of every organization (generate one, e.g. `openssl rand -hex 32`)"
            );
            // The token is chosen by the operator: no part of it is stored in clear or
            // logged, only its hash and its record's id.
            let hash = hash_secret(token);
            if let Some(id) =
                tokens::ensure(tx.conn(), "bootstrap", &hash, BOOTSTRAP_PREFIX, Role::Admin).await?
            {
                let after = json!({"id": id, "name": "bootstrap", "role": "admin"});
                by.because(Some("VEXIL_BOOTSTRAP_TOKEN"))
                    .record_json(tx.conn(), Action::TokenCreate, &id, None, Some(after))
                    .await?;
                tracing::info!(token_id = %id, "created the admin token from VEXIL_BOOTSTRAP_TOKEN");
            }
        }
        None if tokens::count(tx.conn()).await? == 0 && users::count(tx.conn()).await? == 0 => {
            let email = admin_email.trim().to_lowercase();
            let password = credentials::random_password();
            let hash = credentials::hash_password(&password)?;
            let user = insert_in(tx.conn(), &email, "Admin", &hash, change).await?;
            if let Some(org) = organizations::get_by_key(tx.conn(), "default").await? {
                add_membership_in(tx.conn(), &org.id, &user, Role::Owner, change).await?;
            }
            // Printed on a terminal, so not the admin's own: the console asks for a new one.
            users::mark_password_set_by_other(tx.conn(), &user.id).await?;
            // Shown exactly once, on the terminal, not in the structured log stream.
            eprintln!(
                "\n  Vexil first start: created the admin user (owner of organization 'default').\n  \
                 Sign in to the console (http://127.0.0.1:8080/ with the default --listen), which asks you to\n  \
                 choose your own password (or use the API: POST /api/v1/auth/login, then PUT /api/v1/users/me/password).\n\n    \
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
