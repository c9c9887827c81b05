//! Request metrics in the Prometheus text format: counts and latency histograms per route.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request series by route, then `(method, status)`. A `std` mutex: it is held only for a
/// map update, never across `.await`. Recording into an existing series allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    series: Mutex<HashMap<String, RouteSeries>>,
}

/// One route's series: `(method, status, series)`, few enough to scan.
type RouteSeries = Vec<(String, u16, Series)>;

impl Metrics {
    pub(crate) fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(route) {
            map.insert(route.to_owned(), Vec::new());
        }
        let Some(by_route) = map.get_mut(route) else {
            return;
        };
        let index = match by_route
            .iter()
            .position(|(m, st, _)| m == method && *st == status)
        {
            Some(i) => i,
            None => {
                by_route.push((method.to_owned(), status, Series::default()));
                by_route.len() - 1
            }
        };
        let s = &mut by_route[index].2;
        s.count += 1;
        s.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus exposition text, sorted so that it is stable.
    pub(crate) fn render(&self) -> String {
        let mut rows: Vec<(String, String, u16, Series)> = {
            let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .flat_map(|(route, v)| {
                    v.iter()
                        .map(move |(m, st, s)| (route.clone(), m.clone(), *st, s.clone()))
                })
                .collect()
        };
        rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        let mut out = String::new();
        out.push_str(
            "# HELP vexil_http_requests_total HTTP requests handled, by route and status.\n",
        );
        out.push_str("# TYPE vexil_http_requests_total counter\n");
        for (route, method, status, s) in &rows {
            let _ = writeln!(
                out,
                "vexil_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str(
            "# HELP vexil_http_request_duration_seconds HTTP request latency, by route.\n",
        );
        out.push_str("# TYPE vexil_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for (route, method, _, s) in &rows {
            let agg = by_route
                .entry((method.as_str(), route.as_str()))
                .or_default();
            agg.count += s.count;
            agg.sum += s.sum;
            for (a, b) in agg.buckets.iter_mut().zip(s.buckets.iter()) {
                *a += b;
            }
        }
        for ((method, route), s) in by_route {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "vexil_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "vexil_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "vexil_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "vexil_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
