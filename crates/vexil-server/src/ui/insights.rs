//! Insights in the console: a flag's tab (evaluations per variation over time and the rate
//! of each watched event per variation, as server-rendered SVG line charts with axes and a
//! legend, colored by the theme's stylesheet) and a project's overview per environment
//! (most and least evaluated flags, stale flags), each with its CSV download.

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use serde::Deserialize;
use vexil_core::time::format_rfc3339;

use super::chart::{Line, PALETTE, bucket_starts, chart, per_bucket, rate_per_100};
use super::form::url_encode;
use super::{Ctx, Frame, Page, PageResult, Place};
use crate::clock::now_ms;
use crate::manage::insights::{self, FlagSummary, Step, Window};
use crate::store::flags::Flag;

/// The windows a page offers: `(value, label, span in ms, step)`.
const RANGES: [(&str, &str, i64, Step); 4] = [
    ("1h", "last hour", 3_600_000, Step::Minute),
    ("24h", "last 24 hours", 86_400_000, Step::Hour),
    ("7d", "last 7 days", 7 * 86_400_000, Step::Hour),
    ("30d", "last 30 days", 30 * 86_400_000, Step::Day),
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeQuery {
    #[serde(default)]
    range: String,
    /// The environment's key (overview).
    #[serde(default)]
    env: String,
}

/// The chosen range (default the last 24 hours) and its window ending now.
fn window_of(range: &str) -> (&'static str, Window) {
    let (value, _, span, step) = RANGES
        .iter()
        .find(|r| r.0 == range)
        .copied()
        .unwrap_or(RANGES[1]);
    let now = now_ms();
    let window = Window {
        from: Some(format_rfc3339(now - span)),
        to: Some(format_rfc3339(now)),
        step: Some(step),
    };
    (value, window)
}

/// The API's query string for a window, as CSV.
fn csv_query(w: &Window) -> String {
    let step = w.step.unwrap_or(Step::Hour).name();
    format!(
        "format=csv&from={}&to={}&step={step}",
        url_encode(w.from.as_deref().unwrap_or_default()),
        url_encode(w.to.as_deref().unwrap_or_default())
    )
}

/// One variation's line in the totals table.
struct VariationRow {
    variation: String,
    class: String,
    evaluations: i64,
    /// `(event key, count, rate as text, sum)`.
    events: Vec<(String, i64, String, f64)>,
}

#[derive(Template)]
#[template(path = "insights.html")]
struct FlagInsightsPage {
    frame: Frame,
    flag: Flag,
    env_name: String,
    here: String,
    range: &'static str,
    ranges: [(&'static str, &'static str, i64, Step); 4],
    csv_url: String,
    evaluations_chart: String,
    /// `(event key, chart)`.
    event_charts: Vec<(String, String)>,
    rows: Vec<VariationRow>,
    watched: Vec<String>,
    total: i64,
}

/// `GET …/flags/{flag}/in/{env}/insights?range=`.
pub(crate) async fn flag_page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let (range, window) = window_of(&q.range);
    let series = insights::series(&cx.store, &flag.id, &env.id, &window).await?;
    let watched = cx
        .snapshots
        .get(&env.id)
        .map(|s| s.watched_by(&flag.key))
        .unwrap_or_default();
    let starts = bucket_starts(&series);
    // In the flag's own order (then any other variation counted in the window).
    let variations: Vec<&String> = flag
        .variations
        .iter()
        .filter_map(|v| series.variations.get_key_value(&v.key).map(|(k, _)| k))
        .chain(
            series
                .variations
                .keys()
                .filter(|k| !flag.variations.iter().any(|v| &v.key == *k)),
        )
        .collect();
    let evaluations: Vec<Line> = variations
        .iter()
        .enumerate()
        .map(|(i, v)| Line {
            name: (*v).clone(),
            class: i,
            values: per_bucket(&series, &starts, v, |t| t.evaluations as f64),
        })
        .collect();
    let event_keys: Vec<String> = series
        .variations
        .values()
        .flat_map(|t| t.events.keys().cloned())
        .chain(watched.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let event_charts = event_keys
        .iter()
        .map(|event| {
            let lines: Vec<Line> = variations
                .iter()
                .enumerate()
                .map(|(i, v)| Line {
                    name: (*v).clone(),
                    class: i,
                    values: per_bucket(&series, &starts, v, |t| rate_per_100(t, event)),
                })
                .collect();
            let title = format!("{event} per 100 evaluations, by variation");
            (event.clone(), chart(&title, &starts, &lines, "%", None))
        })
        .collect();
    let rows = variations
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let t = &series.variations[*v];
            VariationRow {
                variation: (*v).clone(),
                class: format!("s{}", i % PALETTE),
                evaluations: t.evaluations,
                events: event_keys
                    .iter()
                    .map(|e| {
                        let (n, sum) = t.events.get(e).map_or((0, 0.0), |e| (e.count, e.sum));
                        let rate = if t.evaluations > 0 {
                            format!("{:.2} %", 100.0 * n as f64 / t.evaluations as f64)
                        } else {
                            "–".to_owned()
                        };
                        (e.clone(), n, rate, sum)
                    })
                    .collect(),
            }
        })
        .collect();
    let here = format!(
        "{}/flags/{}/in/{}",
        place.base(),
        url_encode(&flag.key),
        url_encode(&env.key)
    );
    let frame = Frame::load(
        &cx,
        &place,
        "flags",
        format!("Insights of {}", flag.key),
        None,
    )
    .await?;
    Ok(Page::render(&FlagInsightsPage {
        frame,
        csv_url: format!(
            "/api/v1/flags/{}/environments/{}/insights?{}",
            url_encode(&flag.id),
            url_encode(&env.id),
            csv_query(&window)
        ),
        evaluations_chart: chart("Evaluations by variation", &starts, &evaluations, "", None),
        total: series.variations.values().map(|t| t.evaluations).sum(),
        flag: flag.clone(),
        env_name: env.name.clone(),
        here,
        range,
        ranges: RANGES,
        event_charts,
        rows,
        watched,
    }))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
    env_key: String,
    env_name: String,
    range: &'static str,
    ranges: [(&'static str, &'static str, i64, Step); 4],
    csv_url: String,
    most: Vec<FlagSummary>,
    least: Vec<FlagSummary>,
    stale: Vec<FlagSummary>,
    flags: usize,
}

