//! The API keys page: the project's keys per environment, creating one (its secret shown
//! once, on the answer to the form), revoking.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde_json::json;

use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::{self, Error};
use crate::store::api_keys::ApiKey;

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<(ApiKey, String)>,
    /// The key just created: its name and secret, shown this once.
    created: Option<(String, String)>,
    error: Option<String>,
    name: String,
}

/// `GET /ui/{org}/{project}/keys`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    render(&cx, &place, None, None, String::new(), q.done.as_deref()).await
}

#[allow(clippy::too_many_arguments)]
async fn render(
    cx: &Ctx,
    place: &Place,
    created: Option<(String, String)>,
    error: Option<String>,
    name: String,
    done: Option<&str>,
) -> PageResult {
    let frame = Frame::load(cx, place, "keys", "API keys", done).await?;
    let (keys, _) = manage::api_keys::list(&cx.store, &place.project.id, 500, 0).await?;
    let keys = keys
        .into_iter()
        .map(|k| {
            let env = frame
                .environments
                .iter()
                .find(|e| e.id == k.environment_id)
                .map_or_else(String::new, |e| e.name.clone());
            (k, env)
        })
        .collect();
    let refused = error.is_some();
    Ok(Page::render_form(
        refused,
        &KeysPage {
            frame,
            keys,
            created,
            error,
            name,
        },
    ))
}

/// `POST /ui/{org}/{project}/keys`: creates a key and shows its secret once.
pub(crate) async fn create(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let name = cx.form.text("name");
    let env_key = cx.form.text("env");
    let (envs, _) = manage::environments::list(&cx.store, &place.project.id, 100, 0).await?;
    let Some(env) = envs.iter().find(|e| e.key == env_key) else {
        let message = Some("Choose an environment.".to_owned());
        return render(&cx, &place, None, message, name, None).await;
    };
    let mut input = json!({"name": name, "type": cx.form.text("type"), "environment_id": env.id});
    if let Some(expires) = cx.form.optional("expires_at") {
        input["expires_at"] = json!(expires);
    }
    let input = serde_json::from_value(input)
        .map_err(|e| Page::status(StatusCode::BAD_REQUEST, &e.to_string()))?;
    match manage::api_keys::create(&cx.store, &cx.by, &place.project.id, input).await {
        Ok((key, secret)) => {
            let created = Some((key.name, secret));
            render(&cx, &place, created, None, String::new(), None).await
        }
        Err(Error::Invalid { message, .. }) => {
            render(&cx, &place, None, Some(message), name, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /ui/{org}/{project}/keys/{key_id}/revoke`.
pub(crate) async fn revoke(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, key_id)): Path<(String, String, String)>,
) -> PageResult {
    // A key of this project only (the policy table checked the key's own organization).
    let (keys, _) = manage::api_keys::list(&cx.store, &place.project.id, 500, 0).await?;
    if !keys.iter().any(|k| k.id == key_id) {
        return Err(Page::not_found("API key"));
    }
    manage::api_keys::revoke(&cx.store, &cx.by, &key_id, None).await?;
    Ok(Page::redirect(format!(
        "{}/keys?done=revoked",
        place.base()
    )))
}
