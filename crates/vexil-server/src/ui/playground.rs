//! The playground: a context (JSON) evaluated against every flag of an environment,
//! showing value, variation and reason for each.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{Ctx, Frame, Page, PageResult, Place};
use crate::manage::Error;
use crate::manage::playground::{Outcome, evaluate_all};
use crate::snapshots::Snapshots;

#[derive(Debug, Deserialize)]
pub(crate) struct PlayQuery {
    env: Option<String>,
    context: Option<String>,
}

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage {
    frame: Frame,
    env: String,
    context: String,
    results: Option<Vec<Outcome>>,
    error: Option<String>,
}

/// `GET /ui/{org}/{project}/playground?env=&context=`: a read, so a plain GET form (the
/// URL can be shared).
pub(crate) async fn page(
    cx: Ctx,
    State(snapshots): State<Arc<Snapshots>>,
    Extension(place): Extension<Place>,
    Query(q): Query<PlayQuery>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "playground", "Playground", None).await?;
    let env = q
        .env
        .and_then(|k| frame.environments.iter().find(|e| e.key == k).cloned())
        .or_else(|| frame.environments.iter().find(|e| e.is_production).cloned())
        .or_else(|| frame.environments.first().cloned());
    let context = q.context.unwrap_or_else(|| {
        "{\n  \"targetingKey\": \"user-1\",\n  \"email\": \"ada@example.com\"\n}".into()
    });
    let (results, error) = match (&env, context.len() > 64 * 1024) {
        (_, true) => (None, Some("The context is larger than 64 KiB.".to_owned())),
        (None, _) => (None, Some("This project has no environment.".to_owned())),
        (Some(env), false) => match evaluate_all(&snapshots, &env.id, &context) {
            Ok(r) => (Some(r), None),
            Err(Error::Invalid { message, .. }) => (None, Some(message)),
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Page::render(&PlaygroundPage {
        frame,
        env: env.map(|e| e.key).unwrap_or_default(),
        context,
        results,
        error,
    }))
}
