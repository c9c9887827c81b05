//! The settings page: the project (name, description), its environments (name,
//! production, protected; a new one), and a new project in the organization.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::form::{FormData, url_encode};
use super::{Csrf, Frame, Page, PageResult, Place};
use crate::access::Principal;
use crate::manage::environments::NewEnvironment;
use crate::manage::fields::Patch;
use crate::manage::projects::NewProject;
use crate::manage::{self, By, Error};
use crate::store::Store;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    frame: Frame,
    name: String,
    description: String,
    version: i64,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

async fn render(
    store: &Store,
    principal: &Principal,
    place: &Place,
    csrf: &Csrf,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let frame = Frame::load(store, principal, place, csrf, "settings", "Settings", done).await?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(Page::render_status(
        status,
        &SettingsPage {
            frame,
            name: place.project.name.clone(),
            description: place.project.description.clone(),
            version: place.project.version,
            error,
        },
    ))
}

/// `GET /ui/{org}/{project}/settings`.
pub(crate) async fn page(
    State(store): State<Arc<Store>>,
    principal: Principal,
    Extension(place): Extension<Place>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<Done>,
) -> PageResult {
    render(&store, &principal, &place, &csrf, None, q.done.as_deref()).await
}

/// Shows a refusal the person can act on above the settings; anything else is an error
/// page.
async fn outcome<T>(
    result: Result<T, Error>,
    ok: impl FnOnce(T) -> String,
    (store, principal, place, csrf): (&Store, &Principal, &Place, &Csrf),
) -> PageResult {
    match result {
        Ok(v) => Ok(Page::redirect(ok(v))),
        Err(
            e @ (Error::Invalid { .. }
            | Error::Conflict { .. }
            | Error::VersionMismatch { .. }
            | Error::Forbidden(_)),
        ) => render(store, principal, place, csrf, Some(e.to_string()), None).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /ui/{org}/{project}/settings`: the project's name and description.
pub(crate) async fn save_project(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Extension(place): Extension<Place>,
    Extension(csrf): Extension<Csrf>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(form.text("name")));
    changes.insert("description".into(), json!(form.text("description")));
    let patch = Patch {
        changes,
        comment: None,
    };
    let expected = form.text("version").parse().ok();
    let result = manage::projects::update(&store, &by, (&place.project.id, expected), &patch).await;
    let base = place.base();
    outcome(
        result,
        |_| format!("{base}/settings?done=saved"),
        (&store, &principal, &place, &csrf),
    )
    .await
}

/// `POST /ui/{org}/{project}/environments`: a new environment (every flag gets a
/// configuration there, off).
pub(crate) async fn create_environment(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Extension(place): Extension<Place>,
    Extension(csrf): Extension<Csrf>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let input = NewEnvironment {
        key: form.text("key"),
        name: form.optional("name"),
        description: String::new(),
        is_production: form.checked("is_production"),
        protected: Some(form.checked("protected")),
        comment: None,
    };
    let result = manage::environments::create(&store, &by, &place.project.id, input).await;
    let base = place.base();
    outcome(
        result,
        |_| format!("{base}/settings?done=created"),
        (&store, &principal, &place, &csrf),
    )
    .await
}

/// `POST /ui/{org}/{project}/environments/{env}`: name, production, protected.
pub(crate) async fn save_environment(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Extension(place): Extension<Place>,
    Extension(csrf): Extension<Csrf>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let env = place.env()?;
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!(form.text("name")));
    changes.insert("is_production".into(), json!(form.checked("is_production")));
    changes.insert("protected".into(), json!(form.checked("protected")));
    let patch = Patch {
        changes,
        comment: form.optional("comment"),
    };
    let expected = form.text("version").parse().ok();
    let result = manage::environments::update(&store, &by, (&env.id, expected), &patch).await;
    let base = place.base();
    outcome(
        result,
        |_| format!("{base}/settings?done=saved"),
        (&store, &principal, &place, &csrf),
    )
    .await
}

/// `POST /ui/{org}/{project}/projects`: a new project in this organization (with
/// `development` and `production`); on to its flags.
pub(crate) async fn create_project(
    State(store): State<Arc<Store>>,
    principal: Principal,
    by: By,
    Extension(place): Extension<Place>,
    Extension(csrf): Extension<Csrf>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let input = NewProject {
        organization_id: place.org.id.clone(),
        key: form.text("key"),
        name: form.optional("name"),
        description: String::new(),
        comment: None,
    };
    let result = manage::projects::create(&store, &principal, &by, input).await;
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
        (&store, &principal, &place, &csrf),
    )
    .await
}
