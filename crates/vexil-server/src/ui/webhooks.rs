//! The webhooks page (admins only, like the API's webhooks): the project's webhooks with
//! their state — the reason the server disabled one shown as an alert —, creating one (its
//! signing secret shown once, on the answer to the form, with how to verify signatures),
//! and a webhook's page: its settings, enable or disable, send a test event, delete, and its
//! recent deliveries, each with a redelivery.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};

use super::form::{FormData, query_string};
use super::{Ctx, Frame, Page, PageResult, Place};
use crate::manage::fields::Patch;
use crate::manage::webhooks::NewWebhook;
use crate::manage::{self, Error};
use crate::store::webhooks::{Delivery, Webhook};
use crate::webhook::{Sender, event_types};

/// Deliveries per page of a webhook's page.
const PAGE_SIZE: i64 = 50;

/// The formats offered, with what each sends.
const FORMATS: [(&str, &str); 3] = [
    ("standard", "standard (the event as JSON)"),
    ("slack", "slack (a chat message)"),
    ("discord", "discord (a chat message)"),
];

/// A webhook's editable fields as shown in a form (the defaults, the webhook's, or as
/// typed), and their problems by field.
#[derive(Debug, Clone)]
struct HookForm {
    name: String,
    url: String,
    format: String,
    /// The event patterns as typed: separated by commas or spaces.
    events: String,
    errors: HashMap<String, String>,
}

impl HookForm {
    fn blank() -> HookForm {
        HookForm {
            name: String::new(),
            url: String::new(),
            format: "standard".into(),
            events: "*".into(),
            errors: HashMap::new(),
        }
    }

    fn of(hook: &Webhook) -> HookForm {
        HookForm {
            name: hook.name.clone(),
            url: hook.url.clone(),
            format: hook.format.clone(),
            events: hook.events.join(", "),
            errors: HashMap::new(),
        }
    }

    fn read(form: &FormData) -> HookForm {
        HookForm {
            name: form.text("name"),
            url: form.text("url"),
            format: form.text("format"),
            events: form.text("events"),
            errors: HashMap::new(),
        }
    }

    /// The event patterns typed, in order.
    fn patterns(&self) -> Vec<String> {
        self.events
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The problem shown beside `field` (empty: none).
    fn error(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }

    /// Takes the domain's field problems: a pattern's problem (`events[2]`) is shown at
    /// the events field. Returns those that belong to no field of the form.
    fn take_errors(&mut self, fields: &Map<String, Value>) -> Vec<String> {
        let mut unplaced = Vec::new();
        for (path, problem) in fields {
            let problem = problem.as_str().unwrap_or_default().to_owned();
            let field = if path.starts_with("events[") {
                "events"
            } else {
                path.as_str()
            };
            if !["name", "url", "format", "events"].contains(&field) {
                unplaced.push(format!("{path}: {problem}"));
                continue;
            }
            self.errors
                .entry(field.to_owned())
                .and_modify(|e| {
                    e.push_str("; ");
                    e.push_str(&problem);
                })
                .or_insert(problem);
        }
        unplaced
    }

    /// The merge patch of the editable fields.
    fn changes(&self) -> Map<String, Value> {
        let mut changes = Map::new();
        changes.insert("name".into(), json!(self.name));
        changes.insert("url".into(), json!(self.url));
        changes.insert("format".into(), json!(self.format));
        changes.insert("events".into(), json!(self.patterns()));
        changes
    }
}

/// The known event types by family (`flag` → `flag.created`, …), in the documentation's
/// order, for the forms' help.
fn families() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for event in event_types() {
        let family = event.split_once('.').map_or(event, |(f, _)| f);
        match out.iter_mut().find(|(f, _)| *f == family) {
            Some((_, events)) => events.push(event),
            None => out.push((family, vec![event])),
        }
    }
    out
}

/// The pill class of a delivery's status.
fn pill(status: &str) -> &'static str {
    match status {
        "delivered" => "on",
        "failed" => "failed",
        _ => "pending",
    }
}

/// The notices of this page's redirects (`?done=…`); others are the console's.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "enabled" => {
            "Enabled: it announces what happens from now on (deliveries still pending go out first)."
        }
        "disabled" => "Disabled: nothing more is sent until it is enabled again.",
        _ => return None,
    })
}

