//! Release plans (guarded staged rollouts) in the console: the release panel of a flag's
//! environment tab — the plan's stages as a progress bar, its guard and readings with a
//! chart per variation of the guard event's rate, the steps a member may take (advance,
//! pause, resume, roll back, cancel), or the form that starts a plan — and the project's
//! list of releases. The operations are `manage::release`'s; refusals come back to the tab
//! with what was typed and the problems beside their fields.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use vexil_core::FlagType;
use vexil_core::time::{format_rfc3339, parse_rfc3339};

use super::chart::{Limit, Line, bucket_starts, chart, per_bucket, rate_per_100};
use super::draft::{Draft, percent, thousandths};
use super::form::{FormData, url_encode};
use super::release::readable_time;
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::clock::now_ms;
use crate::manage::insights::{self, Step, Window};
use crate::manage::release::{self, Guard, NewPlan, Plan, RollbackInput, Verdict};
use crate::manage::{self, Error};
use crate::store::flags::Flag;
use crate::store::release::PlanStatus;

/// The stages the start form proposes (the domain's default tiers).
const DEFAULT_STAGES: &str = "1% 1h, 10% 24h, 50% 24h, 100%";
/// The widest window a guard chart spans (minute buckets are kept this long).
const MAX_CHART_MS: i64 = 48 * 3_600_000;
/// Guard charts of plans younger than this are drawn by minute, older ones by hour.
const MINUTE_CHART_MS: i64 = 6 * 3_600_000;
/// How many ended plans the project's list shows.
const ENDED_SHOWN: i64 = 50;

/// The start form as shown: its values (defaults, or as typed) and its problems by field.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartForm {
    pub(crate) treatment: String,
    pub(crate) control: String,
    pub(crate) bucket_by: String,
    pub(crate) stages: String,
    pub(crate) auto_advance: bool,
    pub(crate) guard_event: String,
    /// In percent, as typed.
    pub(crate) guard_max: String,
    pub(crate) guard_window: String,
    pub(crate) guard_samples: String,
    pub(crate) guard_relative: bool,
    pub(crate) comment: String,
    /// Problems by the domain's field paths (`stages`, `guard.max_rate`, …).
    pub(crate) errors: HashMap<String, String>,
}

impl StartForm {
    /// The form's defaults for a flag: `on`/`off` for a boolean flag, else its first two
    /// variations; the default tiers; advancing by itself; a guard left empty.
    fn defaults(flag: &Flag) -> StartForm {
        let keys: Vec<&str> = flag.variations.iter().map(|v| v.key.as_str()).collect();
        let has = |k: &str| keys.contains(&k);
        let (treatment, control) = if flag.kind == FlagType::Boolean && has("on") && has("off") {
            ("on", "off")
        } else {
            (
                keys.get(1).copied().unwrap_or_default(),
                keys.first().copied().unwrap_or_default(),
            )
        };
        StartForm {
            treatment: treatment.to_owned(),
            control: control.to_owned(),
            bucket_by: "targetingKey".into(),
            stages: DEFAULT_STAGES.into(),
            auto_advance: true,
            guard_window: "1h".into(),
            guard_samples: "200".into(),
            guard_max: "5".into(),
            ..StartForm::default()
        }
    }

    /// The form as submitted.
    fn read(form: &FormData) -> StartForm {
        StartForm {
            treatment: form.text("treatment"),
            control: form.text("control"),
            bucket_by: form.text("bucket_by"),
            stages: form.text("stages"),
            auto_advance: form.checked("auto_advance"),
            guard_event: form.text("guard_event"),
            guard_max: form.text("guard_max"),
            guard_window: form.text("guard_window"),
            guard_samples: form.text("guard_samples"),
            guard_relative: form.checked("guard_relative"),
            comment: form.text("comment"),
            errors: HashMap::new(),
        }
    }

