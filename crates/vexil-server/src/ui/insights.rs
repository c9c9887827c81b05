//! Insights in the console: a flag's tab (evaluations per variation over time and the rate
//! of each watched event per variation, as server-rendered SVG line charts with axes and a
//! legend, colored by the theme's stylesheet) and a project's overview per environment
//! (most and least evaluated flags, stale flags), each with its CSV download.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use serde::Deserialize;
use vexil_core::time::{format_rfc3339, parse_rfc3339};

use super::form::url_encode;
use super::{Ctx, Frame, Page, PageResult, Place};
use crate::clock::now_ms;
use crate::manage::insights::{self, FlagSummary, Series, Step, Window};
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
                    values: per_bucket(&series, &starts, v, |t| {
                        let n = t.events.get(event).map_or(0, |e| e.count);
                        if t.evaluations > 0 {
                            100.0 * n as f64 / t.evaluations as f64
                        } else {
                            0.0
                        }
                    }),
                })
                .collect();
            let title = format!("{event} per 100 evaluations, by variation");
            (event.clone(), chart(&title, &starts, &lines, "%"))
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
        evaluations_chart: chart("Evaluations by variation", &starts, &evaluations, ""),
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

/// Colors in the stylesheet (`.chart .s0` … `.s5`, both themes).
const PALETTE: usize = 6;

/// One series of a chart.
struct Line {
    name: String,
    class: usize,
    values: Vec<f64>,
}

/// Every bucket start of the series' window, oldest first.
fn bucket_starts(series: &Series) -> Vec<i64> {
    let step = series.step.ms();
    let (from, to) = (
        parse_rfc3339(&series.from).unwrap_or(0),
        parse_rfc3339(&series.to).unwrap_or(0),
    );
    (0..)
        .map(|i| from + i * step)
        .take_while(|t| *t < to)
        .take(3000)
        .collect()
}

/// The value of `variation` in each bucket (0 where nothing was counted).
fn per_bucket(
    series: &Series,
    starts: &[i64],
    variation: &str,
    value: impl Fn(&insights::Totals) -> f64,
) -> Vec<f64> {
    let by_start: BTreeMap<i64, f64> = series
        .points
        .iter()
        .filter(|p| p.variation == variation)
        .filter_map(|p| parse_rfc3339(&p.start).map(|t| (t, value(&p.totals))))
        .collect();
    starts
        .iter()
        .map(|t| by_start.get(t).copied().unwrap_or(0.0))
        .collect()
}

/// The smallest of 1, 2, 5 × 10ⁿ at least `v` (an axis maximum).
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * mag)
}

fn label(v: f64, unit: &str) -> String {
    let text = if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    format!("{text}{unit}")
}

/// Text safe inside SVG/HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A line chart as SVG: y axis from 0 with gridlines and labels, x axis with up to six time
/// labels (UTC), one polyline per series, and a legend.
fn chart(title: &str, starts: &[i64], lines: &[Line], unit: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 28.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max = nice(
        lines
            .iter()
            .flat_map(|l| l.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let n = starts.len().max(2);
    let x = |i: usize| LEFT + pw * i as f64 / (n - 1) as f64;
    let y = |v: f64| TOP + ph - ph * v / max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            escape(&label(v, unit)),
            y = y(v)
        );
    }
    let labels = 6.min(starts.len());
    let span = starts.last().copied().unwrap_or(0) - starts.first().copied().unwrap_or(0);
    for k in 0..labels {
        let i = if labels > 1 {
            k * (starts.len() - 1) / (labels - 1)
        } else {
            0
        };
        let text = format_rfc3339(starts[i]);
        // "2026-12-04T10:15:00.000Z": the time within two days, else the date.
        let shown = if span <= 2 * 86_400_000 {
            text.get(11..16).unwrap_or_default()
        } else {
            text.get(5..10).unwrap_or_default()
        };
        let anchor = match k {
            0 => "start",
            k if k + 1 == labels => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            x(i),
            H - 8.0,
            escape(shown)
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{}" y2="{}"/>"#,
        W - RIGHT,
        TOP + ph,
        TOP + ph
    );
    for line in lines {
        let points: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series s{}" points="{}"><title>{}</title></polyline>"#,
            line.class % PALETTE,
            points.join(" "),
            escape(&line.name)
        );
    }
    svg.push_str("</svg>");
    svg.push_str(r#"<ul class="legend">"#);
    for line in lines {
        let total: f64 = line.values.iter().sum();
        let shown = if unit.is_empty() {
            format!("{} in the window", label(total, ""))
        } else {
            String::new()
        };
        let _ = write!(
            svg,
            r#"<li><span class="swatch s{}" aria-hidden="true"></span>{} <span class="muted">{}</span></li>"#,
            line.class % PALETTE,
            escape(&line.name),
            escape(&shown)
        );
    }
    svg.push_str("</ul>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_maxima() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(nice(4.2), 5.0);
    }

    #[test]
    fn a_chart_has_axes_a_line_per_series_and_an_escaped_legend() {
        let starts = [0, 3_600_000, 7_200_000];
        let lines = [
            Line {
                name: "on".into(),
                class: 0,
                values: vec![1.0, 5.0, 3.0],
            },
            Line {
                name: "<off>".into(),
                class: 1,
                values: vec![0.0, 0.0, 9.0],
            },
        ];
        let svg = chart("Evaluations", &starts, &lines, "");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">10<"), "y axis up to 10: {svg}");
        assert!(svg.contains(">00:00<") && svg.contains(">02:00<"), "{svg}");
        assert!(svg.contains("&lt;off&gt;") && !svg.contains("<off>"));
    }
}
