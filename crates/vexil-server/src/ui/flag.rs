//! The flag page: its definition, the lifecycle actions (kill switch, archive, restore,
//! delete), a tab per environment with the whole configuration editor, and the history of
//! a configuration (revisions, a diff between any two, restore).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::draft::{ClauseDraft, Draft, OPERATORS, PrereqDraft, RuleDraft, ServeDraft};
use super::form::{FormData, url_encode};
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::fields::Patch;
use crate::manage::flags::actions::KillSwitch;
use crate::manage::{self, By, Error};
use crate::store::Store;
use crate::store::flags::{Flag, Revision};
use crate::store::segments::Segment;

/// `GET …/flags/{flag}`: the flag in the project's first environment (production first).
pub(crate) async fn first_environment(
    State(store): State<Arc<Store>>,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let flag = place.flag()?;
    let (envs, _) = manage::environments::list(&store, &place.project.id, 100, 0).await?;
    let env = envs
        .iter()
        .find(|e| e.is_production)
        .or(envs.first())
        .ok_or_else(|| Page::not_found("environment"))?;
    let done = q
        .done
        .map(|d| format!("?done={}", url_encode(&d)))
        .unwrap_or_default();
    Ok(Page::redirect(format!(
        "{}/flags/{}/in/{}{done}",
        place.base(),
        url_encode(&flag.key),
        url_encode(&env.key)
    )))
}

#[derive(Template)]
#[template(path = "flag.html")]
struct FlagPage {
    frame: Frame,
    flag: Flag,
    env_key: String,
    env_name: String,
    protected: bool,
    requires_approval: bool,
    /// Scheduled changes and change requests waiting here.
    held: Vec<super::release::Held>,
    /// The release plan here (or the form that starts one).
    release: super::plans::Panel,
    draft: Draft,
    /// The page's own URL (the tab), for forms that come back here.
    here: String,
    flag_url: String,
    operators: [(&'static str, &'static str); 19],
    segments: Vec<String>,
    error: Option<String>,
    variations_text: String,
    /// "Copy from another environment" (its sources are empty when the caller may not
    /// copy here).
    copy: super::promote::CopyPanel,
}

impl FlagPage {
    fn rule_errors(&self, i: impl std::fmt::Display) -> Vec<String> {
        self.draft.errors_at(&format!("rules[{i}]"))
    }

    fn prereq_errors(&self, k: impl std::fmt::Display) -> Vec<String> {
        self.draft.errors_at(&format!("prerequisites[{k}]"))
    }

    fn serve_prefix(&self, i: impl std::fmt::Display) -> String {
        format!("rules[{i}].serve")
    }
}

fn flag_url(place: &Place, flag: &Flag) -> String {
    format!("{}/flags/{}", place.base(), url_encode(&flag.key))
}

/// `GET …/flags/{flag}/in/{env}`.
pub(crate) async fn page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let config = manage::flag_configs::get(&cx.store, &flag.id, &env.id).await?;
    let draft = Draft::of(&config.config, config.version, &flag.variations);
    render(&cx, &place, draft, None, q.done.as_deref()).await
}

pub(crate) async fn render(
    cx: &Ctx,
    place: &Place,
    draft: Draft,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    render_with(cx, place, draft, error, done, None).await
}

/// The tab, with the release panel's refused form (400) when there is one.
pub(crate) async fn render_with(
    cx: &Ctx,
    place: &Place,
    draft: Draft,
    error: Option<String>,
    done: Option<&str>,
    refusal: Option<super::plans::Refusal>,
) -> PageResult {
    render_all(cx, place, draft, error, done, refusal, None).await
}

/// The tab after a refused copy (400): the message above the editor, the copy control
/// open with what was chosen and typed.
pub(crate) async fn render_copy(
    cx: &Ctx,
    place: &Place,
    draft: Draft,
    error: String,
    kept: super::promote::CopyPanel,
) -> PageResult {
    render_all(cx, place, draft, Some(error), None, None, Some(kept)).await
}

