//! What the `vexil` binary's operator commands (`migrate`, `admin create-user`,
//! `admin reset-password`) may do against the database directly, whether the server runs
//! or not: the same domain operations the API uses, as the system actor.

use std::sync::Arc;

use crate::access::Role;
use crate::config::DatabaseConfig;
use crate::manage;
use crate::store::Store;

/// A connection to a migrated database, for operator commands.
#[derive(Debug)]
pub struct Operator {
    store: Arc<Store>,
}

/// A user an operator command created or changed.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
}

impl Operator {
    /// Connects and applies pending migrations.
    pub async fn open(db: &DatabaseConfig) -> anyhow::Result<Operator> {
        let store = Store::connect(&db.database_url).await?;
        store.migrate().await?;
        Ok(Operator { store })
    }

    /// Creates a user with an already chosen password, optionally as a member of the
    /// organization with key `organization` in `role` (owner, admin, editor or viewer).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password: &str,
        membership: Option<(&str, &str)>,
    ) -> anyhow::Result<UserSummary> {
        let membership = match membership {
            Some((org, role)) => Some((
                org,
                Role::parse(role).ok_or_else(|| {
                    anyhow::anyhow!("--role must be owner, admin, editor or viewer")
                })?,
            )),
            None => None,
        };
        let hash = manage::users::hash_password(password.to_owned()).await?;
        let comment = "vexil admin create-user";
        let user =
            manage::users::create_by_operator(&self.store, email, name, &hash, membership, comment)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(UserSummary {
            id: user.id,
            email: user.email,
        })
    }

    /// Sets a user's password, ends their sessions and revokes their personal tokens.
    pub async fn reset_password(&self, email: &str, password: &str) -> anyhow::Result<UserSummary> {
        let hash = manage::users::hash_password(password.to_owned()).await?;
        let user = manage::users::reset_password(&self.store, email, &hash)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(UserSummary {
            id: user.id,
            email: user.email,
        })
    }

    pub async fn close(self) {
        self.store.close().await;
    }
}
