//! Who may do what: roles per organization, the authenticated [`Principal`], and the
//! checks handlers and the authorization layer (`http::authz`) apply.
//!
//! - `viewer` reads; `editor` also changes flags, segments and configurations in
//!   environments that are not protected; `admin` does everything in the organization
//!   (protected environments, projects, environments, API keys, members, service tokens);
//!   `owner` also manages owners and may delete the organization.
//! - A user's role comes from their membership; a personal token acts as its user with at
//!   most its own role; a service token has its role in its one organization; the instance
//!   token (`VEXIL_BOOTSTRAP_TOKEN`, or the first start's) is the operator's and acts as
//!   an owner everywhere.
//! - A resource of an organization the caller does not belong to answers 404, never 403, so
//!   that ids cannot be probed.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::audit::Actor;
use crate::http::error::ApiError;
use crate::store::{StoreResult, organizations, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// For a field of a request body: the role, or a 400 naming the field.
    pub fn parse_field(field: &str, s: &str) -> Result<Role, ApiError> {
        Role::parse(s).ok_or_else(|| {
            ApiError::invalid_field(field, "must be one of owner, admin, editor, viewer")
        })
    }
}

/// What the caller is, besides its role cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The operator's instance token: an owner in every organization.
    Instance,
    /// A person, through a session or a personal access token.
    User { user_id: String },
    /// A service token of one organization.
    Service { organization_id: String },
}

/// The authenticated caller of a management request (a request extension).
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    pub subject: Subject,
    /// The most this credential may do anywhere (a personal token's role; `Owner` for a
    /// session: the user's memberships decide).
    pub cap: Role,
    /// The token used, if any.
    pub token_id: Option<String>,
    /// The session used, if any (then mutations need the CSRF header).
    pub session_id: Option<String>,
}

/// The organization a request acts in, once authorized (a request extension that audit
/// entries pick up through `RequestMeta`).
#[derive(Debug, Clone)]
pub struct OrgScope(pub String);

impl Principal {
    pub fn user_id(&self) -> Option<&str> {
        match &self.subject {
            Subject::User { user_id } => Some(user_id),
            _ => None,
        }
    }

    pub fn is_instance(&self) -> bool {
        self.subject == Subject::Instance
    }

    /// The caller's role in an organization (`None`: not a member — answer 404).
    pub async fn role_in(
        &self,
        conn: &mut AnyConnection,
        organization_id: &str,
    ) -> StoreResult<Option<Role>> {
        Ok(match &self.subject {
            Subject::Instance => Some(Role::Owner),
            Subject::Service {
                organization_id: own,
            } => (own == organization_id).then_some(self.cap),
            Subject::User { user_id } => users::role_in(conn, user_id, organization_id)
                .await?
                .and_then(|r| Role::parse(&r))
                .map(|r| r.min(self.cap)),
        })
    }

    /// The organizations the caller can see, each with its role (`None`: all, for the
    /// instance token).
    pub async fn organizations(
        &self,
        conn: &mut AnyConnection,
    ) -> StoreResult<Option<Vec<(String, Role)>>> {
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
                    .filter_map(|(org, role)| Role::parse(&role).map(|r| (org, r.min(self.cap))))
                    .collect(),
            ),
        })
    }

    /// Requires role `need` in the organization. Not a member: `not_found` (404, so that
    /// other organizations' ids cannot be probed); a member with too little: 403.
    pub async fn require(
        &self,
        conn: &mut AnyConnection,
        organization_id: &str,
        need: Role,
        not_found: impl FnOnce() -> ApiError,
    ) -> Result<Role, ApiError> {
        match self.role_in(conn, organization_id).await? {
            None => Err(not_found()),
            Some(role) if role < need => Err(forbidden(role, need)),
            Some(role) => Ok(role),
        }
    }
}

/// The 403 for a member whose role is too low.
pub fn forbidden(role: Role, need: Role) -> ApiError {
    ApiError::Forbidden(format!(
        "this needs the {} role in the organization; you have {}",
        need.as_str(),
        role.as_str()
    ))
}

/// The role needed to change something in an environment.
pub fn to_change_environment(protected: bool) -> Role {
    if protected { Role::Admin } else { Role::Editor }
}

/// For checks a handler completes from its body: requires `need` in the organization the
/// authorization layer resolved for this request (`meta.organization_id`).
pub async fn require_in_scope(
    conn: &mut AnyConnection,
    principal: &Principal,
    meta: &crate::http::extract::RequestMeta,
    need: Role,
) -> Result<Role, ApiError> {
    let org = meta.organization_id.as_deref().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("route without a resolved organization"))
    })?;
    principal
        .require(conn, org, need, || {
            ApiError::NotFound("no such resource".into())
        })
        .await
}