/// The frame of a webhooks page, with this page's own notices.
async fn frame(cx: &Ctx, place: &Place, title: &str, done: Option<&str>) -> Result<Frame, Page> {
    let mut frame = Frame::load(cx, place, "webhooks", title, done).await?;
    if let Some(text) = done.and_then(notice) {
        frame.notice = Some(text.to_owned());
    }
    Ok(frame)
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    frame: Frame,
    hooks: Vec<Webhook>,
    /// The webhook just created and its signing secret, shown this once.
    created: Option<(Webhook, String)>,
    form: HookForm,
    /// The form was refused: open, with why.
    error: Option<String>,
    formats: [(&'static str, &'static str); 3],
    families: Vec<(&'static str, Vec<&'static str>)>,
}

/// `?done=` after a redirect.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ListQuery {
    done: Option<String>,
}

/// `GET /ui/{org}/{project}/webhooks`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    render_list(
        &cx,
        &place,
        None,
        HookForm::blank(),
        None,
        q.done.as_deref(),
    )
    .await
}

async fn render_list(
    cx: &Ctx,
    place: &Place,
    created: Option<(Webhook, String)>,
    form: HookForm,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let frame = frame(cx, place, "Webhooks", done).await?;
    let (hooks, _) = manage::webhooks::list(&cx.store, &place.project.id, 500, 0).await?;
    Ok(Page::render_form(
        error.is_some(),
        &WebhooksPage {
            frame,
            hooks,
            created,
            form,
            error,
            formats: FORMATS,
            families: families(),
        },
    ))
}