    /// The problem shown beside `field`, if any.
    pub(crate) fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }

    /// The plan to start, or the problems found reading the text.
    fn to_plan(&self) -> Result<NewPlan, HashMap<String, String>> {
        let mut errors = HashMap::new();
        let stages = match parse_stages(&self.stages) {
            Ok(stages) => Some(stages),
            Err(problem) => {
                errors.insert("stages".to_owned(), problem);
                None
            }
        };
        let guard = if self.guard_event.is_empty() {
            None
        } else {
            let max_rate = match thousandths(&self.guard_max) {
                Some(w) => f64::from(w) / 100_000.0,
                None => {
                    errors.insert(
                        "guard.max_rate".to_owned(),
                        format!(
                            "'{}' is not a percentage from 0 to 100 with at most three decimals",
                            self.guard_max
                        ),
                    );
                    0.0
                }
            };
            let min_samples = match self.guard_samples.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    errors.insert(
                        "guard.min_samples".to_owned(),
                        format!("'{}' is not a whole number", self.guard_samples),
                    );
                    0
                }
            };
            Some(Guard {
                event: self.guard_event.clone(),
                max_rate,
                relative_to_control: self.guard_relative,
                window: if self.guard_window.is_empty() {
                    "1h".to_owned()
                } else {
                    self.guard_window.clone()
                },
                min_samples,
            })
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewPlan {
            treatment: Some(self.treatment.clone()).filter(|s| !s.is_empty()),
            control: Some(self.control.clone()).filter(|s| !s.is_empty()),
            bucket_by: Some(self.bucket_by.clone()).filter(|s| !s.is_empty()),
            stages,
            auto_advance: self.auto_advance,
            guard,
            comment: Some(self.comment.clone()).filter(|s| !s.is_empty()),
        })
    }

    /// Takes the domain's field problems: a stage's problem is shown at the stages field,
    /// naming the stage as it was typed.
    fn take_errors(&mut self, fields: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        let items = stage_items(&self.stages);
        let mut unplaced = Vec::new();
        for (path, problem) in fields {
            let problem = problem
                .as_str()
                .unwrap_or_default()
                .replace("auto_advance", "“advance by itself”");
            let (field, text) = match stage_path(path) {
                Some((i, part)) => {
                    let what = match part {
                        "weight" => "the percentage ",
                        "min_duration" => "the duration ",
                        _ => "",
                    };
                    let typed = items.get(i).map_or(String::new(), |s| format!(" ({s})"));
                    ("stages", format!("stage {}{typed}: {what}{problem}", i + 1))
                }
                None => (path.as_str(), problem),
            };
            match field {
                "treatment" | "control" | "bucket_by" | "stages" | "guard.event"
                | "guard.max_rate" | "guard.window" | "guard.min_samples" | "comment" => {
                    let entry = self.errors.entry(field.to_owned()).or_default();
                    if !entry.is_empty() {
                        entry.push_str("; ");
                    }
                    entry.push_str(&text);
                }
                _ => unplaced.push(format!("{path}: {text}")),
            }
        }
        unplaced
    }
}

/// `stages[2].weight` → `(2, "weight")`.
fn stage_path(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("stages[")?;
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest.trim_start_matches('.')))
}

