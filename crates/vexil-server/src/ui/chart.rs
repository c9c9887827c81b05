//! Line charts drawn on the server as inline SVG (axes, gridlines, time labels in UTC, one
//! polyline per series, an optional dashed limit, and a legend), colored by the theme's
//! stylesheet (`.chart .s0` … `.s5` in both themes): the insights tab and the release
//! panel's guard charts share them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use vexil_core::time::{format_rfc3339, parse_rfc3339};

use crate::manage::insights::{Series, Totals};

/// Colors in the stylesheet (`.chart .s0` … `.s5`, both themes).
pub(crate) const PALETTE: usize = 6;

/// One series of a chart.
pub(crate) struct Line {
    pub(crate) name: String,
    /// Its color, as an index into the palette.
    pub(crate) class: usize,
    /// One value per bucket start.
    pub(crate) values: Vec<f64>,
}

/// A horizontal dashed line at `value`, labelled (a guard's highest healthy rate).
pub(crate) struct Limit {
    pub(crate) value: f64,
    pub(crate) label: String,
}

/// Every bucket start of the series' window, oldest first.
pub(crate) fn bucket_starts(series: &Series) -> Vec<i64> {
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
pub(crate) fn per_bucket(
    series: &Series,
    starts: &[i64],
    variation: &str,
    value: impl Fn(&Totals) -> f64,
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

/// Events of `event` per 100 evaluations in one bucket (0 without evaluations).
pub(crate) fn rate_per_100(totals: &Totals, event: &str) -> f64 {
    let n = totals.events.get(event).map_or(0, |e| e.count);
    if totals.evaluations > 0 {
        100.0 * n as f64 / totals.evaluations as f64
    } else {
        0.0
    }
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
    } else if (v * 10.0).fract().abs() < 1e-9 {
        format!("{v:.1}")
    } else {
        // A quarter of an axis of 5 is 1.25: two decimals rather than a wrong one.
        format!("{v:.2}")
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
/// labels (UTC), one polyline per series, the limit (if any) as a dashed line, and a
/// legend. Every text in it is escaped.
pub(crate) fn chart(
    title: &str,
    starts: &[i64],
    lines: &[Line],
    unit: &str,
    limit: Option<&Limit>,
) -> String {
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
            .chain(limit.map(|l| l.value))
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
    if let Some(limit) = limit {
        let at = y(limit.value);
        // Above the line, unless that would leave the chart (the limit is its top).
        let text_y = if at - 5.0 < TOP + 8.0 {
            at + 13.0
        } else {
            at - 5.0
        };
        let _ = write!(
            svg,
            r#"<line class="limit" x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}"><title>{label}</title></line><text class="limit-label" x="{}" y="{text_y:.1}" text-anchor="end">{label}</text>"#,
            W - RIGHT,
            W - RIGHT - 4.0,
            label = escape(&limit.label)
        );
    }
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
    if let Some(limit) = limit {
        let _ = write!(
            svg,
            r#"<li><span class="swatch limit" aria-hidden="true"></span>{}</li>"#,
            escape(&limit.label)
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
        let svg = chart("Evaluations", &starts, &lines, "", None);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">10<"), "y axis up to 10: {svg}");
        assert!(svg.contains(">00:00<") && svg.contains(">02:00<"), "{svg}");
        assert!(svg.contains("&lt;off&gt;") && !svg.contains("<off>"));
        assert!(!svg.contains("class=\"limit\""));
    }

    #[test]
    fn a_limit_is_drawn_dashed_and_raises_the_axis_to_show_it() {
        let starts = [0, 60_000];
        let lines = [Line {
            name: "on".into(),
            class: 0,
            values: vec![1.0, 2.0],
        }];
        let limit = Limit {
            value: 5.0,
            label: "max 5% <".into(),
        };
        let svg = chart("error per 100", &starts, &lines, "%", Some(&limit));
        assert!(svg.contains("class=\"limit\""), "{svg}");
        assert!(svg.contains(">5%<"), "the axis reaches the limit: {svg}");
        assert!(svg.contains("max 5% &lt;") && !svg.contains("max 5% <"));
    }
}
