//! Insights (docs/http-api.md "Insights"): SDK evaluation reports and tracked events taken in
//! (attributed by evaluating the watching flags, so no state is needed from the SDK), the
//! time series of one flag in one environment, an environment's summary, and every flag's
//! lifecycle (last evaluated, stale and why).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use vexil_core::Context;
use vexil_core::time::{format_rfc3339, parse_rfc3339};

use super::{Error, Result, load};
use crate::clock::now_ms;
use crate::insights::{Count, Insights, Settings};
use crate::keys::KeyInfo;
use crate::snapshots::Snapshots;
use crate::store::environments::{self, Environment};
use crate::store::flags::{self, Flag};
use crate::store::insights::{self as stored, HOUR_MS, MINUTE_MS, Resolution};
use crate::store::{Conn, Store};

/// Most flags one SDK report may name, events one track request may carry, and variations
/// per flag in a report.
pub(crate) const MAX_REPORT_FLAGS: usize = 1000;
pub(crate) const MAX_EVENTS: usize = 1000;
const MAX_REPORT_VARIATIONS: usize = 100;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Most evaluations of one variation one report may carry, and the largest value (in
/// magnitude) a tracked event may have: bounds that keep stored sums far from overflow.
pub(crate) const MAX_REPORTED: u64 = 1_000_000_000;
pub(crate) const MAX_VALUE: f64 = 1e12;
/// Events are counted by minute; timestamps are coarsened to 15 minutes' precision within
/// the 48 hours kept, so that one request cannot fill the pending counts with minutes.
const EVENT_GRAIN_MS: i64 = 15 * MINUTE_MS;

/// `POST /api/v1/sdk/metrics`: evaluations an SDK served locally between `start` and `end`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "2026-12-04T10:00:00Z", "end": "2026-12-04T10:01:00Z",
    "flags": {"new-checkout": {"on": 120, "off": 3}}}))]
pub(crate) struct MetricsReport {
    /// RFC 3339.
    start: String,
    /// RFC 3339, not before `start`; the counts go to the minute of `end`.
    end: String,
    /// Evaluations by flag key and variation key; at most 1000 flags.
    #[schema(value_type = HashMap<String, HashMap<String, u64>>)]
    flags: BTreeMap<String, BTreeMap<String, u64>>,
}

/// What happened to a report or a batch of events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"accepted": 2, "ignored": ["old-flag"]}))]
pub(crate) struct Accepted {
    /// Counts (reports) or attributions (events) taken.
    pub(crate) accepted: u64,
    /// Flag keys (reports: unknown flags or variations) or event keys (events: no flag
    /// watches them, or outside the kept time) that were left out.
    pub(crate) ignored: Vec<String>,
}

/// An instant sent by a client: RFC 3339.
fn instant(field: &str, text: &str) -> Result<i64> {
    parse_rfc3339(text).ok_or_else(|| Error::invalid_field(field, "must be an RFC 3339 date-time"))
}

/// Takes an SDK's evaluation counts: flags and variations the key's environment has (and,
/// for client keys, only `client_side` flags); anything else is listed as ignored.
pub(crate) fn report(
    snapshots: &Snapshots,
    insights: &Insights,
    key: &KeyInfo,
    report: &MetricsReport,
) -> Result<Accepted> {
    let (start, end) = (
        instant("start", &report.start)?,
        instant("end", &report.end)?,
    );
    if end < start {
        return Err(Error::invalid_field("end", "must not be before start"));
    }
    if report.flags.len() > MAX_REPORT_FLAGS {
        return Err(Error::invalid_field(
            "flags",
            format!("at most {MAX_REPORT_FLAGS} flags per report"),
        ));
    }
    if let Some((flag, _)) = report
        .flags
        .iter()
        .find(|(_, v)| v.len() > MAX_REPORT_VARIATIONS)
    {
        return Err(Error::invalid_field(
            &format!("flags.{flag}"),
            format!("at most {MAX_REPORT_VARIATIONS} variations"),
        ));
    }
    for (flag, variations) in &report.flags {
        if let Some((variation, _)) = variations.iter().find(|(_, n)| **n > MAX_REPORTED) {
            return Err(Error::invalid_field(
                &format!("flags.{flag}.{variation}"),
                format!("at most {MAX_REPORTED} evaluations per variation and report"),
            ));
        }
    }
    let env = snapshots
        .get(&key.environment_id)
        .ok_or(Error::Unavailable)?;
    let now = now_ms();
    let at = end.min(now);
    let mut accepted = 0;
    let mut ignored = Vec::new();
    let mut counts = Vec::new();
    for (flag_key, variations) in &report.flags {
        let known = env
            .flag_def(flag_key)
            .filter(|_| env.visible_to(key.kind, flag_key))
            .map(|def| &def.variations);
        let Some(known) = known else {
            ignored.push(flag_key.clone());
            continue;
        };
        let mut all_known = true;
        for (variation, &n) in variations {
            if !known.iter().any(|v| v.key == *variation) {
                all_known = false;
                continue;
            }
            if n > 0 {
                accepted += n; // at most 1,000 × 100 × 10⁹: no overflow
                counts.push(Count {
                    environment_id: &key.environment_id,
                    flag_key,
                    variation,
                    event_key: "",
                    at,
                    count: n,
                    total: 0.0,
                });
            }
        }
        if !all_known {
            ignored.push(flag_key.clone());
        }
    }
    if at < now - stored::MINUTES_KEPT_MS {
        // Counts older than the minute buckets are kept would be purged at once.
        return Ok(Accepted {
            accepted: 0,
            ignored: report.flags.keys().cloned().collect(),
        });
    }
    insights.add(counts);
    Ok(Accepted { accepted, ignored })
}

