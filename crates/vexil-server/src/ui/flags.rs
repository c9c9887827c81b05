//! The flags page: search, filters, sort, pagination, a switch per environment, bulk
//! actions on the selected flags, and the "new flag" form.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use serde::Deserialize;
use serde_json::{Value, json};
use vexil_core::FlagType;

use super::form::{items, query_string, url_encode};
use super::{Ctx, Frame, Page, PageResult, Place};
use crate::manage::flags::actions::{Bulk, BulkAction};
use crate::manage::flags::{ListFlags, NewFlag};
use crate::manage::insights::{Lifecycle, WithLifecycle};
use crate::manage::{self, Error};
use crate::store::flags::Flag;

/// Flags per page.
const PAGE_SIZE: i64 = 50;

/// `GET /ui/{org}/{project}`: the project's flags.
pub(crate) async fn project_home(Extension(place): Extension<Place>) -> Page {
    Page::redirect(format!("{}/flags", place.base()))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    archived: String,
    /// An environment key, with `state`.
    #[serde(default)]
    env: String,
    /// `on` or `off` in `env`.
    #[serde(default)]
    state: String,
    #[serde(default)]
    sort: String,
    /// `yes`: stale flags only.
    #[serde(default)]
    stale: String,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    done: Option<String>,
    /// A template's key: the "new flag" form opens with it chosen (a template's page links
    /// here).
    #[serde(default)]
    template: String,
}

/// A flag's row: its switch in each environment, in the header's environment order.
struct Row {
    flag: Flag,
    lifecycle: Lifecycle,
    switches: Vec<Switch>,
}

struct Switch {
    env_key: String,
    env_name: String,
    on: bool,
    protected: bool,
}

#[derive(Template)]
#[template(path = "flags.html")]
struct FlagsPage<'a> {
    frame: Frame,
    rows: Vec<Row>,
    total: i64,
    page: i64,
    pages: i64,
    q: &'a ListQuery,
    /// The query string without `page`, for the pager's links.
    keep: String,
    types: [&'static str; 4],
    sorts: [(&'static str, &'static str); 6],
    /// The "new flag" form, when it was sent back with problems.
    new: NewFlagForm,
    /// The project's templates for the form's picker (key, label); empty for viewers.
    templates: Vec<(String, String)>,
    filtered: bool,
}

/// What the "new flag" form holds, and its problems by field.
#[derive(Debug, Default)]
struct NewFlagForm {
    open: bool,
    key: String,
    name: String,
    description: String,
    kind: String,
    variations: String,
    tags: String,
    /// The template chosen (`""`: none).
    template: String,
    error: Option<String>,
    errors: HashMap<String, String>,
}

impl NewFlagForm {
    fn error_for(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }
}

/// `GET /ui/{org}/{project}/flags`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let new = NewFlagForm {
        open: !q.template.is_empty(),
        template: q.template.clone(),
        ..NewFlagForm::default()
    };
    render(&cx, &place, q, new).await
}

