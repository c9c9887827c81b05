//! What every console page shows around its content: the signed-in person, the
//! organization → project switcher, the project's environments, the section links, the
//! CSRF token for its forms, the caller's role (edit controls only for editors and up) and
//! the notice of the action just done.

use std::collections::HashMap;

use super::{Ctx, Page, Place};
use crate::access::Role;
use crate::manage;
use crate::store::environments::Environment;

/// A project in the switcher.
#[derive(Debug, Clone)]
pub(crate) struct ProjectLink {
    pub(crate) label: String,
    pub(crate) href: String,
    pub(crate) current: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) user: String,
    pub(crate) csrf: String,
    pub(crate) title: String,
    /// `/ui/{org}/{project}`.
    pub(crate) base: String,
    pub(crate) projects: Vec<ProjectLink>,
    pub(crate) environments: Vec<Environment>,
    pub(crate) role: Role,
    /// Which section link is current: flags, changes, releases, segments, keys, audit, ….
    pub(crate) section: &'static str,
    /// The notice of the action just done (a fixed text, or one a page made from what it
    /// checked, as the settings page does after a promotion).
    pub(crate) notice: Option<String>,
    /// What the live check compares: the project's ruleset versions when the page was
    /// rendered (the script asks `{base}/live` for the current value).
    pub(crate) live_version: String,
    pub(crate) asset_css: &'static str,
    pub(crate) asset_js: &'static str,
}

impl Frame {
    pub(crate) async fn load(
        cx: &Ctx,
        place: &Place,
        section: &'static str,
        title: impl Into<String>,
        notice: Option<&str>,
    ) -> Result<Frame, Page> {
        let (store, principal) = (&*cx.store, &cx.principal);
        let (orgs, _) = manage::organizations::list(store, principal, 200, 0).await?;
        let (projects, _) = manage::projects::list(store, principal, None, 500, 0).await?;
        let org_keys: HashMap<&str, &str> = orgs
            .iter()
            .map(|o| (o.id.as_str(), o.key.as_str()))
            .collect();
        let projects = projects
            .iter()
            .filter_map(|p| {
                let org = *org_keys.get(p.organization_id.as_str())?;
                Some(ProjectLink {
                    label: format!("{org} / {}", p.name),
                    href: format!("/ui/{org}/{}/flags", p.key),
                    current: p.id == place.project.id,
                })
            })
            .collect();
        let (environments, _) =
            manage::environments::list(store, &place.project.id, 100, 0).await?;
        let role = super::role_here(store, principal, place).await?;
        let ids: Vec<String> = environments.iter().map(|e| e.id.clone()).collect();
        let live_version = live_version(&cx.snapshots, &ids);
        Ok(Frame {
            user: principal.actor.name.clone(),
            csrf: cx.csrf.0.clone(),
            title: title.into(),
            base: place.base(),
            projects,
            environments,
            role,
            section,
            notice: notice.and_then(notice_text).map(str::to_owned),
            live_version,
            asset_css: super::assets::CSS_URL.as_str(),
            asset_js: super::assets::JS_URL.as_str(),
        })
    }

    /// Editors and up see edit controls.
    pub(crate) fn can_edit(&self) -> bool {
        self.role >= Role::Editor
    }

    pub(crate) fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}

/// The notices a redirect may ask for (`?done=…`): fixed texts, so nothing a link carries
/// is ever shown.
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "toggled" => "Switched.",
        "killed" => "Kill switch engaged: the flag serves its off variation.",
        "archived" => "Archived.",
        "restored" => "Restored.",
        "revoked" => "Revoked.",
        "bulk" => "Done for the selected flags.",
        "password" => "Password changed.",
        "scheduled" => "Scheduled: it is applied at its time (see “Waiting” below).",
        "proposed" => "Proposed: another member reviews it; it is applied once approved.",
        "approved" => "Approved.",
        "rejected" => "Rejected.",
        "applied" => "Applied.",
        "cancelled" => "Cancelled.",
        "stale" => {
            "Not applied: the configuration changed after the approval, so the change request is open again and needs a new approval."
        }
        "refused" => "Not applied: this environment requires approval.",
        "release_started" => "Release started: the default serves the first stage.",
        "release_advanced" => "Advanced to the next stage.",
        "release_completed" => {
            "Release completed: everyone outside targets and rules gets the treatment."
        }
        "release_paused" => {
            "Paused: the plan no longer advances by itself; the guard still rolls it back."
        }
        "release_resumed" => "Resumed: the plan advances by itself again.",
        "release_rolled_back" => {
            "Rolled back: everyone outside targets and rules gets the control."
        }
        "release_cancelled" => "Release plan cancelled; the configuration stays as it is.",
        "copied" => "Copied: this environment now has the chosen environment's configuration.",
        "copied_same" => "Nothing to copy: the configuration was already the same.",
        _ => return None,
    })
}

/// The project's ruleset versions in one string, from the in-memory snapshots (which the
/// live stream reads too): any change to a flag, configuration or segment of the project
/// changes it.
pub(crate) fn live_version(snapshots: &crate::snapshots::Snapshots, env_ids: &[String]) -> String {
    env_ids
        .iter()
        .map(|id| snapshots.get(id).map_or(0, |s| s.version).to_string())
        .collect::<Vec<_>>()
        .join(".")
}