/// How many flags the most and least evaluated lists show.
const TOP: usize = 10;

/// `GET /ui/{org}/{project}/insights?env=&range=`.
pub(crate) async fn overview(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "insights", "Insights", None).await?;
    let Some(env) = frame
        .environments
        .iter()
        .find(|e| e.key == q.env)
        .or_else(|| frame.environments.iter().find(|e| e.is_production))
        .or(frame.environments.first())
        .cloned()
    else {
        return Err(Page::not_found("environment"));
    };
    let (range, window) = window_of(&q.range);
    let summary = insights::summary(&cx.store, &env.id, &window, &cx.insights.settings).await?;
    let flags = summary.flags.len();
    let most: Vec<FlagSummary> = summary
        .flags
        .iter()
        .filter(|f| f.evaluations > 0)
        .take(TOP)
        .cloned()
        .collect();
    let least: Vec<FlagSummary> = summary.flags.iter().rev().take(TOP).cloned().collect();
    let stale = summary
        .flags
        .iter()
        .filter(|f| f.lifecycle.stale)
        .cloned()
        .collect();
    Ok(Page::render(&OverviewPage {
        csv_url: format!(
            "/api/v1/environments/{}/insights?{}",
            url_encode(&env.id),
            csv_query(&window)
        ),
        frame,
        env_key: env.key.clone(),
        env_name: env.name.clone(),
        range,
        ranges: RANGES,
        most,
        least,
        stale,
        flags,
    }))
}