/// The stages as typed, one item each (`1% 1h`), without blank ones.
fn stage_items(text: &str) -> Vec<String> {
    text.split([',', ';', '\n'])
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `1% 1h, 10% 24h, 50% 24h, 100%`: each stage a percentage (up to three decimals) and,
/// but for the last, how long it lasts at least (`30s`, `15m`, `24h`, `7d`; checked by the
/// domain). `1 % for 1h` reads the same.
pub(crate) fn parse_stages(text: &str) -> Result<Vec<release::Stage>, String> {
    let items = stage_items(text);
    if items.is_empty() {
        return Err(format!("give at least one stage, as in {DEFAULT_STAGES}"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut words: Vec<&str> = item.split(' ').collect();
            if words.get(1) == Some(&"%") {
                words.remove(1);
            }
            let bad = |what: String| {
                format!(
                    "stage {} ({item}): {what}; write stages as {DEFAULT_STAGES}",
                    i + 1
                )
            };
            let weight = thousandths(words[0]).ok_or_else(|| {
                bad(format!(
                    "'{}' is not a percentage from 0 to 100 with at most three decimals",
                    words[0]
                ))
            })?;
            let rest: Vec<&str> = words[1..].iter().copied().filter(|w| *w != "for").collect();
            let min_duration = match rest.as_slice() {
                [] => None,
                [d] => Some((*d).to_owned()),
                _ => return Err(bad("give a percentage and at most one duration".into())),
            };
            Ok(release::Stage {
                weight,
                min_duration,
            })
        })
        .collect()
}

/// One stage in the progress bar.
#[derive(Debug, Clone)]
pub(crate) struct StageView {
    /// `10%`.
    pub(crate) label: String,
    /// How long it lasts at least, as given (empty for the last).
    pub(crate) duration: String,
    /// `done`, `current`, `current done` (a completed plan's last stage) or `next`.
    pub(crate) class: &'static str,
    pub(crate) current: bool,
    /// The state in words, for screen readers.
    pub(crate) state: &'static str,
}

/// The guard as shown.
#[derive(Debug, Clone)]
pub(crate) struct GuardView {
    pub(crate) event: String,
    /// `5%`.
    pub(crate) max_rate: String,
    pub(crate) relative: bool,
    pub(crate) window: String,
    pub(crate) min_samples: u64,
}

/// One variation's line in the readings table.
#[derive(Debug, Clone)]
pub(crate) struct ReadingRow {
    pub(crate) variation: String,
    /// `treatment` or `control`.
    pub(crate) role: &'static str,
    /// The variation's color (its place among the flag's variations).
    pub(crate) class: String,
    pub(crate) evaluations: i64,
    pub(crate) events: i64,
    pub(crate) rate: String,
}

/// The guard's readings as shown.
#[derive(Debug, Clone)]
pub(crate) struct ReadingsView {
    /// The guard's event key.
    pub(crate) event: String,
    /// `healthy`, `waiting`, `tripped`.
    pub(crate) verdict: &'static str,
    pub(crate) message: String,
    pub(crate) from: String,
    pub(crate) at: String,
    pub(crate) rows: Vec<ReadingRow>,
}

/// A plan as the panel and the project's list show it.
#[derive(Debug, Clone)]
pub(crate) struct PlanView {
    /// The plan's version, sent back with every step (a step on a plan that moved
    /// meanwhile is refused).
    pub(crate) version: i64,
    /// `running`, `paused`, `completed`, `rolled_back`, `cancelled` (a CSS class too).
    pub(crate) status: &'static str,
    /// The status in words.
    pub(crate) status_text: String,
    pub(crate) live: bool,
    pub(crate) running: bool,
    pub(crate) stages: Vec<StageView>,
    /// The current stage, from 1.
    pub(crate) stage_number: usize,
    pub(crate) stage_count: usize,
    /// The treatment's share now (`10%`).
    pub(crate) percent: String,
    /// The next stage's share, for the Advance button (`None` on the last stage).
    pub(crate) next_percent: Option<String>,
    pub(crate) treatment: String,
    pub(crate) control: String,
    pub(crate) bucket_by: String,
    pub(crate) auto_advance: bool,
    /// When it advances by itself if the guard stays healthy, in words.
    pub(crate) next_advance: Option<String>,
    pub(crate) stage_since: String,
    pub(crate) started: String,
    pub(crate) started_by: String,
    pub(crate) comment: String,
    pub(crate) ended: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) guard: Option<GuardView>,
    pub(crate) readings: Option<ReadingsView>,
    /// The guard event's rate over time, one chart per variation.
    pub(crate) charts: Vec<ChartView>,
    pub(crate) flag_key: String,
    pub(crate) env_name: String,
    /// The flag's tab in the plan's environment.
    pub(crate) href: String,
}

fn status_text(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Running => "running",
        PlanStatus::Paused => "paused",
        PlanStatus::Completed => "completed",
        PlanStatus::RolledBack => "rolled back",
        PlanStatus::Cancelled => "cancelled",
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "healthy",
        Verdict::Waiting => "waiting",
        Verdict::Tripped => "tripped",
    }
}

/// `0.0123` → `1.23 %`.
fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.2} %", 100.0 * r))
}

/// A rate from 0 to 1 as a percentage (`0.05` → `5%`).
fn rate_percent(rate: f64) -> String {
    let w = (rate * 100_000.0).round().clamp(0.0, 100_000.0);
    format!("{}%", percent(w as u32))
}

/// How far ahead `at` is, in words (`in 23 h 5 min`; `due now` when past).
fn from_now(at: i64, now: i64) -> String {
    let mins = (at - now) / 60_000;
    match mins {
        m if m <= 0 => "due now".to_owned(),
        m if m < 60 => format!("in {m} min"),
        m if m < 48 * 60 => format!("in {} h {} min", m / 60, m % 60),
        m => format!("in {} days", m / (24 * 60)),
    }
}

/// The place of `variation` among the flag's variations (its color in charts).
fn color_of(flag: &Flag, variation: &str) -> usize {
    flag.variations
        .iter()
        .position(|v| v.key == variation)
        .unwrap_or(0)
}

