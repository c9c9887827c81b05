//! Who may do what: roles per organization, the kinds of management token, and the
//! authenticated [`Principal`]. The checks that read memberships from the store are in
//! `manage::access`; the authorization layer (`http::authz`) and handlers apply them.
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

use crate::audit::Actor;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub(crate) const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Reading a stored role: an unknown text is a corrupt row, not a viewer.
impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(s: String) -> Result<Role, String> {
        Role::parse(&s).ok_or_else(|| format!("unknown role '{s}'"))
    }
}

/// The kinds of management token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenKind {
    /// The operator's (`VEXIL_BOOTSTRAP_TOKEN`): an owner in every organization.
    Instance,
    /// A user's, acting as them with at most its role.
    Personal,
    /// An organization's, with its role there.
    Service,
}

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::Instance => "instance",
            TokenKind::Personal => "personal",
            TokenKind::Service => "service",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<TokenKind> {
        [TokenKind::Instance, TokenKind::Personal, TokenKind::Service]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl TryFrom<String> for TokenKind {
    type Error = String;

    fn try_from(s: String) -> Result<TokenKind, String> {
        TokenKind::parse(&s).ok_or_else(|| format!("unknown token kind '{s}'"))
    }
}

/// What the caller is, besides its role cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The operator's instance token: an owner in every organization.
    Instance,
    /// A person, through a session or a personal access token.
    User { user_id: String },
    /// A service token of one organization.
    Service { organization_id: String },
}

/// The authenticated caller of a management request (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) actor: Actor,
    pub(crate) subject: Subject,
    /// The most this credential may do anywhere (a personal token's role; `Owner` for a
    /// session: the user's memberships decide).
    pub(crate) cap: Role,
    /// The token used, if any.
    pub(crate) token_id: Option<String>,
    /// The session used, if any (then mutations need the CSRF header).
    pub(crate) session_id: Option<String>,
}

/// The organization a request acts in, once authorized (a request extension that audit
/// entries pick up through `RequestMeta`).
#[derive(Debug, Clone)]
pub(crate) struct OrgScope(pub(crate) String);

impl Principal {
    pub(crate) fn user_id(&self) -> Option<&str> {
        match &self.subject {
            Subject::User { user_id } => Some(user_id),
            _ => None,
        }
    }

    pub(crate) fn is_instance(&self) -> bool {
        self.subject == Subject::Instance
    }
}

/// The role needed to change something in an environment.
pub(crate) fn to_change_environment(protected: bool) -> Role {
    if protected { Role::Admin } else { Role::Editor }
}
