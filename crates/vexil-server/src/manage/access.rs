//! The access checks that read the store: a principal's role in an organization, the
//! organizations it can see, and "requires role R here" with the API's 404-for-strangers,
//! 403-for-members rule.

use super::{Error, Result};
use crate::access::{Principal, Role, Subject};
use crate::audit::RequestMeta;
use crate::store::Conn;
use crate::store::{organizations, users};

impl Principal {
    /// The caller's role in an organization (`None`: not a member — answer 404).
    pub(crate) async fn role_in(
        &self,
        conn: &mut Conn,
        organization_id: &str,
    ) -> Result<Option<Role>> {
        Ok(match &self.subject {
            Subject::Instance => Some(Role::Owner),
            Subject::Service {
                organization_id: own,
            } => (own == organization_id).then_some(self.cap),
            Subject::User { user_id } => users::role_in(conn, user_id, organization_id)
                .await?
                .map(|r| r.min(self.cap)),
        })
    }

    /// The organizations the caller can see, each with its role (`None`: all, for the
    /// instance token).
    pub(crate) async fn organizations(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<Vec<(String, Role)>>> {
        Ok(match &self.subject {
            Subject::Instance => None,
            Subject::Service { organization_id } => {
                // A service token of a deleted organization is gone with it (cascade).
                let exists = organizations::get(conn, organization_id).await?.is_some();
                Some(if exists {
                    vec![(organization_id.clone(), self.cap)]
                } else {
                    Vec::new()
                })
            }
            Subject::User { user_id } => Some(
                users::memberships_of(conn, user_id)
                    .await?
                    .into_iter()
                    .map(|(org, role)| (org, role.min(self.cap)))
                    .collect(),
            ),
        })
    }

    /// The ids of the organizations the caller can see (`None`: all).
    pub(crate) async fn visible_organizations(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<Vec<String>>> {
        Ok(self
            .organizations(conn)
            .await?
            .map(|orgs| orgs.into_iter().map(|(org, _)| org).collect()))
    }

    /// Requires role `need` in the organization. Not a member: `not_found` (404, so that
    /// other organizations' ids cannot be probed); a member with too little: 403.
    pub(crate) async fn require(
        &self,
        conn: &mut Conn,
        organization_id: &str,
        need: Role,
        not_found: impl FnOnce() -> Error,
    ) -> Result<Role> {
        match self.role_in(conn, organization_id).await? {
            None => Err(not_found()),
            Some(role) => at_least(role, need).map(|()| role),
        }
    }
}

/// Forbidden unless `role` is at least `need`.
pub(crate) fn at_least(role: Role, need: Role) -> Result<()> {
    if role < need {
        return Err(Error::Forbidden(format!(
            "this needs the {} role in the organization; you have {}",
            need.as_str(),
            role.as_str()
        )));
    }
    Ok(())
}

/// A role given as input at `field`.
pub(crate) fn parse_role(field: &str, s: &str) -> Result<Role> {
    Role::parse(s)
        .ok_or_else(|| Error::invalid_field(field, "must be one of owner, admin, editor, viewer"))
}

/// For checks an operation completes from its input: requires `need` in the organization
/// the authorization layer resolved for this request (`meta.organization_id`).
pub(crate) async fn require_in_scope(
    conn: &mut Conn,
    principal: &Principal,
    meta: &RequestMeta,
    need: Role,
) -> Result<Role> {
    let org = meta
        .organization_id
        .as_deref()
        .ok_or_else(|| Error::internal("route without a resolved organization"))?;
    principal
        .require(conn, org, need, || {
            Error::NotFound("no such resource".into())
        })
        .await
}

/// For a change that alters what protected environments serve (`what` says how, or is
/// `None` when it does not): requires the admin role in the request's organization, as
/// [`require_in_scope`] does, saying why when it is missing.
pub(crate) async fn require_admin_for(
    conn: &mut Conn,
    principal: &Principal,
    meta: &RequestMeta,
    what: Option<String>,
) -> Result<()> {
    let Some(what) = what else { return Ok(()) };
    match require_in_scope(conn, principal, meta, Role::Admin).await {
        Ok(_) => Ok(()),
        Err(Error::Forbidden(_)) => Err(Error::Forbidden(format!(
            "{what}: changing what a protected environment serves needs the admin role"
        ))),
        Err(e) => Err(e),
    }
}
