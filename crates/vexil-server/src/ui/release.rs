//! Release control in the console: scheduling the editor's change or proposing it for
//! approval, the held changes of a flag's environment (with their diff against the
//! configuration as it is now), the project's queue, and the review actions.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::Path;

use super::draft::Draft;
use super::flag::{DiffLine, line_diff};
use super::form::{local_next, url_encode};
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::fields::Patch;
use crate::manage::pending::{
    self, ChangeRequest, Decision, Listing, NewPending, ReviewInput, ScheduledChange,
};
use crate::manage::{self, Error};
use crate::store::environments::Environment;
use crate::store::flags::FlagConfig;
use crate::store::pending::Status;

/// One held change as the console shows it.
pub(crate) struct Held {
    pub(crate) id: String,
    /// `scheduled` or `request`.
    pub(crate) kind: &'static str,
    pub(crate) flag_key: String,
    pub(crate) env_name: String,
    /// The flag's page in the change's environment.
    pub(crate) href: String,
    pub(crate) when: String,
    pub(crate) author: String,
    pub(crate) status: &'static str,
    pub(crate) comment: String,
    pub(crate) reviews: Vec<String>,
    pub(crate) diff: Vec<DiffLine>,
    /// Why the change would not apply now, or why it was sent back.
    pub(crate) problem: Option<String>,
    pub(crate) can_review: bool,
    pub(crate) can_apply: bool,
    pub(crate) can_cancel: bool,
}

/// What the caller may do with held changes in an environment.
struct Rights<'a> {
    me: &'a str,
    change_role: bool,
    edit: bool,
}

