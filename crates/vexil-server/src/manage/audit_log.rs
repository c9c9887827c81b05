//! Reading the audit trail: entries filtered to what the caller may see (their
//! organizations' entries and their own actions; everything for the instance token), and
//! verifying the hash chain for the organizations the caller administers.

use vexil_core::time::{format_rfc3339, parse_rfc3339};

use super::{Error, Result};
use crate::access::{Principal, Role};
use crate::audit::AuditEntry;
use crate::store::{Conn, Store, audit};

/// An RFC 3339 timestamp given at `field`, in the stored form (UTC, milliseconds, fixed
/// width), whose text order is time order.
pub(crate) fn stored_time(field: &str, text: &str) -> Result<String> {
    parse_rfc3339(text).map(format_rfc3339).ok_or_else(|| {
        Error::invalid_field(
            field,
            "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
        )
    })
}

/// What of the trail the caller may read: everything (the instance token), or the entries
/// of their organizations and their own actions (logins, tokens).
async fn visibility(conn: &mut Conn, principal: &Principal) -> Result<Option<audit::Visibility>> {
    Ok(principal
        .organizations(conn)
        .await?
        .map(|orgs| audit::Visibility {
            organizations: orgs.into_iter().map(|(org, _)| org).collect(),
            actor_id: principal.actor.id.clone(),
        }))
}

/// A page of the entries the caller may read, newest first.
pub(crate) async fn list(
    store: &Store,
    principal: &Principal,
    filter: audit::Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditEntry>, i64)> {
    let mut conn = store.read().await?;
    let filter = audit::Filter {
        visible_to: visibility(&mut conn, principal).await?,
        ..filter
    };
    Ok(audit::list(&mut conn, &filter, limit, offset).await?)
}

/// One entry, if the caller may read it.
pub(crate) async fn get(store: &Store, principal: &Principal, id: &str) -> Result<AuditEntry> {
    let mut conn = store.read().await?;
    let visible = visibility(&mut conn, principal).await?;
    audit::get(&mut conn, id)
        .await?
        .filter(|e| {
            visible.as_ref().is_none_or(|v| {
                e.actor["id"] == v.actor_id.as_str()
                    || e.organization_id
                        .as_ref()
                        .is_some_and(|o| v.organizations.contains(o))
            })
        })
        .ok_or_else(|| Error::not_found("audit log entry", id))
}

/// Recomputes the chain: the whole of it for the instance's operators, otherwise what it
/// says of the entries of the organizations the caller administers (`organization_id`:
/// only that one).
pub(crate) async fn verify(
    store: &Store,
    principal: &Principal,
    organization_id: Option<String>,
) -> Result<audit::Verification> {
    let mut conn = store.read().await?;
    let scope = match (principal.organizations(&mut conn).await?, organization_id) {
        (None, None) => None,
        (None, Some(org)) => Some(vec![org]),
        (Some(orgs), wanted) => {
            let admin_of: Vec<String> = orgs
                .into_iter()
                .filter(|(org, role)| {
                    *role >= Role::Admin && wanted.as_ref().is_none_or(|w| w == org)
                })
                .map(|(org, _)| org)
                .collect();
            if admin_of.is_empty() {
                return Err(Error::Forbidden(
                    "verifying the audit chain needs the admin role in the organization".into(),
                ));
            }
            Some(admin_of)
        }
    };
    Ok(audit::verify(&mut conn, scope.as_deref()).await?)
}
