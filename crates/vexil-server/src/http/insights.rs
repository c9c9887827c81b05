//! Insights over HTTP: SDK evaluation reports (`POST /api/v1/sdk/metrics`) and tracked events
//! (`POST /api/v1/track`) on the evaluation plane, with an API key; a flag's time series
//! and an environment's summary on the management plane, as JSON or (`?format=csv`) CSV with
//! the same rows. The operations are in `manage::insights`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::eval_auth::EvalKey;
use super::extract::{Json, Query};
use crate::insights::Insights;
use crate::manage::insights::{
    self, Accepted, MetricsReport, Series, Step, Summary, TrackRequest, Window,
};
use crate::snapshots::Snapshots;
use crate::store::Store;

/// The evaluation-plane routes (API keys).
pub(crate) fn evaluation_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sdk/metrics", post(sdk_metrics))
        .route("/api/v1/track", post(track))
}

/// The management routes (policy table).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/flags/{flag_id}/environments/{env_id}/insights",
            get(flag_insights),
        )
        .route(
            "/api/v1/environments/{env_id}/insights",
            get(environment_insights),
        )
}

#[utoipa::path(post, path = "/api/v1/sdk/metrics", tag = "insights", security(("api_key" = [])),
    request_body(content = MetricsReport, description = "Evaluations an SDK served locally; counted in the minute of `end`"),
    responses(super::openapi::errors::EvaluationKey, super::openapi::errors::JsonBody,
        (status = 202, description = "Taken (written at the next flush, within 10 s); flags or variations the key's environment does not have are listed in `ignored`", body = Accepted),
        (status = 400, description = "Bad dates, `end` before `start`, over 1000 flags or 100 variations per flag", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn sdk_metrics(
    State(snapshots): State<Arc<Snapshots>>,
    State(insights): State<Arc<Insights>>,
    key: EvalKey,
    Json(body): Json<MetricsReport>,
) -> ApiResult<Response> {
    let accepted = insights::report(&snapshots, &insights, &key.0, &body)?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)).into_response())
}

#[utoipa::path(post, path = "/api/v1/track", tag = "insights", security(("api_key" = [])),
    request_body(content = TrackRequest, description = "Up to 1000 events; each is attributed to the variation every flag watching its key (`watch_events`) serves its context"),
    responses(super::openapi::errors::EvaluationKey, super::openapi::errors::JsonBody,
        (status = 202, description = "Taken; `accepted` counts attributions, `ignored` lists event keys no flag watches (or older than 48 hours)", body = Accepted),
        (status = 400, description = "Over 1000 events, a bad key, value or timestamp (`details.fields`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn track(
    State(snapshots): State<Arc<Snapshots>>,
    State(insights): State<Arc<Insights>>,
    key: EvalKey,
    Json(body): Json<TrackRequest>,
) -> ApiResult<Response> {
    let accepted = insights::track(&snapshots, &insights, &key.0, &body)?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)).into_response())
}

/// The window and the format of an insights read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InsightsQuery {
    /// RFC 3339; default: one day before `to`.
    from: Option<String>,
    /// RFC 3339; default: now.
    to: Option<String>,
    /// Bucket width (default `hour`): a window spans at most 48 hours by minute, 31 days by
    /// hour, 366 days by day.
    #[param(value_type = Option<Step>)]
    step: Option<Step>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>, pattern = "^(json|csv)$")]
    format: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Json,
    Csv,
}

impl InsightsQuery {
    fn window(&self) -> Window {
        Window {
            from: self.from.clone(),
            to: self.to.clone(),
            step: self.step,
        }
    }

    fn csv(&self) -> bool {
        self.format == Some(Format::Csv)
    }
}

#[utoipa::path(get, path = "/api/v1/flags/{flag_id}/environments/{env_id}/insights", tag = "insights",
    params(("flag_id" = String, Path, description = "Flag id"), ("env_id" = String, Path, description = "Environment id"), InsightsQuery),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Per variation over the window, and per bucket with counts: evaluations and, per tracked event key, count and sum. With `format=csv`: `start,variation,metric,count,sum` rows (`metric` is `evaluations` or `event:<key>`)", body = Series),
        (status = 400, description = "A bad window", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn flag_insights(
    State(store): State<Arc<Store>>,
    Path((flag_id, env_id)): Path<(String, String)>,
    Query(q): Query<InsightsQuery>,
) -> ApiResult<Response> {
    let series = insights::series(&store, &flag_id, &env_id, &q.window()).await?;
    Ok(if q.csv() {
        csv_response(
            &format!("{}-insights.csv", series.flag_key),
            &series_csv(&series),
        )
    } else {
        axum::Json(series).into_response()
    })
}

#[utoipa::path(get, path = "/api/v1/environments/{env_id}/insights", tag = "insights",
    params(("env_id" = String, Path, description = "Environment id"), InsightsQuery),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Every non-archived flag, most evaluated first: evaluations in the window (hour buckets), by variation, last evaluated here, and its lifecycle. With `format=csv`: `flag_key,name,evaluations,last_evaluated_at,stale` rows", body = Summary),
        (status = 400, description = "A bad window", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn environment_insights(
    State(store): State<Arc<Store>>,
    State(insights): State<Arc<Insights>>,
    Path(env_id): Path<String>,
    Query(q): Query<InsightsQuery>,
) -> ApiResult<Response> {
    let summary = insights::summary(&store, &env_id, &q.window(), &insights.settings).await?;
    Ok(if q.csv() {
        csv_response(
            &format!("{}-insights.csv", summary.environment_key),
            &summary_csv(&summary),
        )
    } else {
        axum::Json(summary).into_response()
    })
}

fn csv_response(filename: &str, body: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                // Keys are `[A-Za-z0-9_.-]`, safe inside the quotes.
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body.to_owned(),
    )
        .into_response()
}

/// One CSV field: quoted when it holds a separator, quote or line break; a leading `=`,
/// `+`, `-`, `@`, tab or carriage return (a formula to spreadsheets) is defused with a `'`.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The rows of a series: one per bucket, variation and metric.
pub(crate) fn series_csv(series: &Series) -> String {
    let mut out = String::from("start,variation,metric,count,sum\r\n");
    for p in &series.points {
        let _ = write!(
            out,
            "{},{},evaluations,{},0\r\n",
            p.start,
            field(&p.variation),
            p.totals.evaluations
        );
        for (event, e) in &p.totals.events {
            let _ = write!(
                out,
                "{},{},{},{},{}\r\n",
                p.start,
                field(&p.variation),
                field(&format!("event:{event}")),
                e.count,
                e.sum
            );
        }
    }
    out
}

/// The rows of a summary: one per flag.
pub(crate) fn summary_csv(summary: &Summary) -> String {
    let mut out = String::from("flag_key,name,evaluations,last_evaluated_at,stale\r\n");
    for f in &summary.flags {
        let _ = write!(
            out,
            "{},{},{},{},{}\r\n",
            field(&f.flag_key),
            field(&f.name),
            f.evaluations,
            f.last_evaluated_at.as_deref().unwrap_or_default(),
            f.lifecycle.stale
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(field("\t=1"), "'\t=1");
    }
}
