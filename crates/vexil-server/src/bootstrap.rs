//! First start: an empty database gets organization `default`, project `default` with
//! environments `development` and `production`, and an admin token — the one from
//! `VEXIL_BOOTSTRAP_TOKEN` (idempotently), or a generated one printed once.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::audit::{Actor, hash_secret};
use crate::http::extract::RequestMeta;
use crate::store::organizations::{self, Organization};
use crate::store::projects::Project;
use crate::store::{Store, audit, new_id, now_rfc3339, tokens};

/// Visible prefix of management tokens.
pub const TOKEN_PREFIX: &str = "vx_pat_";

pub async fn run(store: &Store, bootstrap_token: Option<&SecretString>) -> anyhow::Result<()> {
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
        None if tokens::count(tx.conn()).await? == 0 => {
            let secret = format!(
                "{TOKEN_PREFIX}{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let prefix: String = secret.chars().take(12).collect();
            tokens::ensure(
                tx.conn(),
                "initial admin",
                &hash_secret(&secret),
                &prefix,
                "admin",
            )
            .await?;
            audit::append(
                tx.conn(),
                audit::NewEntry {
                    actor: &actor,
                    action: "token.create",
                    resource_type: "token",
                    resource_id: &prefix,
                    before: None,
                    after: Some(
                        json!({"name": "initial admin", "prefix": prefix, "role": "admin"}),
                    ),
                    comment: Some("first start"),
                    meta: &meta,
                },
            )
            .await?;
            // Shown exactly once, on the terminal, not in the structured log stream.
            eprintln!(
                "\n  Vexil first start: an admin API token was created. It is shown only now:\n\n    {secret}\n\n  \
                 Use it as `Authorization: Bearer <token>`. Set VEXIL_BOOTSTRAP_TOKEN to choose your own.\n"
            );
        }
        None => {}
    }
    tx.commit().await?;
    Ok(())
}