async fn render(cx: &Ctx, place: &Place, q: ListQuery, new: NewFlagForm) -> PageResult {
    let frame = Frame::load(cx, place, "flags", "Flags", q.done.as_deref()).await?;
    let templates = if frame.can_edit() {
        let (found, _) = manage::templates::list(&cx.store, &place.project.id, 500, 0).await?;
        found
            .into_iter()
            .map(|t| {
                let label = if t.name == t.key {
                    format!("{} ({})", t.key, t.def.kind.as_str())
                } else {
                    format!("{} — {} ({})", t.key, t.name, t.def.kind.as_str())
                };
                (t.key, label)
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1_i64)
        .clamp(1, 1_000_000);
    let env = frame.environments.iter().find(|e| e.key == q.env);
    let query = ListFlags {
        q: Some(q.q.clone()).filter(|s| !s.is_empty()),
        tag: Some(q.tag.clone()).filter(|s| !s.is_empty()),
        kind: flag_type(&q.kind),
        archived: Some(q.archived == "yes"),
        environment_id: env.map(|e| e.id.clone()),
        enabled: env.and(match q.state.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        }),
        sort: Some(q.sort.clone()).filter(|s| !s.is_empty()),
        stale: (q.stale == "yes").then_some(true),
        limit: PAGE_SIZE,
        offset: (page - 1) * PAGE_SIZE,
    };
    let (flags, total) =
        match manage::flags::list(&cx.store, &place.project.id, query, &cx.insights.settings).await
        {
            Ok(found) => found,
            // A bad filter in a hand-made URL: say so on the page rather than fail it.
            Err(Error::Invalid { message, .. }) => {
                return Err(Page::status(StatusCode::BAD_REQUEST, &message));
            }
            Err(e) => return Err(e.into()),
        };
    let ids: Vec<String> = flags.iter().map(|f| f.flag.id.clone()).collect();
    let switches = manage::flag_configs::switches(&cx.store, &ids).await?;
    let on: HashMap<(&str, &str), bool> = switches
        .iter()
        .map(|(f, e, on)| ((f.as_str(), e.as_str()), *on))
        .collect();
    let rows = flags
        .into_iter()
        .map(|WithLifecycle { flag, lifecycle }| {
            let switches = frame
                .environments
                .iter()
                .map(|e| Switch {
                    env_key: e.key.clone(),
                    env_name: e.name.clone(),
                    on: on
                        .get(&(flag.id.as_str(), e.id.as_str()))
                        .copied()
                        .unwrap_or(false),
                    protected: e.protected,
                })
                .collect();
            Row {
                flag,
                lifecycle,
                switches,
            }
        })
        .collect();
    let keep = query_string(&[
        ("q", &q.q),
        ("tag", &q.tag),
        ("type", &q.kind),
        ("archived", &q.archived),
        ("env", &q.env),
        ("state", &q.state),
        ("sort", &q.sort),
        ("stale", &q.stale),
    ]);
    let filtered = !keep.is_empty();
    let refused = new.error.is_some();
    Ok(Page::render_form(
        refused,
        &FlagsPage {
            frame,
            rows,
            total,
            page,
            pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
            q: &q,
            keep,
            types: ["boolean", "string", "number", "json"],
            sorts: [
                ("key", "Key"),
                ("name", "Name"),
                ("-created_at", "Newest"),
                ("created_at", "Oldest"),
                ("-updated_at", "Recently changed"),
                ("updated_at", "Least recently changed"),
            ],
            new,
            templates,
            filtered,
        },
    ))
}

/// `POST /ui/{org}/{project}/flags`: creates a flag; problems come back on the form.
pub(crate) async fn create(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let mut new = NewFlagForm {
        open: true,
        key: cx.form.text("key"),
        name: cx.form.text("name"),
        description: cx.form.text("description"),
        kind: cx.form.text("type"),
        variations: cx.form.get("variations").unwrap_or_default().to_owned(),
        tags: cx.form.text("tags"),
        template: cx.form.text("template"),
        ..NewFlagForm::default()
    };
    let result = match new_flag(&new) {
        Ok(input) => {
            manage::flags::create(&cx.store, &cx.principal, &cx.by, &place.project.id, input).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(flag) => Ok(Page::redirect(format!(
            "{}/flags/{}?done=created",
            place.base(),
            url_encode(&flag.key)
        ))),
        Err(Error::Invalid { message, fields }) => {
            new.errors = fields
                .into_iter()
                .map(|(k, v)| {
                    // A template's starting configuration that no longer holds.
                    let k = if k.starts_with("template.") {
                        "template".to_owned()
                    } else {
                        k
                    };
                    (k, v.as_str().unwrap_or_default().to_owned())
                })
                .collect();
            new.error = Some(message);
            render(&cx, &place, ListQuery::default(), new).await
        }
        // A template that configures an environment which requires approval, or a
        // protected one for a non-admin.
        Err(e @ (Error::Refused { .. } | Error::Forbidden(_))) if !new.template.is_empty() => {
            let message = "The flag was not created: see “Start from a template” below.".to_owned();
            new.errors.insert("template".into(), e.to_string());
            new.error = Some(message);
            render(&cx, &place, ListQuery::default(), new).await
        }
        Err(Error::Conflict { message, .. }) => {
            new.errors.insert("key".into(), message.clone());
            new.error = Some(message);
            render(&cx, &place, ListQuery::default(), new).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the "new flag" form. Variations of non-boolean flags are one per line, `key =
/// value`, where the value is JSON for number and JSON flags and text for strings. With a
/// template, the template gives the type and variations (those of the form are ignored).
fn new_flag(form: &NewFlagForm) -> Result<NewFlag, Error> {
    if !form.template.is_empty() {
        return Ok(NewFlag {
            key: form.key.clone(),
            name: Some(form.name.clone()).filter(|s| !s.is_empty()),
            description: form.description.clone(),
            kind: None,
            variations: None,
            tags: items(&form.tags),
            client_side: false,
            temporary: false,
            comment: None,
            template: Some(form.template.clone()),
        });
    }
    let kind = match form.kind.as_str() {
        "" => FlagType::Boolean,
        k => flag_type(k).ok_or_else(|| {
            Error::invalid_field("type", "must be boolean, string, number or json")
        })?,
    };
    let variations = match kind {
        FlagType::Boolean => None,
        _ => Some(parse_variations(kind, &form.variations)?),
    };
    Ok(NewFlag {
        key: form.key.clone(),
        name: Some(form.name.clone()).filter(|s| !s.is_empty()),
        description: form.description.clone(),
        kind: Some(kind),
        variations,
        tags: items(&form.tags),
        client_side: false,
        temporary: false,
        comment: None,
        template: None,
    })
}

pub(crate) fn parse_variations(
    kind: FlagType,
    text: &str,
) -> Result<Vec<vexil_core::Variation>, Error> {
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let (key, raw) = line
            .split_once('=')
            .map_or((line, line), |(k, v)| (k.trim(), v.trim()));
        let value = match kind {
            FlagType::String => Value::String(raw.to_owned()),
            _ => serde_json::from_str(raw).map_err(|_| {
                Error::invalid_field(
                    "variations",
                    format!("line {}: '{raw}' is not a JSON value", i + 1),
                )
            })?,
        };
        out.push(
            serde_json::from_value(json!({"key": key, "value": value}))
                .map_err(|e| Error::invalid_field("variations", format!("line {}: {e}", i + 1)))?,
        );
    }
    if out.is_empty() {
        return Err(Error::invalid_field(
            "variations",
            "give at least two variations, one per line as key = value",
        ));
    }
    Ok(out)
}

/// `POST /ui/{org}/{project}/flags/bulk`: enable, disable, archive or restore the selected
/// flags (all or nothing).
pub(crate) async fn bulk(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let action = match cx.form.get("action") {
        Some("enable") => BulkAction::Enable,
        Some("disable") => BulkAction::Disable,
        Some("archive") => BulkAction::Archive,
        Some("restore") => BulkAction::Restore,
        _ => return Err(Page::status(StatusCode::BAD_REQUEST, "Choose an action.")),
    };
    let flag_ids: Vec<String> = cx.form.all("flag").into_iter().map(str::to_owned).collect();
    if flag_ids.is_empty() {
        return Err(Page::status(
            StatusCode::BAD_REQUEST,
            "Select at least one flag.",
        ));
    }
    let env_key = cx.form.text("env");
    let environment_id = place.environment_id(&cx.store, &env_key).await?;
    let input = Bulk {
        action,
        flag_ids,
        environment_id,
        comment: cx.form.optional("comment"),
    };
    manage::flags::actions::bulk(&cx.store, &cx.principal, &cx.by, &place.project.id, input)
        .await?;
    Ok(Page::redirect(format!("{}/flags?done=bulk", place.base())))
}

/// A flag type by its wire name.
pub(crate) fn flag_type(name: &str) -> Option<FlagType> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

/// `GET /ui/{org}/{project}/live`: a server-sent event stream for the pages' live banner.
/// It sends the project's version (as the pages carry it in `data-live-version`) at once
/// and whenever one of its environments' rulesets changes (also after missed updates), a
/// comment every 25 s to keep proxies from closing it, and ends when the server shuts down.
pub(crate) async fn live(
    cx: Ctx,
    State(shutdown): State<crate::http::stream::ShutdownSignal>,
    Extension(place): Extension<Place>,
) -> Result<axum::response::Response, Page> {
    use axum::body::{Body, Bytes};
    use tokio::sync::broadcast::error::RecvError;

    let (environments, _) =
        manage::environments::list(&cx.store, &place.project.id, 100, 0).await?;
    let env_ids: Vec<String> = environments.into_iter().map(|e| e.id).collect();
    let updates = cx.snapshots.subscribe();
    let snapshots = cx.snapshots.clone();
    let frame = move |env_ids: &[String]| {
        let version = super::frame::live_version(&snapshots, env_ids);
        Bytes::from(format!("event: version\ndata: {version}\n\n"))
    };
    let first = Some(frame(&env_ids));
    let mut keep_alive = tokio::time::interval(std::time::Duration::from_secs(25));
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (updates, shutdown.stop, env_ids, first, keep_alive);
    let stream = futures_util::stream::unfold(
        state,
        move |(mut updates, mut shutdown, env_ids, first, mut keep_alive)| {
            let frame = frame.clone();
            async move {
                if let Some(first) = first {
                    keep_alive.tick().await; // the first tick is immediate
                    return Some((
                        Ok::<_, std::convert::Infallible>(first),
                        (updates, shutdown, env_ids, None, keep_alive),
                    ));
                }
                loop {
                    if *shutdown.borrow() {
                        return None;
                    }
                    let out = tokio::select! {
                        update = updates.recv() => match update {
                            Ok(u) if env_ids.contains(&u.environment_id) => frame(&env_ids),
                            // Missed updates may have been ours: say where things stand.
                            Err(RecvError::Lagged(_)) => frame(&env_ids),
                            Ok(_) => continue,
                            Err(RecvError::Closed) => return None,
                        },
                        changed = shutdown.changed() => if changed.is_err() { return None } else { continue },
                        _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
                    };
                    return Some((Ok(out), (updates, shutdown, env_ids, None, keep_alive)));
                }
            }
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
