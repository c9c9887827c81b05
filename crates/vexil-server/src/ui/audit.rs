//! The audit log page: the organization's entries, newest first, filtered by resource,
//! actor, action and time, each with a before/after diff; and, for admins, whether the
//! hash chain verifies.

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use axum::http::StatusCode;
use serde::Deserialize;

use super::flag::{DiffLine, line_diff};
use super::form::query_string;
use super::{Ctx, Frame, Page, PageResult, Place};
use crate::audit::AuditEntry;
use crate::manage::{self, Error};
use crate::store::audit::{Filter, Verification};

const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// Dates (`YYYY-MM-DD`, UTC) or RFC 3339 timestamps.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    page: Option<String>,
    /// `1`: verify the hash chain (admins).
    verify: Option<String>,
}

struct Row {
    entry: AuditEntry,
    actor: String,
    diff: Vec<DiffLine>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    frame: Frame,
    q: &'a AuditQuery,
    rows: Vec<Row>,
    total: i64,
    page: i64,
    pages: i64,
    keep: String,
    resources: [&'static str; 8],
    verification: Option<Verification>,
    admin: bool,
}

fn timestamp(field: &str, text: &str) -> Result<Option<String>, Error> {
    match text {
        "" => Ok(None),
        t if t.len() == 10 => {
            manage::audit_log::stored_time(field, &format!("{t}T00:00:00Z")).map(Some)
        }
        t => manage::audit_log::stored_time(field, t).map(Some),
    }
}

/// `GET /ui/{org}/{project}/audit`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "audit", "Audit log", None).await?;
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1_i64)
        .clamp(1, 1_000_000);
    let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let filter = (|| {
        Ok::<_, Error>(Filter {
            resource_type: some(&q.resource),
            resource_id: some(&q.resource_id),
            actor_id: some(&q.actor),
            action: some(&q.action),
            organization_id: Some(place.org.id.clone()),
            since: timestamp("since", &q.since)?,
            until: timestamp("until", &q.until)?,
            visible_to: None,
        })
    })()
    .map_err(|e| Page::status(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let (entries, total) = manage::audit_log::list(
        &cx.store,
        &cx.principal,
        filter,
        PAGE_SIZE,
        (page - 1) * PAGE_SIZE,
    )
    .await?;
    let rows = entries
        .into_iter()
        .map(|entry| {
            let pretty = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
                    .unwrap_or_default()
            };
            let diff = line_diff(&pretty(&entry.before), &pretty(&entry.after));
            let actor = entry.actor["name"].as_str().unwrap_or_default().to_owned();
            Row { entry, actor, diff }
        })
        .collect();
    // Recomputing the chain reads every entry: on request only.
    let verification = if frame.is_admin() && q.verify.as_deref() == Some("1") {
        Some(manage::audit_log::verify(&cx.store, &cx.principal, Some(place.org.id.clone())).await?)
    } else {
        None
    };
    let keep = query_string(&[
        ("resource", &q.resource),
        ("resource_id", &q.resource_id),
        ("actor", &q.actor),
        ("action", &q.action),
        ("since", &q.since),
        ("until", &q.until),
    ]);
    let admin = frame.is_admin();
    Ok(Page::render(&AuditPage {
        admin,
        frame,
        q: &q,
        rows,
        total,
        page,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        keep,
        resources: [
            "flag",
            "flag_config",
            "segment",
            "environment",
            "project",
            "api_key",
            "organization",
            "user",
        ],
        verification,
    }))
}
