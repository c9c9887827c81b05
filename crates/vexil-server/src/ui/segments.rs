//! Segments: the list, creating one, and a segment's page (included and excluded keys,
//! rules, "used by", delete).

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use axum::http::StatusCode;
use serde_json::json;
use vexil_core::SegmentRule;

use super::draft::{ClauseDraft, OPERATORS, clauses_of, errors_at};
use super::form::{FormData, lines, url_encode};
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::fields::Patch;
use crate::manage::{self, Error};
use crate::store::segments::{Referrer, Segment};

#[derive(Template)]
#[template(path = "segments.html")]
struct SegmentsPage {
    frame: Frame,
    segments: Vec<Segment>,
    error: Option<String>,
    key: String,
    name: String,
}

/// `GET /ui/{org}/{project}/segments`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "segments", "Segments", q.done.as_deref()).await?;
    let (segments, _) = manage::segments::list(&cx.store, &place.project.id, 1000, 0).await?;
    Ok(Page::render(&SegmentsPage {
        frame,
        segments,
        error: None,
        key: String::new(),
        name: String::new(),
    }))
}

/// `POST /ui/{org}/{project}/segments`: creates an empty segment and opens it.
pub(crate) async fn create(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let (key, name) = (cx.form.text("key"), cx.form.text("name"));
    let mut input = json!({"key": key});
    if !name.is_empty() {
        input["name"] = json!(name);
    }
    let input = serde_json::from_value(input)
        .map_err(|e| Page::status(StatusCode::BAD_REQUEST, &e.to_string()))?;
    match manage::segments::create(&cx.store, &cx.by, &place.project.id, input).await {
        Ok(s) => Ok(Page::redirect(format!(
            "{}/segments/{}?done=created",
            place.base(),
            url_encode(&s.key)
        ))),
        Err(e @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let frame = Frame::load(&cx, &place, "segments", "Segments", None).await?;
            let (segments, _) =
                manage::segments::list(&cx.store, &place.project.id, 1000, 0).await?;
            Ok(Page::render_status(
                StatusCode::BAD_REQUEST,
                &SegmentsPage {
                    frame,
                    segments,
                    error: Some(e.to_string()),
                    key,
                    name,
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// A segment rule in the editor.
struct RuleRow {
    id: String,
    clauses: Vec<ClauseDraft>,
    /// Ticked "remove this rule": left out when saved.
    remove: bool,
}

#[derive(Template)]
#[template(path = "segment.html")]
struct SegmentPage {
    frame: Frame,
    segment: Segment,
    here: String,
    name: String,
    description: String,
    included: String,
    excluded: String,
    rules: Vec<RuleRow>,
    version: i64,
    used_by: Vec<Referrer>,
    operators: [(&'static str, &'static str); 19],
    error: Option<String>,
    errors: HashMap<String, String>,
}

impl SegmentPage {
    fn rule_errors(&self, i: impl std::fmt::Display) -> Vec<String> {
        errors_at(&self.errors, &format!("rules[{i}]"))
    }

    fn field_errors(&self, field: &str) -> Vec<String> {
        errors_at(&self.errors, field)
    }
}

/// `GET /ui/{org}/{project}/segments/{segment}`.
pub(crate) async fn page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let segment = place.segment()?.clone();
    let d = &segment.definition;
    let page = SegmentPage {
        name: segment.name.clone(),
        description: segment.description.clone(),
        included: d.included.join("\n"),
        excluded: d.excluded.join("\n"),
        rules: d
            .rules
            .iter()
            .map(|r| RuleRow {
                id: r.id.clone().unwrap_or_default(),
                clauses: r.clauses.iter().map(ClauseDraft::of).collect(),
                remove: false,
            })
            .collect(),
        version: segment.version,
        ..blank(&cx, &place, segment.clone(), q.done.as_deref()).await?
    };
    Ok(Page::render(&page))
}

async fn blank(
    cx: &Ctx,
    place: &Place,
    segment: Segment,
    done: Option<&str>,
) -> Result<SegmentPage, Page> {
    let frame = Frame::load(cx, place, "segments", segment.key.clone(), done).await?;
    let used_by = manage::segments::used_by(&cx.store, &segment).await?;
    Ok(SegmentPage {
        frame,
        here: format!("{}/segments/{}", place.base(), url_encode(&segment.key)),
        name: String::new(),
        description: String::new(),
        included: String::new(),
        excluded: String::new(),
        rules: Vec::new(),
        version: segment.version,
        segment,
        used_by,
        operators: OPERATORS,
        error: None,
        errors: HashMap::new(),
    })
}

/// `POST /ui/{org}/{project}/segments/{segment}`: saves, or adds a rule or condition row.
pub(crate) async fn save(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let segment = place.segment()?.clone();
    let mut page = SegmentPage {
        name: cx.form.text("name"),
        description: cx.form.text("description"),
        included: cx.form.get("included").unwrap_or_default().to_owned(),
        excluded: cx.form.get("excluded").unwrap_or_default().to_owned(),
        version: cx.form.text("version").parse().unwrap_or(0),
        ..blank(&cx, &place, segment.clone(), None).await?
    };
    page.rules = rule_rows(&cx.form);
    if edit_rows(&mut page.rules, &cx.form.text("op")) {
        return Ok(Page::render(&page));
    }
    let patch = match patch_of(&page, cx.form.optional("comment")) {
        Ok(patch) => patch,
        Err(errors) => {
            page.errors = errors;
            page.error = Some("Some fields need attention (see below).".into());
            return Ok(Page::render_status(StatusCode::BAD_REQUEST, &page));
        }
    };
    let at = (segment.id.as_str(), Some(page.version));
    match manage::segments::update(&cx.store, &cx.principal, &cx.by, at, &patch).await {
        Ok(_) => Ok(Page::redirect(format!("{}?done=saved", page.here))),
        Err(e) => refused(page, e),
    }
}

/// The rule rows of a submitted segment form (at most 500).
fn rule_rows(form: &FormData) -> Vec<RuleRow> {
    form.indexed("rules")
        .into_iter()
        .take(500)
        .map(|(_, r)| RuleRow {
            id: r.text("id"),
            clauses: ClauseDraft::read_all(&r),
            remove: r.checked("remove"),
        })
        .collect()
}

/// The editor's row buttons (`add_rule`, `add_clause:i`): whether `op` was one (then the
/// form is shown again, nothing saved).
fn edit_rows(rules: &mut Vec<RuleRow>, op: &str) -> bool {
    let blank_clause = || ClauseDraft {
        op: "in".into(),
        ..ClauseDraft::default()
    };
    match op.split_once(':') {
        None if op == "add_rule" => rules.push(RuleRow {
            id: String::new(),
            clauses: vec![blank_clause()],
            remove: false,
        }),
        Some(("add_clause", i)) => {
            if let Some(rule) = i.parse::<usize>().ok().and_then(|i| rules.get_mut(i)) {
                rule.clauses.push(blank_clause());
            }
        }
        _ => return false,
    }
    true
}

/// The merge patch of the segment as the form shows it, or the problems of its rows.
fn patch_of(page: &SegmentPage, comment: Option<String>) -> Result<Patch, HashMap<String, String>> {
    let mut errors = HashMap::new();
    let rules: Vec<SegmentRule> = page
        .rules
        .iter()
        .filter(|r| !r.remove)
        .enumerate()
        .map(|(i, r)| SegmentRule {
            id: Some(r.id.clone()).filter(|s| !s.is_empty()),
            clauses: clauses_of(&r.clauses, &format!("rules[{i}]"), &mut errors),
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(page.name));
    changes.insert("description".into(), json!(page.description));
    changes.insert("included".into(), json!(lines(&page.included)));
    changes.insert("excluded".into(), json!(lines(&page.excluded)));
    changes.insert("rules".into(), json!(rules));
    Ok(Patch { changes, comment })
}

/// The form again with why the segment was not saved.
fn refused(mut page: SegmentPage, e: Error) -> PageResult {
    match e {
        Error::Invalid { message, fields } => {
            page.errors = fields
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect();
            page.error = Some(message);
            Ok(Page::render_status(StatusCode::BAD_REQUEST, &page))
        }
        e @ (Error::VersionMismatch { .. } | Error::Conflict { .. } | Error::Forbidden(_)) => {
            page.error = Some(format!(
                "{e}. Your changes are not saved; reload the page to start from the latest version."
            ));
            Ok(Page::render_status(StatusCode::CONFLICT, &page))
        }
        e => Err(e.into()),
    }
}

/// `POST /ui/{org}/{project}/segments/{segment}/delete`: only when nothing uses it.
pub(crate) async fn delete(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let segment = place.segment()?;
    match manage::segments::delete(&cx.store, &cx.by, (&segment.id, None)).await {
        Ok(()) => Ok(Page::redirect(format!(
            "{}/segments?done=deleted",
            place.base()
        ))),
        Err(e @ Error::Conflict { .. }) => Err(Page::status(StatusCode::CONFLICT, &e.to_string())),
        Err(e) => Err(e.into()),
    }
}