/// `POST /api/v1/track`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [{"key": "checkout_error", "context": {"targetingKey": "user-1"}, "value": 1}]}))]
pub(crate) struct TrackRequest {
    /// At most 1000.
    #[schema(max_items = 1000)]
    events: Vec<TrackedEvent>,
}

/// One event: what happened, to whom (the evaluation context), and an optional value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackedEvent {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    key: String,
    #[serde(default)]
    #[schema(value_type = crate::schemas::EvaluationContext)]
    context: Context,
    /// Summed per variation (e.g. an amount or a duration).
    value: Option<f64>,
    /// RFC 3339; default now. Events older than 48 hours are ignored.
    timestamp: Option<String>,
}

/// Attributes each event to the variation every flag watching its key serves the event's
/// context (evaluated now, not counted as an evaluation).
pub(crate) fn track(
    snapshots: &Snapshots,
    insights: &Insights,
    key: &KeyInfo,
    request: &TrackRequest,
) -> Result<Accepted> {
    if request.events.len() > MAX_EVENTS {
        return Err(Error::invalid_field(
            "events",
            format!("at most {MAX_EVENTS} events per request"),
        ));
    }
    let now = now_ms();
    let mut times = Vec::with_capacity(request.events.len());
    for (i, e) in request.events.iter().enumerate() {
        if !vexil_core::is_valid_key(&e.key) {
            return Err(Error::invalid_field(
                &format!("events[{i}].key"),
                "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
            ));
        }
        if e.value
            .is_some_and(|v| !v.is_finite() || v.abs() > MAX_VALUE)
        {
            return Err(Error::invalid_field(
                &format!("events[{i}].value"),
                format!("must be a number between -{MAX_VALUE:e} and {MAX_VALUE:e}"),
            ));
        }
        let at = match &e.timestamp {
            Some(t) => instant(&format!("events[{i}].timestamp"), t)?,
            None => now,
        };
        // A time ahead of this server's clock is taken as now; older times keep a coarse
        // grain (the current 15 minutes keep their minute).
        let at = at.min(now);
        times.push(if at >= now - EVENT_GRAIN_MS {
            at
        } else {
            at - at.rem_euclid(EVENT_GRAIN_MS)
        });
    }
    let env = snapshots
        .get(&key.environment_id)
        .ok_or(Error::Unavailable)?;
    let oldest = now - stored::MINUTES_KEPT_MS;
    let mut ignored = BTreeSet::new();
    let mut served = Vec::new();
    for (e, &at) in request.events.iter().zip(&times) {
        let watchers = env.watchers_of(&e.key);
        if watchers.is_empty() || at < oldest {
            ignored.insert(e.key.clone());
            continue;
        }
        // Only flags the key may see (client keys: `client_side` ones): what a key learns
        // from `accepted` is no more than it may evaluate.
        for flag in watchers.iter().filter(|f| env.visible_to(key.kind, f)) {
            if let Some(variation) = env.snapshot.evaluate(flag, &e.context, at).variation {
                served.push((e, flag.as_str(), variation, at));
            }
        }
    }
    insights.add(served.iter().map(|(e, flag, variation, at)| Count {
        environment_id: &key.environment_id,
        flag_key: flag,
        variation,
        event_key: &e.key,
        at: *at,
        count: 1,
        total: e.value.unwrap_or(0.0),
    }));
    Ok(Accepted {
        accepted: served.len() as u64,
        ignored: ignored.into_iter().collect(),
    })
}

