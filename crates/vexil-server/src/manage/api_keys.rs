//! API keys of the evaluation plane: list, create (the secret is returned once and stored
//! only as a SHA-256 hash with a visible prefix), revoke, delete. The key ring reloads
//! when a committed write changed keys, so a revoke or delete takes effect at commit.

use serde::Deserialize;
use serde_json::Map;

use super::fields::{check_comment, check_expiry, check_name};
use super::{By, Error, Result, found, load};
use crate::audit::{Action, hash_secret};
use crate::keys::KeyKind;
use crate::store::api_keys::{self, ApiKey};
use crate::store::projects::Project;
use crate::store::{Store, environments, new_id, now_rfc3339};

/// How many characters of the secret every key record shows.
const PREFIX_LEN: usize = 12;

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ApiKey>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    Ok(api_keys::list(&mut conn, project_id, limit, offset).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "web", "type": "client", "environment_id": "0190e0a4-0000-7000-8000-000000000004",
    "expires_at": "2027-01-01T00:00:00Z", "comment": "storefront"}))]
pub(crate) struct NewApiKey {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    /// `server` (sees rules, reads `/api/v1/sdk/config`), `client` or `mobile` (see
    /// `client_side` flags only).
    #[serde(rename = "type")]
    #[schema(example = "server")]
    kind: String,
    environment_id: String,
    expires_at: Option<String>,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

impl NewApiKey {
    /// Checks every field that needs no database; returns the kind and the normalized
    /// expiry, or invalid input naming each bad field.
    fn check(&self) -> Result<(KeyKind, Option<String>)> {
        let mut fields = Map::new();
        let mut note = |result: Result<()>| {
            if let Err(Error::Invalid { fields: f, .. }) = result {
                fields.extend(f);
            }
        };
        note(check_name("name", &self.name));
        note(check_comment(self.comment.as_deref()));
        let kind = KeyKind::parse(&self.kind);
        if kind.is_none() {
            note(Err(Error::invalid_field(
                "type",
                "must be one of server, client, mobile",
            )));
        }
        let expires_at = match self.expires_at.as_deref() {
            Some(text) => match check_expiry("expires_at", text) {
                Ok(at) => Some(at),
                Err(e) => {
                    note(Err(e));
                    None
                }
            },
            None => None,
        };
        match kind {
            Some(kind) if fields.is_empty() => Ok((kind, expires_at)),
            _ => Err(Error::invalid_fields(fields)),
        }
    }
}

/// A new secret: the kind's prefix and 64 hex characters of randomness.
fn new_secret(kind: KeyKind) -> String {
    format!(
        "{}{}{}",
        kind.prefix(),
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Creates a key bound to an environment of the project: the record and its secret.
pub(crate) async fn create(
    store: &Store,
    by: &By,
    project_id: &str,
    input: NewApiKey,
) -> Result<(ApiKey, String)> {
    let (kind, expires_at) = input.check()?;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    let in_project = environments::get(tx.conn(), &input.environment_id)
        .await?
        .is_some_and(|env| env.project_id == project_id);
    if !in_project {
        return Err(Error::invalid_field(
            "environment_id",
            "no such environment in this project",
        ));
    }
    let secret = new_secret(kind);
    let record = ApiKey {
        id: new_id(),
        project_id: project_id.to_owned(),
        environment_id: input.environment_id,
        name: input.name,
        kind: input.kind,
        prefix: secret.chars().take(PREFIX_LEN).collect(),
        created_at: now_rfc3339(),
        created_by: by.actor.id.clone(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    api_keys::insert(tx.conn(), &record, &hash_secret(&secret)).await?;
    let change = by.because(input.comment.as_deref());
    change
        .created(tx.conn(), Action::ApiKeyCreate, &record.id, &record)
        .await?;
    tx.keys_changed();
    tx.commit().await?;
    Ok((record, secret))
}

/// Revokes a key (a no-op when it already is).
pub(crate) async fn revoke(
    store: &Store,
    by: &By,
    id: &str,
    comment: Option<&str>,
) -> Result<ApiKey> {
    check_comment(comment)?;
    let mut tx = store.write().await?;
    let before = found(api_keys::get(tx.conn(), id).await?, "API key", id)?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let at = now_rfc3339();
    api_keys::revoke(tx.conn(), id, &at).await?;
    let after = ApiKey {
        revoked_at: Some(at),
        ..before.clone()
    };
    let change = by.because(comment);
    change
        .record(
            tx.conn(),
            Action::ApiKeyRevoke,
            id,
            Some(&before),
            Some(&after),
        )
        .await?;
    tx.keys_changed();
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn delete(store: &Store, by: &By, id: &str) -> Result<()> {
    let mut tx = store.write().await?;
    let key = found(api_keys::get(tx.conn(), id).await?, "API key", id)?;
    api_keys::delete(tx.conn(), id).await?;
    let change = by.because(None);
    change
        .record(tx.conn(), Action::ApiKeyDelete, id, Some(&key), None)
        .await?;
    tx.keys_changed();
    tx.commit().await?;
    Ok(())
}