impl PlanView {
    fn of(plan: &Plan, flag: Option<&Flag>, (env_name, href): (String, String)) -> PlanView {
        let completed = plan.status == PlanStatus::Completed;
        let stages = plan
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (class, state) = match i.cmp(&plan.stage) {
                    std::cmp::Ordering::Less => ("done", "done"),
                    std::cmp::Ordering::Equal if completed => ("current done", "reached"),
                    std::cmp::Ordering::Equal => ("current", "current stage"),
                    std::cmp::Ordering::Greater => ("next", "to come"),
                };
                StageView {
                    label: format!("{}%", percent(s.weight)),
                    duration: s.min_duration.clone().unwrap_or_default(),
                    class,
                    current: i == plan.stage,
                    state,
                }
            })
            .collect();
        let color = |v: &str| flag.map_or(0, |f| color_of(f, v));
        let event = plan
            .guard
            .as_ref()
            .map(|g| g.event.clone())
            .unwrap_or_default();
        let readings = plan.readings.as_ref().map(|r| ReadingsView {
            event: event.clone(),
            verdict: verdict_name(r.verdict),
            message: r.message.clone(),
            from: readable_time(&r.from),
            at: readable_time(&r.at),
            rows: [(&plan.treatment, "treatment"), (&plan.control, "control")]
                .into_iter()
                .map(|(v, role)| {
                    let reading = r.variations.get(v).cloned().unwrap_or_default();
                    ReadingRow {
                        variation: v.clone(),
                        role,
                        class: format!("s{}", color(v) % super::chart::PALETTE),
                        evaluations: reading.evaluations,
                        events: reading.events,
                        rate: rate_text(reading.rate),
                    }
                })
                .collect(),
        });
        let now = now_ms();
        PlanView {
            status: plan.status.as_str(),
            status_text: status_text(plan.status).to_owned(),
            version: plan.version,
            live: plan.status.is_live(),
            running: plan.status == PlanStatus::Running,
            stages,
            stage_number: plan.stage + 1,
            stage_count: plan.stages.len(),
            percent: format!("{}%", percent(plan.weight)),
            next_percent: plan
                .stages
                .get(plan.stage + 1)
                .map(|s| format!("{}%", percent(s.weight))),
            treatment: plan.treatment.clone(),
            control: plan.control.clone(),
            bucket_by: plan.bucket_by.clone(),
            auto_advance: plan.auto_advance,
            next_advance: plan.next_advance_at.as_deref().map(|t| {
                let when = parse_rfc3339(t).map_or_else(String::new, |at| from_now(at, now));
                format!("{} ({when})", readable_time(t))
            }),
            stage_since: readable_time(&plan.stage_started_at),
            started: readable_time(&plan.created_at),
            started_by: plan.created_by.name.clone(),
            comment: plan.comment.clone().unwrap_or_default(),
            ended: plan.ended_at.as_deref().map(readable_time),
            reason: plan.reason.clone(),
            guard: plan.guard.as_ref().map(|g| GuardView {
                event: g.event.clone(),
                max_rate: rate_percent(g.max_rate),
                relative: g.relative_to_control,
                window: g.window.clone(),
                min_samples: g.min_samples,
            }),
            readings,
            charts: Vec::new(),
            flag_key: plan.flag_key.clone(),
            env_name,
            href,
        }
    }
}

/// One guard chart: its caption and the SVG (every text in it escaped by `chart`).
#[derive(Debug, Clone)]
pub(crate) struct ChartView {
    pub(crate) caption: String,
    pub(crate) svg: String,
}

/// The window of a plan's guard charts: from its start to now (or to its end), at most
/// 48 hours, by minute for young plans and by hour after; at least two buckets.
fn chart_window(plan: &Plan) -> Option<Window> {
    let start = parse_rfc3339(&plan.created_at)?;
    let now = now_ms();
    let end = plan
        .ended_at
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now)
        .max(start);
    let from = start.max(end - MAX_CHART_MS);
    // Minute buckets are kept 48 hours: older windows read hours.
    let step = if end - from <= MINUTE_CHART_MS && now - from < MAX_CHART_MS - 3_600_000 {
        Step::Minute
    } else {
        Step::Hour
    };
    // At least two buckets, so that a line shows in the plan's first minute.
    let from = from.min(end - step.ms());
    Some(Window {
        from: Some(format_rfc3339(from)),
        to: Some(format_rfc3339(end)),
        step: Some(step),
    })
}