impl<'a> Rights<'a> {
    fn of(frame: &Frame, cx: &'a Ctx, env: &Environment) -> Rights<'a> {
        Rights {
            me: &cx.principal.actor.id,
            change_role: frame.is_admin() || (frame.can_edit() && !env.protected),
            edit: frame.can_edit(),
        }
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The diff of `patch` against the configuration as it is, or why it no longer applies.
fn preview(current: &FlagConfig, patch: &serde_json::Value) -> (Vec<DiffLine>, Option<String>) {
    let patch = Patch {
        changes: patch.as_object().cloned().unwrap_or_default(),
        comment: None,
    };
    match manage::flag_configs::patched(current, &patch) {
        Ok(after) => (line_diff(&pretty(&current.config), &pretty(&after)), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

fn scheduled_view(
    s: ScheduledChange,
    current: &FlagConfig,
    (flag_key, env, href): (&str, &Environment, String),
    rights: &Rights<'_>,
) -> Held {
    let (diff, problem) = preview(current, &s.patch);
    let mine = s.created_by.id == rights.me;
    Held {
        kind: "scheduled",
        flag_key: flag_key.to_owned(),
        env_name: env.name.clone(),
        href,
        when: readable_time(&s.execute_at),
        author: s.created_by.name,
        status: s.status.as_str(),
        comment: s.comment.unwrap_or_default(),
        reviews: Vec::new(),
        diff,
        problem: s.error.or(problem),
        can_review: false,
        can_apply: false,
        can_cancel: s.status.is_live() && (mine || rights.change_role),
        id: s.id,
    }
}

fn request_view(
    r: ChangeRequest,
    current: &FlagConfig,
    (flag_key, env, href): (&str, &Environment, String),
    rights: &Rights<'_>,
) -> Held {
    let (diff, mut problem) = preview(current, &r.patch);
    let mine = r.author.id == rights.me;
    let approver = r
        .reviews
        .iter()
        .any(|v| v.decision == Decision::Approve && v.reviewer.id == rights.me);
    if r.status == Status::Approved && r.approved_version != Some(current.version) {
        problem = Some(format!(
            "The configuration changed after the approval (version {} is now {}): applying it needs a new approval.",
            r.approved_version.unwrap_or_default(),
            current.version
        ));
    }
    Held {
        kind: "request",
        flag_key: flag_key.to_owned(),
        env_name: env.name.clone(),
        href,
        when: r
            .execute_at
            .as_deref()
            .map(readable_time)
            .unwrap_or_default(),
        author: r.author.name,
        status: r.status.as_str(),
        comment: r.comment.unwrap_or_default(),
        reviews: r
            .reviews
            .iter()
            .map(|v| {
                let verb = match v.decision {
                    Decision::Approve => "approved",
                    Decision::Reject => "rejected",
                };
                match &v.comment {
                    Some(c) if !c.is_empty() => format!("{verb} by {}: {c}", v.reviewer.name),
                    _ => format!("{verb} by {}", v.reviewer.name),
                }
            })
            .collect(),
        diff,
        problem: problem.or(r.error),
        can_review: !mine && !approver && rights.change_role && r.status.is_live(),
        can_apply: r.status == Status::Approved && rights.edit && (mine || approver),
        can_cancel: r.status.is_live() && (mine || rights.change_role),
        id: r.id,
    }
}

/// The URL of the page's flag in its environment.
fn flag_tab(place: &Place) -> Result<String, Page> {
    let (flag, env) = (place.flag()?, place.env()?);
    Ok(format!(
        "{}/flags/{}/in/{}",
        place.base(),
        url_encode(&flag.key),
        url_encode(&env.key)
    ))
}

/// The held changes of the page's flag in its environment that may still happen.
pub(crate) async fn held_here(cx: &Ctx, place: &Place, frame: &Frame) -> Result<Vec<Held>, Page> {
    let (flag, env) = (place.flag()?, place.env()?);
    let (scheduled, requests) = pending::live_for(&cx.store, &flag.id, &env.id).await?;
    if scheduled.is_empty() && requests.is_empty() {
        return Ok(Vec::new());
    }
    let current = manage::flag_configs::get(&cx.store, &flag.id, &env.id).await?;
    let rights = Rights::of(frame, cx, env);
    let href = flag_tab(place)?;
    let at = || (flag.key.as_str(), env, href.clone());
    let mut held: Vec<Held> = scheduled
        .into_iter()
        .map(|s| scheduled_view(s, &current, at(), &rights))
        .collect();
    held.extend(
        requests
            .into_iter()
            .map(|r| request_view(r, &current, at(), &rights)),
    );
    Ok(held)
}

#[derive(Template)]
#[template(path = "changes.html")]
struct QueuePage {
    frame: Frame,
    held: Vec<Held>,
    /// Where the forms come back to.
    back: String,
}

/// `GET …/changes`: the project's pending schedules and open change requests.
pub(crate) async fn queue(
    cx: Ctx,
    Extension(place): Extension<Place>,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> PageResult {
    let frame = Frame::load(
        &cx,
        &place,
        "changes",
        String::from("Changes"),
        q.done.as_deref(),
    )
    .await?;
    let project = place.project.id.as_str();
    let (scheduled, _) = pending::list::<ScheduledChange>(
        &cx.store,
        Listing::Project(project, None),
        Some(Status::Pending),
        500,
        0,
    )
    .await?;
    let mut requests = Vec::new();
    for status in [Status::Open, Status::Approved] {
        let (mut some, _) = pending::list::<ChangeRequest>(
            &cx.store,
            Listing::Project(project, None),
            Some(status),
            500,
            0,
        )
        .await?;
        requests.append(&mut some);
    }
    // The flags and configurations the changes are about, each read once.
    let mut configs: HashMap<(String, String), (String, FlagConfig)> = HashMap::new();
    let pairs = scheduled
        .iter()
        .map(|s| (s.flag_id.clone(), s.environment_id.clone()))
        .chain(
            requests
                .iter()
                .map(|r| (r.flag_id.clone(), r.environment_id.clone())),
        );
    for (flag_id, env_id) in pairs {
        if configs.contains_key(&(flag_id.clone(), env_id.clone())) {
            continue;
        }
        let config = manage::flag_configs::get(&cx.store, &flag_id, &env_id).await?;
        configs.insert((flag_id, env_id), (config.flag_key.clone(), config));
    }
    let envs: HashMap<&str, &Environment> = frame
        .environments
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    let mut held = Vec::new();
    let base = place.base();
    let context = |flag_id: &str, env_id: &str| {
        let (flag_key, config) = configs.get(&(flag_id.to_owned(), env_id.to_owned()))?;
        let env = *envs.get(env_id)?;
        let href = format!(
            "{base}/flags/{}/in/{}",
            url_encode(flag_key),
            url_encode(&env.key)
        );
        Some((flag_key.as_str(), env, href, config))
    };
    for s in scheduled {
        if let Some((key, env, href, config)) = context(&s.flag_id, &s.environment_id) {
            let rights = Rights::of(&frame, &cx, env);
            held.push(scheduled_view(s, config, (key, env, href), &rights));
        }
    }
    for r in requests {
        if let Some((key, env, href, config)) = context(&r.flag_id, &r.environment_id) {
            let rights = Rights::of(&frame, &cx, env);
            held.push(request_view(r, config, (key, env, href), &rights));
        }
    }
    let back = format!("{}/changes", place.base());
    Ok(Page::render(&QueuePage { frame, held, back }))
}

/// A stored time as people read it: `2026-12-24 09:00:00 UTC`.
pub(crate) fn readable_time(at: &str) -> String {
    match (at.get(..10), at.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => at.to_owned(),
    }
}

/// A time from a `datetime-local` field (taken as UTC), or as RFC 3339.
fn utc_time(text: &str) -> Option<String> {
    let text = text.trim();
    match text.len() {
        0 => None,
        16 => Some(format!("{text}:00Z")),
        19 if !text.ends_with('Z') => Some(format!("{text}Z")),
        _ => Some(text.to_owned()),
    }
}

/// `POST …/flags/{flag}/in/{env}/schedule` and `…/propose`: the editor's change, held
/// until its time or for approval.
pub(crate) async fn hold(
    cx: Ctx,
    Extension(place): Extension<Place>,
    kind: &'static str,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let mut draft = Draft::read(&cx.form, &flag.variations);
    let changes = match draft.to_patch() {
        Ok(changes) => changes,
        Err(errors) => {
            draft.errors = errors;
            let message = "Some fields need attention (see below).".to_owned();
            return super::flag::render(&cx, &place, draft, Some(message), None).await;
        }
    };
    let input = NewPending {
        execute_at: utc_time(&cx.form.text("execute_at")),
        patch: changes,
        comment: Some(draft.comment.clone()).filter(|c| !c.is_empty()),
    };
    let at = (flag.id.as_str(), env.id.as_str());
    let (store, principal, by) = (&cx.store, &cx.principal, &cx.by);
    let done = match kind {
        "schedule" => pending::schedule(store, principal, by, at, input)
            .await
            .map(|_| "scheduled"),
        _ => pending::propose(store, principal, by, at, input)
            .await
            .map(|_| "proposed"),
    };
    match done {
        Ok(done) => Ok(Page::redirect(format!("{}?done={done}", flag_tab(&place)?))),
        Err(e) => super::flag::refused(&cx, &place, draft, e).await,
    }
}

/// `POST …/changes/{change_id}/{action}`: approve, reject, apply or cancel a held change of
/// this project, then back to where the form came from (with `?done=` saying what
/// happened; a stale approval sends the request back for review).
pub(crate) async fn act(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path(params): Path<HashMap<String, String>>,
    action: &'static str,
) -> PageResult {
    let id = params
        .get("change_id")
        .map(String::as_str)
        .unwrap_or_default();
    let mut conn = cx.store.read().await.map_err(manage::Error::from)?;
    let row = crate::store::pending::get(&mut conn, id)
        .await
        .map_err(manage::Error::from)?
        .filter(|r| r.project_id == place.project.id)
        .ok_or_else(|| Page::not_found("change"))?;
    drop(conn);
    let done = match perform(&cx, &row, action).await {
        Ok(done) => done,
        Err(Error::Refused { code: "stale", .. }) => "stale",
        Err(Error::Refused { .. }) => "refused",
        Err(e) => return Err(e.into()),
    };
    let back = local_next(cx.form.get("back"));
    let back = back.split('?').next().unwrap_or("/ui/");
    Ok(Page::redirect(format!("{back}?done={done}")))
}

/// Does `action` to a held change; says what was done.
async fn perform(
    cx: &Ctx,
    row: &crate::store::pending::PendingChange,
    action: &str,
) -> Result<&'static str, Error> {
    let (store, principal, by, id) = (&cx.store, &cx.principal, &cx.by, row.id.as_str());
    let comment = || ReviewInput {
        comment: cx.form.optional("comment"),
    };
    Ok(match action {
        "approve" => {
            pending::review(store, by, id, Decision::Approve, comment()).await?;
            "approved"
        }
        "reject" => {
            pending::review(store, by, id, Decision::Reject, comment()).await?;
            "rejected"
        }
        "apply" => {
            pending::apply(store, by, id).await?;
            "applied"
        }
        _ if row.kind == crate::store::pending::Kind::Scheduled => {
            pending::cancel::<ScheduledChange>(store, principal, by, id).await?;
            "cancelled"
        }
        _ => {
            pending::cancel::<ChangeRequest>(store, principal, by, id).await?;
            "cancelled"
        }
    })
}
