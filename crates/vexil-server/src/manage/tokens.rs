//! Management tokens for automation: list, create, get, revoke, delete. A personal token
//! acts as its user, with at most its role; a service token belongs to one organization
//! with its role there and is managed by that organization's admins. The secret
//! (`vx_pat_…` personal, `vx_svc_…` service) is returned once; the store keeps its SHA-256 hash.

use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{at_least, parse_role};
use super::fields::{check_comment, check_expiry, check_name};
use super::{By, Error, Result};
use crate::access::{Principal, Role, Subject, TokenKind};
use crate::audit::{Action, hash_secret};
use crate::credentials::random_secret;
use crate::store::Conn;
use crate::store::{Store, new_id, now_rfc3339, organizations, tokens};

/// Visible prefix of personal access tokens.
pub(crate) const PERSONAL_PREFIX: &str = "vx_pat_";
/// Visible prefix of service tokens (those made before it existed keep `vx_pat_` and work).
pub(crate) const SERVICE_PREFIX: &str = "vx_svc_";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "deploy bot", "kind": "service", "organization_id": "0190e0a4-0000-7000-8000-000000000001",
    "role": "editor", "expires_at": "2027-01-01T00:00:00Z"}))]
pub(crate) struct NewToken {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    /// `personal` (default) or `service`.
    #[schema(example = "personal")]
    kind: Option<String>,
    /// A service token's organization.
    organization_id: Option<String>,
    /// `viewer`, `editor`, `admin` or `owner`: a service token's role (required), a personal
    /// token's cap (default none).
    #[schema(example = "editor")]
    role: Option<String>,
    /// RFC 3339, in the future.
    expires_at: Option<String>,
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

/// Whether the caller may see and manage this token.
async fn may_manage(conn: &mut Conn, principal: &Principal, token: &tokens::Token) -> Result<bool> {
    if principal.is_instance() {
        return Ok(true);
    }
    // A personal token reaches no token of more power than its own cap.
    if principal.token_id.is_some() && token.role > principal.cap {
        return Ok(false);
    }
    Ok(match token.kind {
        TokenKind::Personal => token.user_id.as_deref() == principal.user_id(),
        TokenKind::Service => match &token.organization_id {
            Some(org) => principal
                .role_in(conn, org)
                .await?
                .is_some_and(|r| r >= Role::Admin),
            None => false,
        },
        TokenKind::Instance => false,
    })
}

/// Creates a token: the record with its secret under `token`, shown only now.
pub(crate) async fn create(
    store: &Store,
    principal: &Principal,
    by: &By,
    input: NewToken,
) -> Result<Value> {
    check_name("name", &input.name)?;
    check_comment(input.comment.as_deref())?;
    // A token never makes tokens (which would outlive its revocation or expiry): they are
    // made from a session, or with the operator's instance token.
    if principal.token_id.is_some() && !principal.is_instance() {
        return Err(Error::Forbidden(
            "tokens are created from a logged-in session (or with the instance token), not with another token".into(),
        ));
    }
    let kind = match input.kind.as_deref() {
        None => TokenKind::Personal,
        Some(k) => TokenKind::parse(k)
            .filter(|k| *k != TokenKind::Instance)
            .ok_or_else(|| Error::invalid_field("kind", "must be personal or service"))?,
    };
    let role = input
        .role
        .as_deref()
        .map(|r| parse_role("role", r))
        .transpose()?;
    let expires_at = input
        .expires_at
        .as_deref()
        .map(|at| check_expiry("expires_at", at))
        .transpose()?;
    let mut tx = store.write().await?;
    let mut by = by.clone();
    let (user_id, organization_id, role) = match kind {
        TokenKind::Service => {
            let org = input.organization_id.clone().ok_or_else(|| {
                Error::invalid_field("organization_id", "required for a service token")
            })?;
            let role =
                role.ok_or_else(|| Error::invalid_field("role", "required for a service token"))?;
            // The instance token is an owner everywhere, even where nothing exists.
            if organizations::get(tx.conn(), &org).await?.is_none() {
                return Err(Error::not_found("organization", &org));
            }
            let caller = principal
                .require(tx.conn(), &org, Role::Admin, || {
                    Error::not_found("organization", &org)
                })
                .await?;
            at_least(caller, role)?;
            by = by.in_organization(&org);
            (None, Some(org), role)
        }
        _ => {
            if input.organization_id.is_some() {
                return Err(Error::invalid_field(
                    "organization_id",
                    "only service tokens belong to an organization",
                ));
            }
            let Subject::User { user_id } = &principal.subject else {
                return Err(Error::Forbidden(
                    "personal tokens belong to users: log in, or create a service token".into(),
                ));
            };
            // A token never gets more than the credential that makes it.
            let role = role.unwrap_or(principal.cap).min(principal.cap);
            (Some(user_id.clone()), None, role)
        }
    };
    let secret = random_secret(match kind {
        TokenKind::Service => SERVICE_PREFIX,
        _ => PERSONAL_PREFIX,
    });
    let token = tokens::Token {
        id: new_id(),
        name: input.name,
        kind,
        prefix: secret.chars().take(12).collect(),
        role,
        user_id,
        organization_id,
        created_at: now_rfc3339(),
        created_by: Some(by.actor.id.clone()),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    tokens::insert(tx.conn(), &token, &hash_secret(&secret)).await?;
    let change = by.because(input.comment.as_deref());
    change
        .created(tx.conn(), Action::TokenCreate, &token.id, &token)
        .await?;
    tx.commit().await?;
    let mut out = json!(token);
    if let Some(map) = out.as_object_mut() {
        map.insert("token".into(), json!(secret));
    }
    Ok(out)
}

/// The tokens the caller may see: their personal ones and the service tokens of the
/// organizations they administer (all, for the instance token).
pub(crate) async fn list(
    store: &Store,
    principal: &Principal,
    limit: i64,
    offset: i64,
) -> Result<(Vec<tokens::Token>, i64)> {
    let mut conn = store.read().await?;
    let orgs = principal.organizations(&mut conn).await?.map(|orgs| {
        orgs.into_iter()
            .filter(|(_, role)| *role >= Role::Admin)
            .map(|(org, _)| org)
            .collect::<Vec<_>>()
    });
    let user = principal.user_id();
    Ok(tokens::list(&mut conn, user, orgs.as_deref(), limit, offset).await?)
}

async fn load(conn: &mut Conn, principal: &Principal, id: &str) -> Result<tokens::Token> {
    match tokens::get(conn, id).await? {
        Some(t) if may_manage(conn, principal, &t).await? => Ok(t),
        _ => Err(Error::not_found("token", id)),
    }
}

pub(crate) async fn get(store: &Store, principal: &Principal, id: &str) -> Result<tokens::Token> {
    let mut conn = store.read().await?;
    load(&mut conn, principal, id).await
}

/// Revokes (`delete == false`: the record stays, as revoked) or deletes a token; takes
/// effect on its next request.
pub(crate) async fn end(
    store: &Store,
    principal: &Principal,
    by: &By,
    id: &str,
    delete: bool,
) -> Result<Option<tokens::Token>> {
    let mut tx = store.write().await?;
    let before = load(tx.conn(), principal, id).await?;
    let mut by = by.clone();
    by.meta.organization_id.clone_from(&before.organization_id);
    let (after, action) = if delete {
        tokens::delete(tx.conn(), id).await?;
        (None, Action::TokenDelete)
    } else {
        tokens::revoke(tx.conn(), id, &now_rfc3339()).await?;
        (tokens::get(tx.conn(), id).await?, Action::TokenRevoke)
    };
    by.because(None)
        .record(tx.conn(), action, id, Some(&before), after.as_ref())
        .await?;
    tx.commit().await?;
    Ok(after)
}