/// A chart per variation (treatment, then control) of the guard event's rate per 100
/// evaluations over the plan's life; the treatment's shows the guard's limit.
async fn guard_charts(cx: &Ctx, flag: &Flag, plan: &Plan) -> Result<Vec<ChartView>, Page> {
    let (Some(guard), Some(window)) = (&plan.guard, chart_window(plan)) else {
        return Ok(Vec::new());
    };
    let series = insights::series(&cx.store, &plan.flag_id, &plan.environment_id, &window).await?;
    let starts = bucket_starts(&series);
    let limit = Limit {
        value: 100.0 * guard.max_rate,
        label: format!("limit {}", rate_percent(guard.max_rate)),
    };
    Ok([&plan.treatment, &plan.control]
        .into_iter()
        .map(|v| {
            let line = Line {
                name: v.clone(),
                class: color_of(flag, v),
                values: per_bucket(&series, &starts, v, |t| rate_per_100(t, &guard.event)),
            };
            let treatment = *v == plan.treatment;
            let role = if treatment { "treatment" } else { "control" };
            let caption = format!("{} per 100 evaluations of {v} ({role})", guard.event);
            let limit = (treatment && !guard.relative_to_control).then_some(&limit);
            ChartView {
                svg: chart(&caption, &starts, &[line], "%", limit),
                caption,
            }
        })
        .collect())
}

/// The release panel of a flag's environment tab.
pub(crate) struct Panel {
    /// The live plan, else the latest that ended.
    pub(crate) plan: Option<PlanView>,
    pub(crate) form: StartForm,
    /// Whether the start form opens by itself (it was refused).
    pub(crate) open: bool,
    /// Why the last step or start was refused.
    pub(crate) error: Option<String>,
    /// The rollback reason as typed, and its problem.
    pub(crate) reason: String,
    pub(crate) reason_error: String,
    /// Whether the caller may start plans and take steps here.
    pub(crate) can_release: bool,
    /// Why no plan can start here (instead of the form).
    pub(crate) blocked: Option<String>,
}

impl Panel {
    /// Whether a plan is live (it owns the default).
    pub(crate) fn live(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.live)
    }
}

/// What a refused release form leaves to show again.
#[derive(Debug, Default)]
pub(crate) struct Refusal {
    /// The start form as typed, with its problems.
    form: Option<StartForm>,
    /// The rollback reason as typed, with its problem.
    reason: Option<(String, String)>,
    message: Option<String>,
}

/// The panel for the page's flag in its environment.
pub(crate) async fn panel(
    cx: &Ctx,
    place: &Place,
    frame: &Frame,
    refusal: Option<Refusal>,
) -> Result<Panel, Page> {
    let (flag, env) = (place.flag()?, place.env()?);
    let plan = match release::get(&cx.store, &flag.id, &env.id).await {
        Ok(plan) => Some(plan),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let plan = match plan {
        Some(plan) => {
            let href = tab_url(place)?;
            let mut view = PlanView::of(&plan, Some(flag), (env.name.clone(), href));
            if plan.status.is_live() || plan.status == PlanStatus::RolledBack {
                view.charts = guard_charts(cx, flag, &plan).await?;
            }
            Some(view)
        }
        None => None,
    };
    let refusal = refusal.unwrap_or_default();
    let blocked = if env.requires_approval {
        Some(format!(
            "Release plans cannot run in {}: it requires approval, and a plan changes the configuration by itself as it advances.",
            env.name
        ))
    } else if flag.archived {
        Some("The flag is archived: restore it to start a release.".to_owned())
    } else {
        None
    };
    let (reason, reason_error) = refusal.reason.unwrap_or_default();
    Ok(Panel {
        plan,
        open: refusal.form.is_some(),
        form: refusal.form.unwrap_or_else(|| StartForm::defaults(flag)),
        error: refusal.message,
        reason,
        reason_error,
        can_release: frame.can_edit() && (!env.protected || frame.is_admin()),
        blocked,
    })
}

/// The page's flag tab (`…/flags/{flag}/in/{env}`).
fn tab_url(place: &Place) -> Result<String, Page> {
    let (flag, env) = (place.flag()?, place.env()?);
    Ok(format!(
        "{}/flags/{}/in/{}",
        place.base(),
        url_encode(&flag.key),
        url_encode(&env.key)
    ))
}

/// The tab again with the configuration as stored and the panel's refusal.
async fn refused(cx: &Ctx, place: &Place, refusal: Refusal) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let config = manage::flag_configs::get(&cx.store, &flag.id, &env.id).await?;
    let draft = Draft::of(&config.config, config.version, &flag.variations);
    super::flag::render_with(cx, place, draft, None, None, Some(refusal)).await
}