/// The bucket width of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Step {
    Minute,
    Hour,
    Day,
}

impl Step {
    /// The step's width in milliseconds.
    pub(crate) fn ms(self) -> i64 {
        match self {
            Step::Minute => MINUTE_MS,
            Step::Hour => HOUR_MS,
            Step::Day => DAY_MS,
        }
    }

    /// The step as the API spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Minute => "minute",
            Step::Hour => "hour",
            Step::Day => "day",
        }
    }

    /// The widest window a series of this step may span (a bound on its size).
    fn widest(self) -> (i64, &'static str) {
        match self {
            Step::Minute => (48 * HOUR_MS, "48 hours"),
            Step::Hour => (31 * DAY_MS, "31 days"),
            Step::Day => (366 * DAY_MS, "366 days"),
        }
    }

    fn resolution(self) -> Resolution {
        match self {
            Step::Minute => Resolution::Minute,
            Step::Hour | Step::Day => Resolution::Hour,
        }
    }
}

/// The window of a series or summary: `from`/`to` (RFC 3339; default the last day) and the
/// step (default `hour`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Window {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) step: Option<Step>,
}

impl Window {
    /// A series' `(from, to, step)`, aligned to whole steps, checked.
    fn resolve(&self) -> Result<(i64, i64, Step)> {
        let step = self.step.unwrap_or(Step::Hour);
        let (widest, said) = step.widest();
        let too_wide = || format!("a window with step {} spans at most {said}", step.name());
        let (from, to) = self.span(step.ms(), widest, too_wide)?;
        Ok((from, to, step))
    }

    /// A summary's `(from, to)` in whole hours (`step` is not used), at most 366 days wide.
    fn hours(&self) -> Result<(i64, i64)> {
        self.span(HOUR_MS, 366 * DAY_MS, || {
            "a window spans at most 366 days".to_owned()
        })
    }

    /// `from` (default: a day before `to`, or less when `widest` is) and `to` (default now),
    /// widened to whole `grain`s, checked to be in order and at most `widest` apart.
    fn span(
        &self,
        grain: i64,
        widest: i64,
        too_wide: impl FnOnce() -> String,
    ) -> Result<(i64, i64)> {
        let to = match &self.to {
            Some(t) => instant("to", t)?,
            None => now_ms(),
        };
        let from = match &self.from {
            Some(f) => instant("from", f)?,
            None => to - DAY_MS.min(widest),
        };
        let (from, to) = (floor(from, grain), ceil(to, grain));
        if to <= from {
            return Err(Error::invalid_field("to", "must be after from"));
        }
        if to - from > widest {
            return Err(Error::invalid_field("from", too_wide()));
        }
        Ok((from, to))
    }
}

fn floor(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

fn ceil(t: i64, step: i64) -> i64 {
    let f = floor(t, step);
    if f == t { t } else { f + step }
}

/// A tracked event's count and the sum of its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct EventTotals {
    pub(crate) count: i64,
    pub(crate) sum: f64,
}

/// One variation's evaluations and attributed events, over a window or in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct Totals {
    pub(crate) evaluations: i64,
    /// By event key.
    pub(crate) events: BTreeMap<String, EventTotals>,
}

impl Totals {
    fn add(&mut self, b: &stored::Bucket) {
        if b.event_key.is_empty() {
            self.evaluations += b.count;
        } else {
            let e = self.events.entry(b.event_key.clone()).or_default();
            e.count += b.count;
            e.sum += b.total;
        }
    }
}

/// One bucket of one variation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct Point {
    /// The bucket's start (RFC 3339).
    pub(crate) start: String,
    pub(crate) variation: String,
    #[serde(flatten)]
    pub(crate) totals: Totals,
}

/// A flag's insights in one environment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"flag_id": "0190e0a4-0000-7000-8000-000000000005", "flag_key": "new-checkout",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "from": "2026-12-04T00:00:00.000Z",
    "to": "2026-12-04T02:00:00.000Z", "step": "hour",
    "variations": {"on": {"evaluations": 1200, "events": {"checkout_error": {"count": 12, "sum": 12.0}}},
        "off": {"evaluations": 1180, "events": {}}},
    "points": [{"start": "2026-12-04T00:00:00.000Z", "variation": "on", "evaluations": 600, "events": {}}]}))]
