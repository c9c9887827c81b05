//! The settings page: the project (name, description), its environments (name,
//! production, protected; a new one), promotion from one environment into another (the
//! form; `promote.rs` does it), and a new project in the organization.

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use serde_json::json;

use super::form::url_encode;
use super::promote::{PromoteForm, Promoted, PromotedQuery};
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::environments::NewEnvironment;
use crate::manage::fields::Patch;
use crate::manage::projects::NewProject;
use crate::manage::{self, Error};

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    frame: Frame,
    name: String,
    description: String,
    version: i64,
    error: Option<String>,
    /// The promotion form, as typed after a refusal (else its defaults).
    promote: PromoteForm,
    /// What the promotion just done did.
    promoted: Option<Promoted>,
}

async fn render(cx: &Ctx, place: &Place, error: Option<String>, done: Option<&str>) -> PageResult {
    render_all(cx, place, error, done, PromoteForm::default(), None).await
}

/// The settings page with the promotion form refused (400), everything typed kept.
pub(crate) async fn render_promote(cx: &Ctx, place: &Place, form: PromoteForm) -> PageResult {
    render_all(cx, place, None, None, form, None).await
}

async fn render_all(
    cx: &Ctx,
    place: &Place,
    error: Option<String>,
    done: Option<&str>,
    mut promote: PromoteForm,
    promoted: Option<&PromotedQuery>,
) -> PageResult {
    let mut frame = Frame::load(cx, place, "settings", "Settings", done).await?;
    let refused = error.is_some() || promote.error.is_some();
    // By default, from the first environment that is not production into the first that
    // is.
    let envs = &frame.environments;
    if promote.from.is_empty() {
        promote.from = envs
            .iter()
            .find(|e| !e.is_production)
            .or(envs.first())
            .map(|e| e.key.clone())
            .unwrap_or_default();
    }
    if promote.into.is_empty() {
        promote.into = envs
            .iter()
            .find(|e| e.is_production && e.key != promote.from)
            .or(envs.iter().find(|e| e.key != promote.from))
            .map(|e| e.key.clone())
            .unwrap_or_default();
    }
    let promoted = match promoted {
        Some(q) if done == Some("promoted") => {
            super::promote::promoted(cx, &frame.environments, q).await?
        }
        _ => None,
    };
    if let Some(p) = &promoted {
        frame.notice = Some(p.text.clone());
    }
    Ok(Page::render_form(
        refused,
        &SettingsPage {
            frame,
            name: place.project.name.clone(),
            description: place.project.description.clone(),
            version: place.project.version,
            error,
            promote,
            promoted,
        },
    ))
}

/// `GET /ui/{org}/{project}/settings` (after a promotion, with what it did).
pub(crate) async fn page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
    Query(promoted): Query<PromotedQuery>,
) -> PageResult {
    render_all(
        &cx,
        &place,
        None,
        q.done.as_deref(),
        PromoteForm::default(),
        Some(&promoted),
    )
    .await
}

/// Shows a refusal the person can act on above the settings; anything else is an error
/// page.
async fn outcome<T>(
    result: Result<T, Error>,
    ok: impl FnOnce(T) -> String,
    (cx, place): (&Ctx, &Place),
) -> PageResult {
    match result {
        Ok(v) => Ok(Page::redirect(ok(v))),
        Err(
            e @ (Error::Invalid { .. }
            | Error::Conflict { .. }
            | Error::VersionMismatch { .. }
            | Error::Forbidden(_)),
        ) => render(cx, place, Some(e.to_string()), None).await,
        Err(e) => Err(e.into()),
    }
}

/// Back to the settings page with the notice `done`, or the refusal shown there.
async fn back_to_settings<T>(
    result: Result<T, Error>,
    done: &str,
    cx: &Ctx,
    place: &Place,
) -> PageResult {
    let to = format!("{}/settings?done={done}", place.base());
    outcome(result, |_| to, (cx, place)).await
}

/// `POST /ui/{org}/{project}/settings`: the project's name and description.
pub(crate) async fn save_project(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(cx.form.text("name")));
    changes.insert("description".into(), json!(cx.form.text("description")));
    let patch = Patch {
        changes,
        comment: None,
    };
    let expected = cx.form.text("version").parse().ok();
    let result =
        manage::projects::update(&cx.store, &cx.by, (&place.project.id, expected), &patch).await;
    back_to_settings(result, "saved", &cx, &place).await
}

/// `POST /ui/{org}/{project}/environments`: a new environment (every flag gets a
/// configuration there, off).
pub(crate) async fn create_environment(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let input = NewEnvironment {
        key: cx.form.text("key"),
        name: cx.form.optional("name"),
        description: String::new(),
        is_production: cx.form.checked("is_production"),
        protected: Some(cx.form.checked("protected")),
        requires_approval: cx.form.checked("requires_approval"),
        comment: None,
    };
    let result = manage::environments::create(&cx.store, &cx.by, &place.project.id, input).await;
    back_to_settings(result, "created", &cx, &place).await
}

/// `POST /ui/{org}/{project}/environments/{env}`: name, production, protected, approval.
pub(crate) async fn save_environment(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let env = place.env()?;
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(cx.form.text("name")));
    changes.insert(
        "is_production".into(),
        json!(cx.form.checked("is_production")),
    );
    changes.insert("protected".into(), json!(cx.form.checked("protected")));
    changes.insert(
        "requires_approval".into(),
        json!(cx.form.checked("requires_approval")),
    );
    let patch = Patch {
        changes,
        comment: cx.form.optional("comment"),
    };
    let expected = cx.form.text("version").parse().ok();
    let result = manage::environments::update(&cx.store, &cx.by, (&env.id, expected), &patch).await;
    back_to_settings(result, "saved", &cx, &place).await
}

/// `POST /ui/{org}/{project}/projects`: a new project in this organization (with
/// `development` and `production`); on to its flags.
pub(crate) async fn create_project(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let input = NewProject {
        organization_id: place.org.id.clone(),
        key: cx.form.text("key"),
        name: cx.form.optional("name"),
        description: String::new(),
        comment: None,
    };
    let result = manage::projects::create(&cx.store, &cx.principal, &cx.by, input).await;
    let org = place.org.key.clone();
    outcome(
        result,
        |p| {
            format!(
                "/ui/{}/{}/flags?done=created",
                url_encode(&org),
                url_encode(&p.key)
            )
        },
        (&cx, &place),
    )
    .await
}