/// `POST …/flags/{flag}/in/{env}/release`: starts a plan from the form.
pub(crate) async fn start(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let mut form = StartForm::read(&cx.form);
    let input = match form.to_plan() {
        Ok(input) => input,
        Err(errors) => {
            form.errors = errors;
            let refusal = Refusal {
                form: Some(form),
                message: Some("The release did not start: see the fields below.".into()),
                ..Refusal::default()
            };
            return refused(&cx, &place, refusal).await;
        }
    };
    let at = (flag.id.as_str(), env.id.as_str());
    let message = match release::start(&cx.store, &cx.by, at, input).await {
        Ok(plan) => {
            let done = match plan.status {
                PlanStatus::Completed => "release_completed",
                _ => "release_started",
            };
            return Ok(Page::redirect(format!("{}?done={done}", tab_url(&place)?)));
        }
        Err(Error::Invalid { fields, .. }) => {
            let unplaced = form.take_errors(&fields);
            match unplaced.is_empty() {
                true => "The release did not start: see the fields below.".to_owned(),
                false => format!("The release did not start: {}", unplaced.join("; ")),
            }
        }
        Err(e @ (Error::Conflict { .. } | Error::Refused { .. } | Error::Forbidden(_))) => {
            format!("The release did not start: {e}")
        }
        Err(e) => return Err(e.into()),
    };
    let refusal = Refusal {
        form: Some(form),
        message: Some(message),
        ..Refusal::default()
    };
    refused(&cx, &place, refusal).await
}

/// `POST …/flags/{flag}/in/{env}/release/{step}`: advance, pause, resume, rollback (with
/// a reason) or cancel the live plan, then back to the tab.
pub(crate) async fn step(
    cx: Ctx,
    Extension(place): Extension<Place>,
    step: &'static str,
) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let at = (flag.id.as_str(), env.id.as_str());
    let (store, by) = (&cx.store, &cx.by);
    let reason = cx.form.text("reason");
    let expected = cx.form.text("version").parse::<i64>().ok();
    let done = match step {
        "advance" => release::advance(store, by, at, expected).await.map(|p| {
            if p.status == PlanStatus::Completed {
                "release_completed"
            } else {
                "release_advanced"
            }
        }),
        "pause" => release::pause(store, by, at, expected)
            .await
            .map(|_| "release_paused"),
        "resume" => release::resume(store, by, at, expected)
            .await
            .map(|_| "release_resumed"),
        "rollback" => release::rollback(
            store,
            by,
            at,
            expected,
            RollbackInput {
                reason: reason.clone(),
            },
        )
        .await
        .map(|_| "release_rolled_back"),
        _ => release::cancel(store, by, at, expected)
            .await
            .map(|_| "release_cancelled"),
    };
    let refusal = match done {
        Ok(done) => return Ok(Page::redirect(format!("{}?done={done}", tab_url(&place)?))),
        Err(Error::Invalid { fields, message }) => {
            let problem = fields
                .get("reason")
                .and_then(|v| v.as_str())
                .map_or(message, str::to_owned);
            let message = match step {
                "rollback" => "Not rolled back: the reason needs attention.".to_owned(),
                _ => format!("Nothing was done: {problem}"),
            };
            Refusal {
                reason: Some((reason, problem)),
                message: Some(message),
                ..Refusal::default()
            }
        }
        Err(
            e @ (Error::Conflict { .. }
            | Error::Refused { .. }
            | Error::Forbidden(_)
            | Error::VersionMismatch { .. }
            | Error::NotFound(_)),
        ) => Refusal {
            reason: Some((reason, String::new())),
            message: Some(format!(
                "Nothing was done: {e}. The panel below shows the plan as it is now."
            )),
            ..Refusal::default()
        },
        Err(e) => return Err(e.into()),
    };
    refused(&cx, &place, refusal).await
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    frame: Frame,
    live: Vec<PlanView>,
    ended: Vec<PlanView>,
    /// How many ended plans there are, when more than shown.
    ended_more: Option<i64>,
}