pub(crate) struct Series {
    pub(crate) flag_id: String,
    pub(crate) flag_key: String,
    pub(crate) environment_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) step: Step,
    /// Every variation of the flag (and any other counted in the window), over the window.
    pub(crate) variations: BTreeMap<String, Totals>,
    /// The buckets that have counts, oldest first, then by variation.
    pub(crate) points: Vec<Point>,
}

/// The time series of flag `flag_id` in environment `env_id`.
pub(crate) async fn series(
    store: &Store,
    flag_id: &str,
    env_id: &str,
    window: &Window,
) -> Result<Series> {
    let (from, to, step) = window.resolve()?;
    let mut conn = store.read().await?;
    let flag: Flag = load(&mut conn, flag_id).await?;
    let env: Environment = load(&mut conn, env_id).await?;
    if env.project_id != flag.project_id {
        return Err(Error::not_found("environment", env_id));
    }
    let buckets =
        stored::buckets(&mut conn, &env.id, &flag.key, step.resolution(), (from, to)).await?;
    let mut variations: BTreeMap<String, Totals> = flag
        .variations
        .iter()
        .map(|v| (v.key.clone(), Totals::default()))
        .collect();
    let mut points: BTreeMap<(i64, String), Totals> = BTreeMap::new();
    for b in &buckets {
        variations.entry(b.variation.clone()).or_default().add(b);
        points
            .entry((floor(b.bucket, step.ms()), b.variation.clone()))
            .or_default()
            .add(b);
    }
    Ok(Series {
        flag_id: flag.id,
        flag_key: flag.key,
        environment_id: env.id,
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        step,
        variations,
        points: points
            .into_iter()
            .map(|((start, variation), totals)| Point {
                start: format_rfc3339(start),
                variation,
                totals,
            })
            .collect(),
    })
}

/// Why and whether a flag is stale, and when it was last evaluated anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"last_evaluated_at": "2026-11-01T08:00:00.000Z", "stale": true,
    "reasons": ["not evaluated in any environment for 30 days"]}))]
pub(crate) struct Lifecycle {
    /// RFC 3339; `null` when never evaluated (or not within the insights retention).
    pub(crate) last_evaluated_at: Option<String>,
    pub(crate) stale: bool,
    pub(crate) reasons: Vec<String>,
}

/// What the stale rules read about one flag.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    /// Last evaluated in any environment (ms).
    pub(crate) last_evaluated: Option<i64>,
    /// Variations served in any environment within the single-variation window.
    pub(crate) served: BTreeSet<String>,
}

/// The stale rules (docs/concepts.md "Stale flags"), at `now`.
pub(crate) fn lifecycle(flag: &Flag, usage: &Usage, settings: &Settings, now: i64) -> Lifecycle {
    let created = parse_rfc3339(&flag.created_at).unwrap_or(now);
    let days = |n: u32| i64::from(n) * DAY_MS;
    let mut reasons = Vec::new();
    if !flag.archived {
        let unused = days(settings.stale_unused_days);
        if created <= now - unused && usage.last_evaluated.is_none_or(|t| t <= now - unused) {
            reasons.push(format!(
                "not evaluated in any environment for {} days",
                settings.stale_unused_days
            ));
        }
        let single = days(settings.stale_single_variation_days);
        if created <= now - single
            && usage.served.len() == 1
            && let Some(only) = usage.served.first()
        {
            reasons.push(format!(
                "served only variation '{only}' in every environment for {} days",
                settings.stale_single_variation_days
            ));
        }
        if flag.temporary && created <= now - days(settings.stale_temporary_days) {
            reasons.push(format!(
                "temporary flag created more than {} days ago",
                settings.stale_temporary_days
            ));
        }
    }
    Lifecycle {
        last_evaluated_at: usage.last_evaluated.map(format_rfc3339),
        stale: !reasons.is_empty(),
        reasons,
    }
}

/// What the stale rules read about every flag of a project, by flag key.
pub(crate) async fn usage_of_project(
    conn: &mut Conn,
    project_id: &str,
    settings: &Settings,
    now: i64,
) -> Result<HashMap<String, Usage>> {
    let env_ids: Vec<String> = environments::list_all(conn, project_id)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut usage: HashMap<String, Usage> = HashMap::new();
    for (flag, at) in stored::last_evaluated(conn, &env_ids).await? {
        usage.entry(flag).or_default().last_evaluated = Some(at);
    }
    // Whole hours, like the buckets: "0 days" is the current hour.
    let since = floor(
        now - i64::from(settings.stale_single_variation_days) * DAY_MS,
        HOUR_MS,
    );
    for (flag, variation) in stored::variations_since(conn, &env_ids, since).await? {
        usage.entry(flag).or_default().served.insert(variation);
    }
    Ok(usage)
}