async fn render_all(
    cx: &Ctx,
    place: &Place,
    draft: Draft,
    error: Option<String>,
    done: Option<&str>,
    refusal: Option<super::plans::Refusal>,
    kept: Option<super::promote::CopyPanel>,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let frame = Frame::load(cx, place, "flags", flag.key.clone(), done).await?;
    let may_copy = frame.can_edit() && (!env.protected || frame.is_admin());
    let mut copy = super::promote::panel(cx, place, &frame.environments, may_copy).await?;
    if let Some(kept) = kept {
        copy.from = kept.from;
        copy.comment = kept.comment;
        copy.open = kept.open;
    }
    let (segments, _) = manage::segments::list(&cx.store, &place.project.id, 1000, 0).await?;
    let held = super::release::held_here(cx, place, &frame).await?;
    let refused = refusal.is_some();
    let release = super::plans::panel(cx, place, &frame, refusal).await?;
    let status = if error.is_some() || refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let variations_text = flag
        .variations
        .iter()
        // As the form reads them back: text for string flags, JSON otherwise.
        .map(|v| match v.value.as_str() {
            Some(text) if flag.kind == vexil_core::FlagType::String => {
                format!("{} = {text}", v.key)
            }
            _ => format!("{} = {}", v.key, v.value),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Page::render_status(
        status,
        &FlagPage {
            here: format!("{}/in/{}", flag_url(place, flag), url_encode(&env.key)),
            flag_url: flag_url(place, flag),
            env_key: env.key.clone(),
            env_name: env.name.clone(),
            protected: env.protected,
            requires_approval: env.requires_approval,
            held,
            release,
            frame,
            flag: flag.clone(),
            draft,
            operators: OPERATORS,
            segments: segments.into_iter().map(|s: Segment| s.key).collect(),
            error,
            variations_text,
            copy,
        },
    ))
}

/// `POST …/flags/{flag}/in/{env}`: saves the configuration, or (`op`) adds or moves a row
/// and shows the form again without saving.
pub(crate) async fn save(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let mut draft = Draft::read(&cx.form, &flag.variations);
    let op = cx.form.text("op");
    if let Some(edited) = edit_rows(&mut draft, &op, &flag.variations) {
        if !edited {
            return Err(Page::status(
                StatusCode::BAD_REQUEST,
                "Unknown editor action.",
            ));
        }
        return render(&cx, &place, draft, None, None).await;
    }
    let changes = match draft.to_patch() {
        Ok(changes) => changes,
        Err(errors) => {
            draft.errors = errors;
            let message = "Some fields need attention (see below).".to_owned();
            return render(&cx, &place, draft, Some(message), None).await;
        }
    };
    let patch = Patch {
        changes,
        comment: Some(draft.comment.clone()).filter(|c| !c.is_empty()),
    };
    let ids = (flag.id.as_str(), env.id.as_str());
    match manage::flag_configs::update(&cx.store, &cx.by, ids, Some(draft.version), &patch).await {
        Ok(_) => Ok(Page::redirect(format!(
            "{}/in/{}?done=saved",
            flag_url(&place, flag),
            url_encode(&env.key)
        ))),
        Err(e) => refused(&cx, &place, draft, e).await,
    }
}

/// The editor again with why a change of the configuration was refused (field problems
/// beside their fields, under the configuration's own paths; a concurrent change with who
/// made it), or the error page for anything else.
pub(crate) async fn refused(cx: &Ctx, place: &Place, mut draft: Draft, e: Error) -> PageResult {
    let message = match e {
        Error::Invalid { message, fields } => {
            draft.errors = fields
                .into_iter()
                .map(|(k, v)| {
                    let k = k.strip_prefix("patch.").unwrap_or(&k).to_owned();
                    (k, v.as_str().unwrap_or_default().to_owned())
                })
                .collect();
            message.replace("execute_at", "time")
        }
        Error::VersionMismatch { current } => {
            let (flag, env) = (place.flag()?, place.env()?);
            let who = last_change(&cx.store, (&flag.id, &env.id)).await;
            format!(
                "This configuration changed while you were editing it (now version {current}{who}). Your changes are not saved; reload the page to start from the latest version."
            )
        }
        e @ (Error::Refused { .. } | Error::Conflict { .. } | Error::Forbidden(_)) => e.to_string(),
        e => return Err(e.into()),
    };
    render(cx, place, draft, Some(message), None).await
}

/// Who made the latest change of a configuration, and when (for a version conflict).
async fn last_change(store: &Store, ids: (&str, &str)) -> String {
    match manage::flag_configs::revisions(store, ids, 1, 0).await {
        Ok((revisions, _)) => revisions.first().map_or_else(String::new, |r: &Revision| {
            format!(", changed by {} at {}", r.actor.name, r.created_at)
        }),
        Err(_) => String::new(),
    }
}

/// The editor's row buttons: `add_rule`, `add_clause:i`, `add_prerequisite`, `up:i`,
/// `down:i`. `None`: not a row action (a save); `Some(false)`: an unknown one.
fn edit_rows(draft: &mut Draft, op: &str, variations: &[vexil_core::Variation]) -> Option<bool> {
    let blank_clause = || ClauseDraft {
        op: "in".into(),
        ..ClauseDraft::default()
    };
    let (verb, index) = op
        .split_once(':')
        .map_or((op, None), |(v, i)| (v, i.parse::<usize>().ok()));
    match (verb, index) {
        ("" | "save", _) => return None,
        ("add_rule", _) => draft.rules.push(RuleDraft {
            clauses: vec![blank_clause()],
            serve: ServeDraft::first(variations),
            ..RuleDraft::default()
        }),
        ("add_clause", Some(i)) if i < draft.rules.len() => {
            draft.rules[i].clauses.push(blank_clause())
        }
        ("add_prerequisite", _) => draft.prerequisites.push(PrereqDraft::default()),
        ("up", Some(i)) if i > 0 && i < draft.rules.len() => draft.rules.swap(i - 1, i),
        ("down", Some(i)) if i + 1 < draft.rules.len() => draft.rules.swap(i, i + 1),
        _ => return Some(false),
    }
    Some(true)
}

/// `POST …/flags/{flag}/in/{env}/toggle`: `to` = `on` or `off`.
pub(crate) async fn toggle(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let to = match cx.form.get("to") {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    };
    let comment = cx.form.optional("comment");
    let ids = (flag.id.as_str(), env.id.as_str());
    manage::flag_configs::toggle(&cx.store, &cx.by, ids, None, to, comment.as_deref()).await?;
    Ok(Page::redirect(if cx.form.get("back") == Some("list") {
        format!("{}/flags?done=toggled", place.base())
    } else {
        format!(
            "{}/in/{}?done=toggled",
            flag_url(&place, flag),
            url_encode(&env.key)
        )
    }))
}

/// `POST …/flags/{flag}/kill`: the kill switch, in one environment or all (reason
/// required).
pub(crate) async fn kill(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let flag = place.flag()?;
    let environment_id = place
        .environment_id(&cx.store, &cx.form.text("env"))
        .await?;
    let input = KillSwitch {
        reason: cx.form.text("reason"),
        environment_id,
    };
    match manage::flags::actions::kill_switch(&cx.store, &cx.by, &flag.id, input).await {
        Ok(_) => Ok(Page::redirect(format!(
            "{}?done=killed",
            flag_url(&place, flag)
        ))),
        Err(Error::Invalid { .. }) => Err(Page::status(
            StatusCode::BAD_REQUEST,
            "The kill switch needs a reason (1 to 1,000 characters). Go back and give one.",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn set_archived(
    store: &Store,
    by: &By,
    place: &Place,
    form: &FormData,
    archived: bool,
) -> PageResult {
    let flag = place.flag()?;
    let comment = form.optional("comment");
    manage::flags::actions::archive(store, by, &flag.id, None, archived, comment.as_deref())
        .await?;
    let done = if archived { "archived" } else { "restored" };
    Ok(Page::redirect(format!(
        "{}?done={done}",
        flag_url(place, flag)
    )))
}

/// `POST …/flags/{flag}/archive`.
pub(crate) async fn archive(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    set_archived(&cx.store, &cx.by, &place, &cx.form, true).await
}

/// `POST …/flags/{flag}/restore`.
pub(crate) async fn restore(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    set_archived(&cx.store, &cx.by, &place, &cx.form, false).await
}

/// `POST …/flags/{flag}/delete`: only when no other flag names it as a prerequisite.
pub(crate) async fn delete(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let flag = place.flag()?;
    match manage::flags::delete(&cx.store, &cx.by, (&flag.id, None)).await {
        Ok(()) => Ok(Page::redirect(format!(
            "{}/flags?done=deleted",
            place.base()
        ))),
        Err(e @ Error::Conflict { .. }) => Err(Page::status(StatusCode::CONFLICT, &e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// `POST …/flags/{flag}/edit`: name, description, tags, temporary, client-side and the
/// variations.
pub(crate) async fn edit(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let flag = place.flag()?;
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(cx.form.text("name")));
    changes.insert("description".into(), json!(cx.form.text("description")));
    let tags = super::form::items(&cx.form.text("tags"));
    changes.insert("tags".into(), json!(tags));
    changes.insert("temporary".into(), json!(cx.form.checked("temporary")));
    changes.insert("client_side".into(), json!(cx.form.checked("client_side")));
    if flag.kind != vexil_core::FlagType::Boolean || cx.form.get("variations").is_some() {
        let text = cx.form.get("variations").unwrap_or_default();
        changes.insert("variations".into(), variations_of(flag, text)?);
    }
    let patch = Patch {
        changes,
        comment: cx.form.optional("comment"),
    };
    let at = (flag.id.as_str(), cx.form.text("version").parse().ok());
    match manage::flags::update(&cx.store, &cx.principal, &cx.by, at, &patch).await {
        Ok(_) => Ok(Page::redirect(format!(
            "{}?done=saved",
            flag_url(&place, flag)
        ))),
        Err(
            e @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::VersionMismatch { .. }),
        ) => Err(Page::status(StatusCode::BAD_REQUEST, &e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The variations the form's `key = value` lines give, each keeping its name and
/// description.
fn variations_of(flag: &Flag, text: &str) -> Result<Value, Page> {
    let variations = super::flags::parse_variations(flag.kind, text)
        .map_err(|e| Page::status(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let merged = variations
        .into_iter()
        .map(|nv| {
            let old = flag.variations.iter().find(|o| o.key == nv.key);
            json!({"key": nv.key, "value": nv.value,
                   "name": old.and_then(|o| o.name.clone()),
                   "description": old.and_then(|o| o.description.clone())})
        })
        .collect();
    Ok(Value::Array(merged))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    a: Option<String>,
    b: Option<String>,
    done: Option<String>,
}

/// One line of a diff: `' '` same, `'-'` only in the older, `'+'` only in the newer.
pub(crate) struct DiffLine {
    pub(crate) kind: char,
    pub(crate) text: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    frame: Frame,
    flag: Flag,
    env_name: String,
    here: String,
    revisions: Vec<Revision>,
    current: i64,
    a: i64,
    b: i64,
    diff: Vec<DiffLine>,
}

/// `GET …/flags/{flag}/in/{env}/history?a=&b=`: the revisions, and the diff of `a` → `b`
/// (by default the previous and the current version).
pub(crate) async fn history(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<HistoryQuery>,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let ids = (flag.id.as_str(), env.id.as_str());
    let (revisions, _) = manage::flag_configs::revisions(&cx.store, ids, 500, 0).await?;
    let current = revisions.first().map_or(0, |r| r.version);
    let b = q.b.and_then(|v| v.parse().ok()).unwrap_or(current);
    let a = q.a.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        revisions
            .iter()
            .map(|r| r.version)
            .filter(|v| *v < b)
            .max()
            .unwrap_or(b)
    });
    let text = |v: i64| {
        revisions
            .iter()
            .find(|r| r.version == v)
            .map(|r| serde_json::to_string_pretty(&r.config).unwrap_or_default())
            .unwrap_or_default()
    };
    let diff = line_diff(&text(a), &text(b));
    let frame = Frame::load(
        &cx,
        &place,
        "flags",
        format!("History of {}", flag.key),
        q.done.as_deref(),
    )
    .await?;
    Ok(Page::render(&HistoryPage {
        here: format!("{}/in/{}", flag_url(&place, flag), url_encode(&env.key)),
        frame,
        flag: flag.clone(),
        env_name: env.name.clone(),
        revisions,
        current,
        a,
        b,
        diff,
    }))
}

/// `POST …/history/{version}/restore`.
pub(crate) async fn restore_revision(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path(params): Path<HashMap<String, String>>,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let version = params
        .get("version")
        .map(String::as_str)
        .unwrap_or_default();
    let ids = (flag.id.as_str(), env.id.as_str());
    manage::flag_configs::restore(
        &cx.store,
        &cx.by,
        ids,
        version,
        None,
        cx.form.optional("comment"),
    )
    .await?;
    Ok(Page::redirect(format!(
        "{}/in/{}?done=restored",
        flag_url(&place, flag),
        url_encode(&env.key)
    )))
}

/// Lines of each side a diff compares (the table is their product); longer documents are
/// cut, and the diff says so.
const MAX_DIFF_LINES: usize = 600;

/// A line diff (longest common subsequence over at most [`MAX_DIFF_LINES`] lines a side).
pub(crate) fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().take(MAX_DIFF_LINES).collect();
    let b: Vec<&str> = new.lines().take(MAX_DIFF_LINES).collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let cut = old.lines().count() > n || new.lines().count() > m;
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(DiffLine {
                kind: ' ',
                text: a[i].to_owned(),
            });
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push(DiffLine {
                kind: '+',
                text: b[j].to_owned(),
            });
            j += 1;
        } else {
            out.push(DiffLine {
                kind: '-',
                text: a[i].to_owned(),
            });
            i += 1;
        }
    }
    if cut {
        out.push(DiffLine {
            kind: ' ',
            text: format!("… (only the first {MAX_DIFF_LINES} lines of each side are compared)"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_diff_marks_removed_and_added_lines() {
        let d = super::line_diff("a\nb\nc", "a\nc\nd");
        let s: Vec<String> = d.iter().map(|l| format!("{}{}", l.kind, l.text)).collect();
        assert_eq!(s, [" a", "-b", " c", "+d"]);
        // A changed line reads as the old one, then the new one.
        let d = super::line_diff("{\n  \"enabled\": false,\n}", "{\n  \"enabled\": true,\n}");
        let s: Vec<char> = d.iter().map(|l| l.kind).collect();
        assert_eq!(s, [' ', '-', '+', ' ']);
    }
}