/// `GET /ui/{org}/{project}/releases`: the project's live plans, then the latest that ended.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "releases", "Releases", q.done.as_deref()).await?;
    let project = place.project.id.as_str();
    let live_statuses = [PlanStatus::Running, PlanStatus::Paused];
    let ended_statuses = [
        PlanStatus::Completed,
        PlanStatus::RolledBack,
        PlanStatus::Cancelled,
    ];
    let (live, _) = release::list(&cx.store, project, None, &live_statuses, (500, 0)).await?;
    let (ended, ended_total) =
        release::list(&cx.store, project, None, &ended_statuses, (ENDED_SHOWN, 0)).await?;
    let view = |plan: &Plan| {
        let env = frame
            .environments
            .iter()
            .find(|e| e.id == plan.environment_id);
        let (env_name, env_key) = env.map_or_else(
            || (String::new(), String::new()),
            |e| (e.name.clone(), e.key.clone()),
        );
        let href = format!(
            "{}/flags/{}/in/{}",
            place.base(),
            url_encode(&plan.flag_key),
            url_encode(&env_key)
        );
        PlanView::of(plan, None, (env_name, href))
    };
    let live = live.iter().map(view).collect();
    let ended: Vec<PlanView> = ended.iter().map(view).collect();
    let ended_more =
        (usize::try_from(ended_total).unwrap_or(0) > ended.len()).then_some(ended_total);
    Ok(Page::render(&ReleasesPage {
        frame,
        live,
        ended,
        ended_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_as_percentages_with_durations() {
        let stages = parse_stages("1% 1h, 10 % for 24h,\n50.125% 24h; 100%").unwrap();
        let got: Vec<(u32, Option<&str>)> = stages
            .iter()
            .map(|s| (s.weight, s.min_duration.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (1_000, Some("1h")),
                (10_000, Some("24h")),
                (50_125, Some("24h")),
                (100_000, None)
            ]
        );
        let e = parse_stages("1% 1h, ten% 1h, 100%").unwrap_err();
        assert!(
            e.starts_with("stage 2 (ten% 1h): 'ten%' is not a percentage"),
            "{e}"
        );
        assert!(parse_stages("1.2345% 1h").is_err());
        assert!(parse_stages("1% 1h 2h").is_err());
        assert!(
            parse_stages(" , ")
                .unwrap_err()
                .contains("at least one stage")
        );
    }

    #[test]
    fn a_stage_problem_of_the_domain_lands_at_the_stages_field_naming_the_stage() {
        let mut form = StartForm {
            stages: "1% 1h, 10% 24h, 5% 1h, 100%".into(),
            ..StartForm::default()
        };
        let mut fields = serde_json::Map::new();
        fields.insert(
            "stages[2].weight".into(),
            "must be more than the stage before".into(),
        );
        fields.insert("guard.window".into(), "must be from 1m to 48h".into());
        fields.insert("elsewhere".into(), "odd".into());
        let unplaced = form.take_errors(&fields);
        assert_eq!(
            form.error("stages"),
            "stage 3 (5% 1h): the percentage must be more than the stage before"
        );
        assert_eq!(form.error("guard.window"), "must be from 1m to 48h");
        assert_eq!(unplaced, ["elsewhere: odd"]);
    }

    #[test]
    fn the_guard_is_read_from_percent_and_left_out_without_an_event() {
        let mut form = StartForm {
            stages: "10% 1h, 100%".into(),
            guard_max: "2.5".into(),
            guard_samples: "50".into(),
            ..StartForm::default()
        };
        assert!(form.to_plan().unwrap().guard.is_none());
        form.guard_event = "error".into();
        let guard = form.to_plan().unwrap().guard.unwrap();
        assert!((guard.max_rate - 0.025).abs() < 1e-12);
        assert_eq!((guard.window.as_str(), guard.min_samples), ("1h", 50));
        form.guard_max = "lots".into();
        form.guard_samples = "-1".into();
        let errors = form.to_plan().unwrap_err();
        assert!(errors.contains_key("guard.max_rate") && errors.contains_key("guard.min_samples"));
    }

    #[test]
    fn times_ahead_read_in_words() {
        assert_eq!(from_now(0, 1), "due now");
        assert_eq!(from_now(90 * 60_000, 0), "in 1 h 30 min");
        assert_eq!(from_now(5 * 86_400_000, 0), "in 5 days");
        assert_eq!(rate_percent(0.05), "5%");
        assert_eq!(rate_percent(0.00125), "0.125%");
    }
}