/// A flag with its lifecycle, as the flag list and `GET /feature-flags/{id}` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct WithLifecycle {
    #[serde(flatten)]
    pub(crate) flag: Flag,
    pub(crate) lifecycle: Lifecycle,
}

/// `flags` (all of one project) with their lifecycles.
pub(crate) async fn with_lifecycles(
    conn: &mut Conn,
    project_id: &str,
    flags: Vec<Flag>,
    settings: &Settings,
) -> Result<Vec<WithLifecycle>> {
    let now = now_ms();
    let usage = usage_of_project(conn, project_id, settings, now).await?;
    let none = Usage::default();
    Ok(flags
        .into_iter()
        .map(|flag| {
            let lifecycle = lifecycle(&flag, usage.get(&flag.key).unwrap_or(&none), settings, now);
            WithLifecycle { flag, lifecycle }
        })
        .collect())
}

/// One flag's line in an environment's summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FlagSummary {
    pub(crate) flag_id: String,
    pub(crate) flag_key: String,
    pub(crate) name: String,
    /// Evaluations in this environment in the window.
    pub(crate) evaluations: i64,
    /// The same by variation.
    pub(crate) variations: BTreeMap<String, i64>,
    /// Last evaluated in this environment (RFC 3339), if within the retention.
    pub(crate) last_evaluated_at: Option<String>,
    /// Across every environment (the stale rules).
    pub(crate) lifecycle: Lifecycle,
}

/// An environment's insights: every non-archived flag, most evaluated first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"environment_id": "0190e0a4-0000-7000-8000-000000000004", "environment_key": "production",
    "from": "2026-12-03T10:00:00.000Z", "to": "2026-12-04T10:00:00.000Z",
    "flags": [{"flag_id": "0190e0a4-0000-7000-8000-000000000005", "flag_key": "new-checkout", "name": "New checkout",
        "evaluations": 2380, "variations": {"on": 1200, "off": 1180}, "last_evaluated_at": "2026-12-04T09:59:50.000Z",
        "lifecycle": {"last_evaluated_at": "2026-12-04T09:59:50.000Z", "stale": false, "reasons": []}}]}))]
pub(crate) struct Summary {
    pub(crate) environment_id: String,
    pub(crate) environment_key: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) flags: Vec<FlagSummary>,
}

/// The summary of environment `env_id` over the window (hour buckets; `step` is ignored).
pub(crate) async fn summary(
    store: &Store,
    env_id: &str,
    window: &Window,
    settings: &Settings,
) -> Result<Summary> {
    let (from, to) = window.hours()?;
    let mut conn = store.read().await?;
    let env: Environment = load(&mut conn, env_id).await?;
    let flags = flags::list_all(&mut conn, &env.project_id).await?;
    let flags: Vec<Flag> = flags.into_iter().filter(|f| !f.archived).collect();
    let mut by_flag: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    for (flag, variation, n) in
        stored::evaluations_by_flag(&mut conn, std::slice::from_ref(&env.id), (from, to)).await?
    {
        *by_flag
            .entry(flag)
            .or_default()
            .entry(variation)
            .or_default() += n;
    }
    let last: HashMap<String, i64> =
        stored::last_evaluated(&mut conn, std::slice::from_ref(&env.id))
            .await?
            .into_iter()
            .collect();
    let listed = with_lifecycles(&mut conn, &env.project_id, flags, settings).await?;
    let mut lines: Vec<FlagSummary> = listed
        .into_iter()
        .map(|WithLifecycle { flag, lifecycle }| {
            let variations = by_flag.remove(&flag.key).unwrap_or_default();
            FlagSummary {
                evaluations: variations.values().sum(),
                variations,
                last_evaluated_at: last.get(&flag.key).copied().map(format_rfc3339),
                lifecycle,
                flag_id: flag.id,
                flag_key: flag.key,
                name: flag.name,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        b.evaluations
            .cmp(&a.evaluations)
            .then_with(|| a.flag_key.cmp(&b.flag_key))
    });
    Ok(Summary {
        environment_id: env.id,
        environment_key: env.key,
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        flags: lines,
    })
}