/// `POST /ui/{org}/{project}/webhooks`: creates a webhook and shows its secret once;
/// problems come back beside the fields, with what was typed.
pub(crate) async fn create(
    cx: Ctx,
    State(sender): State<Arc<Sender>>,
    Extension(place): Extension<Place>,
) -> PageResult {
    let mut form = HookForm::read(&cx.form);
    let input = NewWebhook {
        name: form.name.clone(),
        url: form.url.clone(),
        events: Some(form.patterns()),
        format: Some(form.format.clone()),
        enabled: Some(true),
        comment: None,
    };
    match manage::webhooks::create(&cx.store, &cx.by, &sender, &place.project.id, input).await {
        Ok(created) => render_list(&cx, &place, Some(created), HookForm::blank(), None, None).await,
        Err(Error::Invalid { fields, message }) => {
            let unplaced = form.take_errors(&fields);
            let error = if unplaced.is_empty() && !fields.is_empty() {
                "The webhook was not created: see the fields below.".to_owned()
            } else {
                format!("The webhook was not created: {message}")
            };
            render_list(&cx, &place, None, form, Some(error), None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// What the last test or redelivery found, shown on the webhook's page.
struct Sent {
    delivered: bool,
    text: String,
}

impl Sent {
    fn of(d: &Delivery, done: &str) -> Sent {
        let what = match done {
            "test" => "Test event".to_owned(),
            _ => format!("Redelivery of {}", d.event),
        };
        let answer = match (d.last_status_code, d.last_latency_ms) {
            (Some(code), Some(ms)) => format!("the receiver answered {code} in {ms} ms"),
            (Some(code), None) => format!("the receiver answered {code}"),
            _ => String::new(),
        };
        let delivered = d.status == "delivered" && d.last_error.is_none();
        let text = if delivered {
            format!("{what} delivered: {answer}.")
        } else {
            let error = d.last_error.as_deref().unwrap_or("no answer");
            let mut text = format!("{what} failed: {error}");
            if !answer.is_empty() && !error.contains("answered") {
                text.push_str(&format!(" ({answer})"));
            }
            text.push('.');
            if done != "test" && d.status == "pending" {
                text.push_str(" Its retries go on as they were scheduled.");
            }
            text
        };
        Sent { delivered, text }
    }
}

#[derive(Template)]
#[template(path = "webhooks-webhook.html")]
struct WebhookPage {
    frame: Frame,
    hook: Webhook,
    /// `…/webhooks/{id}`.
    here: String,
    form: HookForm,
    error: Option<String>,
    sent: Option<Sent>,
    deliveries: Vec<Delivery>,
    total: i64,
    /// The status filter (`""`: all).
    status: String,
    page: i64,
    pages: i64,
    /// The status filter as a query string, for the pager's links.
    keep: String,
    formats: [(&'static str, &'static str); 3],
    families: Vec<(&'static str, Vec<&'static str>)>,
}

impl WebhookPage {
    fn pill(&self, status: &str) -> &'static str {
        pill(status)
    }
}

/// A webhook's page: `?done=` after a redirect, `delivery` (what a test or redelivery
/// sent), the deliveries' `status` filter and `page`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct HookQuery {
    done: Option<String>,
    delivery: Option<String>,
    #[serde(default)]
    status: String,
    page: Option<String>,
}

/// The webhook `id` of this project (404 for another project's).
async fn hook_here(cx: &Ctx, place: &Place, id: &str) -> Result<Webhook, Page> {
    let hook = manage::webhooks::get(&cx.store, id).await?;
    if hook.project_id != place.project.id {
        return Err(Page::not_found("webhook"));
    }
    Ok(hook)
}

fn here(place: &Place, hook: &Webhook) -> String {
    format!("{}/webhooks/{}", place.base(), hook.id)
}

/// `GET /ui/{org}/{project}/webhooks/{webhook}`.
pub(crate) async fn page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
    Query(q): Query<HookQuery>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let form = HookForm::of(&hook);
    render_hook(&cx, &place, hook, form, None, &q).await
}

async fn render_hook(
    cx: &Ctx,
    place: &Place,
    hook: Webhook,
    form: HookForm,
    error: Option<String>,
    q: &HookQuery,
) -> PageResult {
    let done = q.done.as_deref();
    let frame = frame(cx, place, &format!("Webhook {}", hook.name), done).await?;
    let sent = match (done, q.delivery.as_deref()) {
        (Some(done @ ("test" | "redelivered")), Some(id)) => {
            match manage::webhooks::delivery(&cx.store, &hook.id, id).await {
                Ok((d, _)) => Some(Sent::of(&d, done)),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let status = match q.status.as_str() {
        s @ ("pending" | "delivered" | "failed") => s.to_owned(),
        _ => String::new(),
    };
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1_i64)
        .clamp(1, 1_000_000);
    let (deliveries, total) = manage::webhooks::deliveries(
        &cx.store,
        &hook.id,
        Some(status.as_str()).filter(|s| !s.is_empty()),
        PAGE_SIZE,
        (page - 1) * PAGE_SIZE,
    )
    .await?;
    Ok(Page::render_form(
        error.is_some(),
        &WebhookPage {
            frame,
            here: here(place, &hook),
            hook,
            form,
            error,
            sent,
            deliveries,
            total,
            keep: query_string(&[("status", &status)]),
            status,
            page,
            pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
            formats: FORMATS,
            families: families(),
        },
    ))
}

/// Where a change was refused: the webhook's page again (as it is now), with why, and the
/// form as typed with its problems beside the fields.
async fn refused(
    cx: &Ctx,
    place: &Place,
    id: &str,
    form: Option<HookForm>,
    e: Error,
) -> PageResult {
    let hook = hook_here(cx, place, id).await?;
    let mut form = form.unwrap_or_else(|| HookForm::of(&hook));
    let message = match e {
        Error::Invalid { fields, message } => {
            let unplaced = form.take_errors(&fields);
            if unplaced.is_empty() && !fields.is_empty() {
                "Not saved: see the fields below.".to_owned()
            } else {
                format!("Not saved: {message}")
            }
        }
        Error::VersionMismatch { .. } => "Not saved: someone changed this webhook meanwhile. \
            It is shown as it is now, with what you typed kept: save again to replace their change."
            .to_owned(),
        e @ (Error::Conflict { .. } | Error::Forbidden(_)) => format!("Not saved: {e}"),
        e => return Err(e.into()),
    };
    render_hook(cx, place, hook, form, Some(message), &HookQuery::default()).await
}

/// `POST /ui/{org}/{project}/webhooks/{webhook}`: name, URL, format and event filter.
pub(crate) async fn save(
    cx: Ctx,
    State(sender): State<Arc<Sender>>,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let form = HookForm::read(&cx.form);
    let patch = Patch {
        changes: form.changes(),
        comment: None,
    };
    let expected = cx.form.text("version").parse().ok();
    match manage::webhooks::update(&cx.store, &cx.by, &sender, (&hook.id, expected), &patch).await {
        Ok(hook) => Ok(Page::redirect(format!(
            "{}?done=saved",
            here(&place, &hook)
        ))),
        Err(e) => refused(&cx, &place, &id, Some(form), e).await,
    }
}

/// `POST /ui/{org}/{project}/webhooks/{webhook}/toggle`: `to=on` enables (clearing the
/// reason the server disabled it for), `to=off` disables; back to the list with
/// `back=list`, else to the webhook's page.
pub(crate) async fn toggle(
    cx: Ctx,
    State(sender): State<Arc<Sender>>,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let on = cx.form.text("to") == "on";
    let mut changes = Map::new();
    changes.insert("enabled".into(), json!(on));
    let patch = Patch {
        changes,
        comment: None,
    };
    let expected = cx.form.text("version").parse().ok();
    let done = if on { "enabled" } else { "disabled" };
    match manage::webhooks::update(&cx.store, &cx.by, &sender, (&hook.id, expected), &patch).await {
        Ok(_) if cx.form.text("back") == "list" => Ok(Page::redirect(format!(
            "{}/webhooks?done={done}",
            place.base()
        ))),
        Ok(hook) => Ok(Page::redirect(format!(
            "{}?done={done}",
            here(&place, &hook)
        ))),
        Err(e) => refused(&cx, &place, &id, None, e).await,
    }
}

/// `POST /ui/{org}/{project}/webhooks/{webhook}/test`: sends a `webhook.test` event now
/// and shows how it went on the webhook's page.
pub(crate) async fn test(
    cx: Ctx,
    State(sender): State<Arc<Sender>>,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let delivery = manage::webhooks::test(&cx.store, &cx.by, &sender, &hook.id).await?;
    Ok(Page::redirect(format!(
        "{}?done=test&delivery={}",
        here(&place, &hook),
        delivery.id
    )))
}

/// `POST /ui/{org}/{project}/webhooks/{webhook}/deliveries/{delivery_id}/redeliver`.
pub(crate) async fn redeliver(
    cx: Ctx,
    State(sender): State<Arc<Sender>>,
    Extension(place): Extension<Place>,
    Path((_, _, id, delivery_id)): Path<(String, String, String, String)>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let delivery = manage::webhooks::redeliver(&cx.store, &sender, &hook.id, &delivery_id).await?;
    Ok(Page::redirect(format!(
        "{}?done=redelivered&delivery={}",
        here(&place, &hook),
        delivery.id
    )))
}

/// `POST /ui/{org}/{project}/webhooks/{webhook}/delete`: the webhook and its deliveries.
pub(crate) async fn delete(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
) -> PageResult {
    let hook = hook_here(&cx, &place, &id).await?;
    let expected = cx.form.text("version").parse().ok();
    match manage::webhooks::delete(&cx.store, &cx.by, (&hook.id, expected)).await {
        Ok(()) => Ok(Page::redirect(format!(
            "{}/webhooks?done=deleted",
            place.base()
        ))),
        Err(e) => refused(&cx, &place, &id, None, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_separated_by_commas_or_spaces() {
        let form = HookForm {
            events: "flag.*, config.updated  release.rolled_back,,\n*".into(),
            ..HookForm::blank()
        };
        assert_eq!(
            form.patterns(),
            ["flag.*", "config.updated", "release.rolled_back", "*"]
        );
    }

    #[test]
    fn a_patterns_problem_is_shown_at_the_events_field() {
        let mut form = HookForm::blank();
        let mut fields = Map::new();
        fields.insert("events[1]".into(), json!("'nope' is not an event type"));
        fields.insert("url".into(), json!("must be an http:// or https:// URL"));
        fields.insert("comment".into(), json!("too long"));
        let unplaced = form.take_errors(&fields);
        assert_eq!(form.error("events"), "'nope' is not an event type");
        assert_eq!(form.error("url"), "must be an http:// or https:// URL");
        assert_eq!(unplaced, ["comment: too long"]);
    }

    #[test]
    fn every_event_type_is_in_one_family() {
        let listed: usize = families().iter().map(|(_, e)| e.len()).sum();
        assert_eq!(listed, event_types().count());
        assert!(families().iter().any(|(f, _)| *f == "flag"));
    }
}
