//! Authorization of the management plane, in one table: for every route, where the
//! resource's organization is found (a path parameter, resolved through the store) and the
//! role needed there. Routes whose scope is in the body or that filter a listing check in
//! their handler (`Check::InHandler`); a route missing from the table is refused (fail
//! closed), and a test walks every documented route through this table.

use std::collections::HashMap;
use std::sync::Arc;

use axum::RequestExt as _;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::access::{OrgScope, Principal, Role, to_change_environment};
use crate::manage::Error;
use crate::store::{Store, scopes};

/// Where to find the organization, from which path parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    Organization(&'static str),
    Project(&'static str),
    Environment(&'static str),
    Flag(&'static str),
    /// A flag whose deletion, archiving or restoring would change what a protected
    /// environment serves when it is enabled there.
    FlagLifecycle(&'static str),
    /// `{flag_id}` in `{env_id}`.
    FlagInEnvironment,
    Segment(&'static str),
    ApiKey(&'static str),
    /// A scheduled change or change request, protected as its environment.
    PendingChange(&'static str),
    Webhook(&'static str),
    Template(&'static str),
}

impl Resolve {
    /// The kind of resource one path parameter names, what a person calls it, and the
    /// parameter (`None` for `FlagInEnvironment`, which names two).
    fn one(self) -> Option<(scopes::Of, &'static str, &'static str)> {
        use scopes::Of;
        Some(match self {
            Organization(p) => (Of::Organization, "organization", p),
            Project(p) => (Of::Project, "project", p),
            Environment(p) => (Of::Environment, "environment", p),
            Flag(p) => (Of::Flag, "flag", p),
            FlagLifecycle(p) => (Of::FlagLifecycle, "flag", p),
            Segment(p) => (Of::Segment, "segment", p),
            ApiKey(p) => (Of::ApiKey, "API key", p),
            PendingChange(p) => (Of::PendingChange, "change", p),
            Webhook(p) => (Of::Webhook, "webhook", p),
            Template(p) => (Of::Template, "flag template", p),
            FlagInEnvironment => return None,
        })
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// This role in the resolved organization.
    Role(Resolve, Role),
    /// Editor, or admin when the resolved environment is protected.
    ChangeEnvironment(Resolve),
    /// The handler decides (the scope is in the body, or a listing is filtered).
    InHandler,
}

use Check::{ChangeEnvironment, InHandler, Role as Needs};
use Resolve::*;
use Role::{Admin, Editor, Owner, Viewer};

/// The policy of every management route, by method and route template.
pub fn policy(method: &Method, route: &str) -> Option<Check> {
    // HEAD is answered by the GET handler: it needs what GET needs.
    let m = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    Some(match (m, route) {
        // Listings are filtered to the caller's organizations; creating an organization
        // makes its creator the owner; the body names a project's organization.
        ("GET" | "POST", "/api/v1/organizations") => InHandler,
        ("GET", "/api/v1/organizations/{id}") => Needs(Organization("id"), Viewer),
        ("PATCH", "/api/v1/organizations/{id}") => Needs(Organization("id"), Admin),
        ("DELETE", "/api/v1/organizations/{id}") => Needs(Organization("id"), Owner),
        ("GET", "/api/v1/organizations/{id}/members") => Needs(Organization("id"), Viewer),
        // Who may grant or change owners is decided in the handler.
        ("POST", "/api/v1/organizations/{id}/members") => Needs(Organization("id"), Admin),
        ("PATCH" | "DELETE", "/api/v1/organizations/{id}/members/{user_id}") => {
            Needs(Organization("id"), Admin)
        }
        ("GET" | "POST", "/api/v1/projects") => InHandler,
        ("GET", "/api/v1/projects/{id}") => Needs(Project("id"), Viewer),
        ("PATCH" | "DELETE", "/api/v1/projects/{id}") => Needs(Project("id"), Admin),
        ("GET", "/api/v1/projects/{project_id}/environments") => {
            Needs(Project("project_id"), Viewer)
        }
        ("POST", "/api/v1/projects/{project_id}/environments") => {
            Needs(Project("project_id"), Admin)
        }
        // Promotion changes what the target serves: the role a configuration change needs there.
        ("POST", "/api/v1/projects/{project_id}/environments/{env_id}/copy") => {
            ChangeEnvironment(Environment("env_id"))
        }
        ("GET", "/api/v1/environments/{id}") => Needs(Environment("id"), Viewer),
        ("PATCH" | "DELETE", "/api/v1/environments/{id}") => Needs(Environment("id"), Admin),
        ("GET", "/api/v1/projects/{project_id}/feature-flags") => {
            Needs(Project("project_id"), Viewer)
        }
        // Bulk actions check protected environments in the handler, from the body.
        (
            "POST",
            "/api/v1/projects/{project_id}/feature-flags"
            | "/api/v1/projects/{project_id}/feature-flags/bulk",
        ) => Needs(Project("project_id"), Editor),
        ("GET", "/api/v1/feature-flags/{id}") => Needs(Flag("id"), Viewer),
        ("PATCH", "/api/v1/feature-flags/{id}") => Needs(Flag("id"), Editor),
        ("DELETE", "/api/v1/feature-flags/{id}")
        | ("PATCH", "/api/v1/feature-flags/{id}/archive" | "/api/v1/feature-flags/{id}/restore") => {
            ChangeEnvironment(FlagLifecycle("id"))
        }
        // Stopping a flag is the safe direction: editors may, protected environments included.
        ("POST", "/api/v1/feature-flags/{id}/kill-switch") => Needs(Flag("id"), Editor),
        ("GET", "/api/v1/flags/{flag_id}/environments/{env_id}/config")
        | ("GET", "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions") => {
            Needs(FlagInEnvironment, Viewer)
        }
        ("PATCH", "/api/v1/flags/{flag_id}/environments/{env_id}/config")
        | ("PATCH", "/api/v1/flags/{flag_id}/environments/{env_id}/config/toggle")
        | ("PATCH", "/api/v1/flags/{flag_id}/environments/{env_id}/toggle")
        | (
            "POST",
            "/api/v1/flags/{flag_id}/environments/{env_id}/config/revisions/{version}/restore",
        ) => ChangeEnvironment(FlagInEnvironment),
        // Release control: scheduling or approving needs the role the change itself needs;
        // proposing needs an editor; who may apply or cancel is decided by the operation
        // (the author, an approver, or a member with the change's role).
        (
            "GET",
            "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes"
            | "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests",
        ) => Needs(FlagInEnvironment, Viewer),
        ("POST", "/api/v1/flags/{flag_id}/environments/{env_id}/scheduled-changes") => {
            ChangeEnvironment(FlagInEnvironment)
        }
        ("POST", "/api/v1/flags/{flag_id}/environments/{env_id}/change-requests") => {
            Needs(FlagInEnvironment, Editor)
        }
        (
            "GET",
            "/api/v1/projects/{project_id}/scheduled-changes"
            | "/api/v1/projects/{project_id}/change-requests",
        ) => Needs(Project("project_id"), Viewer),
        ("GET", "/api/v1/scheduled-changes/{id}" | "/api/v1/change-requests/{id}") => {
            Needs(PendingChange("id"), Viewer)
        }
        ("DELETE", "/api/v1/scheduled-changes/{id}") => ChangeEnvironment(PendingChange("id")),
        (
            "POST",
            "/api/v1/change-requests/{id}/approve" | "/api/v1/change-requests/{id}/reject",
        ) => ChangeEnvironment(PendingChange("id")),
        ("DELETE", "/api/v1/change-requests/{id}")
        | ("POST", "/api/v1/change-requests/{id}/apply") => Needs(PendingChange("id"), Editor),
        // Release plans: reading needs a viewer; every step changes (or stops changing)
        // what the environment serves, so it needs the role a configuration change needs.
        ("GET", "/api/v1/flags/{flag_id}/environments/{env_id}/release") => {
            Needs(FlagInEnvironment, Viewer)
        }
        (
            "POST",
            "/api/v1/flags/{flag_id}/environments/{env_id}/release"
            | "/api/v1/flags/{flag_id}/environments/{env_id}/release/advance"
            | "/api/v1/flags/{flag_id}/environments/{env_id}/release/pause"
            | "/api/v1/flags/{flag_id}/environments/{env_id}/release/resume"
            | "/api/v1/flags/{flag_id}/environments/{env_id}/release/rollback",
        )
        | ("DELETE", "/api/v1/flags/{flag_id}/environments/{env_id}/release") => {
            ChangeEnvironment(FlagInEnvironment)
        }
        ("GET", "/api/v1/projects/{project_id}/releases") => Needs(Project("project_id"), Viewer),
        ("GET", "/api/v1/flags/{flag_id}/environments/{env_id}/insights") => {
            Needs(FlagInEnvironment, Viewer)
        }
        ("GET", "/api/v1/environments/{env_id}/insights") => Needs(Environment("env_id"), Viewer),
        ("GET", "/api/v1/environments/{env_id}/flag-configs") => {
            Needs(Environment("env_id"), Viewer)
        }
        ("GET", "/api/v1/projects/{project_id}/segments") => Needs(Project("project_id"), Viewer),
        ("POST", "/api/v1/projects/{project_id}/segments") => Needs(Project("project_id"), Editor),
        ("GET", "/api/v1/segments/{id}") => Needs(Segment("id"), Viewer),
        ("PATCH" | "DELETE", "/api/v1/segments/{id}") => Needs(Segment("id"), Editor),
        ("GET", "/api/v1/projects/{project_id}/api-keys") => Needs(Project("project_id"), Viewer),
        ("POST", "/api/v1/projects/{project_id}/api-keys") => Needs(Project("project_id"), Admin),
        ("DELETE", "/api/v1/api-keys/{id}") | ("PATCH", "/api/v1/api-keys/{id}/revoke") => {
            Needs(ApiKey("id"), Admin)
        }
        // Flag templates: kept by editors, like the flags they make.
        ("GET", "/api/v1/projects/{project_id}/flag-templates") => {
            Needs(Project("project_id"), Viewer)
        }
        ("POST", "/api/v1/projects/{project_id}/flag-templates") => {
            Needs(Project("project_id"), Editor)
        }
        ("GET", "/api/v1/flag-templates/{id}") => Needs(Template("id"), Viewer),
        ("PATCH" | "DELETE", "/api/v1/flag-templates/{id}") => Needs(Template("id"), Editor),
        // Flags as code: reading is viewing; an import changes flags and segments like the
        // editor's routes do (changes in protected environments ask for admin in the
        // operation, as a configuration change there does).
        ("GET", "/api/v1/projects/{project_id}/export") => Needs(Project("project_id"), Viewer),
        ("POST", "/api/v1/projects/{project_id}/import") => Needs(Project("project_id"), Editor),
        // Webhooks send a project's changes elsewhere: admins only, reading included (a
        // delivery's payload carries the audit entry).
        ("GET" | "POST", "/api/v1/projects/{project_id}/webhooks") => {
            Needs(Project("project_id"), Admin)
        }
        ("GET" | "PATCH" | "DELETE", "/api/v1/webhooks/{id}")
        | ("POST", "/api/v1/webhooks/{id}/test")
        | ("GET", "/api/v1/webhooks/{id}/deliveries")
        | ("GET", "/api/v1/webhooks/{id}/deliveries/{delivery_id}")
        | ("POST", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver") => {
            Needs(Webhook("id"), Admin)
        }
        // Filtered to the caller's organizations (and own actions) in the handlers.
        ("GET", "/api/v1/audit-logs" | "/api/v1/audit-logs/verify" | "/api/v1/audit-logs/{id}") => {
            InHandler
        }
        // The simple API's project and environment come from the query.
        ("GET" | "POST", "/v1/feature-flags/" | "/v1/feature-flags")
        | ("GET" | "PUT", "/v1/feature-flags/{name}") => InHandler,
        // The caller's own account, tokens and session.
        ("GET" | "PATCH", "/api/v1/users/me")
        | ("PUT", "/api/v1/users/me/password")
        | ("GET" | "POST", "/api/v1/tokens")
        | ("GET" | "DELETE", "/api/v1/tokens/{id}")
        | ("PATCH", "/api/v1/tokens/{id}/revoke")
        | ("GET", "/api/v1/auth/session")
        | ("POST", "/api/v1/auth/logout") => InHandler,
        // The web console: the same checks as the API routes that do the same thing. Its
        // URLs name keys; the console resolves them to ids (`ui::Place`) under these names.
        // The caller's own account, and the landing page (which lists what it can see).
        ("GET", "/ui/" | "/ui/account") | ("POST", "/ui/logout" | "/ui/account/password") => {
            InHandler
        }
        (
            "GET",
            "/ui/{org}/{project}"
            | "/ui/{org}/{project}/flags"
            | "/ui/{org}/{project}/segments"
            | "/ui/{org}/{project}/keys"
            | "/ui/{org}/{project}/live"
            | "/ui/{org}/{project}/audit"
            | "/ui/{org}/{project}/people"
            | "/ui/{org}/{project}/settings"
            | "/ui/{org}/{project}/insights"
            | "/ui/{org}/{project}/releases"
            | "/ui/{org}/{project}/playground"
            | "/ui/{org}/{project}/templates",
        ) => Needs(Project("project"), Viewer),
        ("POST", "/ui/{org}/{project}/flags" | "/ui/{org}/{project}/flags/bulk")
        | ("POST", "/ui/{org}/{project}/segments" | "/ui/{org}/{project}/templates") => {
            Needs(Project("project"), Editor)
        }
        // Flag templates, as for the API: a template in the URL is its id; the handlers
        // check that it is the URL's project's.
        ("GET", "/ui/{org}/{project}/templates/{template}") => Needs(Template("template"), Viewer),
        ("POST", "/ui/{org}/{project}/templates/{template}/delete") => {
            Needs(Template("template"), Editor)
        }
        ("POST", "/ui/{org}/{project}/keys")
        | ("POST", "/ui/{org}/{project}/settings" | "/ui/{org}/{project}/environments") => {
            Needs(Project("project"), Admin)
        }
        ("POST", "/ui/{org}/{project}/environments/{env}") => Needs(Environment("env"), Admin),
        // The organization is the URL's; the operation checks the admin role there.
        ("POST", "/ui/{org}/{project}/projects") => Needs(Organization("org"), Admin),
        // Who may grant or change owners is decided by the operation, as for the API.
        (
            "POST",
            "/ui/{org}/{project}/people"
            | "/ui/{org}/{project}/people/{user_id}/role"
            | "/ui/{org}/{project}/people/{user_id}/remove",
        ) => Needs(Organization("org"), Admin),
        // Tokens are the caller's own, or service tokens of organizations they administer:
        // decided by the operation, as for the API.
        ("POST", "/ui/{org}/{project}/tokens" | "/ui/{org}/{project}/tokens/{token_id}/revoke") => {
            InHandler
        }
        ("POST", "/ui/{org}/{project}/keys/{key_id}/revoke") => Needs(ApiKey("key_id"), Admin),
        ("GET", "/ui/{org}/{project}/flags/{flag}") => Needs(Flag("flag"), Viewer),
        (
            "POST",
            "/ui/{org}/{project}/flags/{flag}/edit" | "/ui/{org}/{project}/flags/{flag}/kill",
        ) => Needs(Flag("flag"), Editor),
        (
            "POST",
            "/ui/{org}/{project}/flags/{flag}/archive"
            | "/ui/{org}/{project}/flags/{flag}/restore"
            | "/ui/{org}/{project}/flags/{flag}/delete",
        ) => ChangeEnvironment(FlagLifecycle("flag")),
        (
            "GET",
            "/ui/{org}/{project}/flags/{flag}/in/{env}"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/history"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/insights",
        ) => Needs(FlagInEnvironment, Viewer),
        (
            "POST",
            "/ui/{org}/{project}/flags/{flag}/in/{env}"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/toggle"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/history/{version}/restore",
        ) => ChangeEnvironment(FlagInEnvironment),
        ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/schedule") => {
            ChangeEnvironment(FlagInEnvironment)
        }
        ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/propose") => {
            Needs(FlagInEnvironment, Editor)
        }
        // Promotion: a flag's tab copies into its own environment; the project's form names
        // its target in the body, and the handler asks of it what `ChangeEnvironment` asks.
        ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/copy") => {
            ChangeEnvironment(FlagInEnvironment)
        }
        ("POST", "/ui/{org}/{project}/promote") => Needs(Project("project"), Editor),
        // Release plans: every step changes (or stops changing) what the environment
        // serves, as the API's `…/release` routes.
        (
            "POST",
            "/ui/{org}/{project}/flags/{flag}/in/{env}/release"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/release/advance"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/release/pause"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/release/resume"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/release/rollback"
            | "/ui/{org}/{project}/flags/{flag}/in/{env}/release/cancel",
        ) => ChangeEnvironment(FlagInEnvironment),
        ("GET", "/ui/{org}/{project}/changes") => Needs(Project("project"), Viewer),
        (
            "POST",
            "/ui/{org}/{project}/changes/{change_id}/approve"
            | "/ui/{org}/{project}/changes/{change_id}/reject",
        ) => ChangeEnvironment(PendingChange("change_id")),
        (
            "POST",
            "/ui/{org}/{project}/changes/{change_id}/apply"
            | "/ui/{org}/{project}/changes/{change_id}/cancel",
        ) => Needs(PendingChange("change_id"), Editor),
        // Webhooks: admins only, reading included, as for the API. A webhook in the URL is
        // its id; the handlers check that it is the URL's project's.
        ("GET" | "POST", "/ui/{org}/{project}/webhooks") => Needs(Project("project"), Admin),
        ("GET" | "POST", "/ui/{org}/{project}/webhooks/{webhook}")
        | (
            "POST",
            "/ui/{org}/{project}/webhooks/{webhook}/toggle"
            | "/ui/{org}/{project}/webhooks/{webhook}/test"
            | "/ui/{org}/{project}/webhooks/{webhook}/delete"
            | "/ui/{org}/{project}/webhooks/{webhook}/deliveries/{delivery_id}/redeliver",
        ) => Needs(Webhook("webhook"), Admin),
        ("GET", "/ui/{org}/{project}/segments/{segment}") => Needs(Segment("segment"), Viewer),
        (
            "POST",
            "/ui/{org}/{project}/segments/{segment}"
            | "/ui/{org}/{project}/segments/{segment}/delete",
        ) => Needs(Segment("segment"), Editor),
        _ => return None,
    })
}

/// Applies [`policy`]: resolves the organization, answers 404 to non-members and 403 to
/// members without the role, and records the organization for the audit trail.
pub(crate) async fn authorize(
    State(store): State<Arc<Store>>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(check) = policy(req.method(), &route) else {
        if let Some(response) = super::reject::wrong_method(req.method(), &route) {
            return response;
        }
        tracing::error!(route = %route, method = %req.method(), "no access policy for this route; refused");
        return ApiError::Forbidden("no access policy for this route".into()).into_response();
    };
    let (resolve, need) = match check {
        InHandler => return next.run(req).await,
        Needs(resolve, role) => (resolve, Some(role)),
        ChangeEnvironment(resolve) => (resolve, None),
    };
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::Unauthorized.into_response();
    };
    let params: HashMap<String, String> = match req.extract_parts::<RawPathParams>().await {
        Ok(p) => p
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => return ApiError::NotFound("no such resource".into()).into_response(),
    };
    match check_scope(&store, &principal, resolve, need, &params).await {
        Ok(org) => {
            req.extensions_mut().insert(OrgScope(org));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn check_scope(
    store: &Store,
    principal: &Principal,
    resolve: Resolve,
    need: Option<Role>,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let mut conn = store.read().await?;
    let (scope, not_found) = match resolve.one() {
        Some((of, what, p)) => (
            scopes::of(&mut conn, of, param(p)).await?,
            Error::not_found(what, param(p)),
        ),
        None => {
            let (flag, env) = (param("flag_id"), param("env_id"));
            let scope = scopes::flag_in_environment(&mut conn, flag, env).await?;
            // Say which of the two is unknown, as the handlers do — but only to members of
            // the flag's organization: to others, an existing flag is as unknown as any.
            // (Worked out only when the pair is unknown; the common case needs nothing.)
            let environment_unknown = match &scope {
                Some(_) => false,
                None => match scopes::of(&mut conn, scopes::Of::Flag, flag).await? {
                    Some(f) => principal
                        .role_in(&mut conn, &f.organization_id)
                        .await?
                        .is_some(),
                    None => false,
                },
            };
            let not_found = if environment_unknown {
                Error::not_found("environment", env)
            } else {
                Error::not_found("flag", flag)
            };
            (scope, not_found)
        }
    };
    let Some(scope) = scope else {
        return Err(not_found.into());
    };
    let need = need.unwrap_or_else(|| to_change_environment(scope.protected));
    principal
        .require(&mut conn, &scope.organization_id, need, || not_found)
        .await?;
    Ok(scope.organization_id)
}
