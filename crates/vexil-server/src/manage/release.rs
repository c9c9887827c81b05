//! Release plans (guarded staged rollouts): one flag in one environment moves from a
//! control variation to a treatment variation in stages. While a plan is live it owns the
//! configuration's fallthrough (a rollout of treatment/control at the stage's weight,
//! treatment first, so that raising a stage never moves a unit out of the treatment);
//! targets and rules stay the person's. Every stage change is an ordinary configuration
//! change made through [`flag_configs::commit_in`] (validated, new revision, audited) plus
//! an audit entry of the plan's own (`release.*`).
//!
//! The guard reads the insights counts of the flag since the plan started (at most the
//! guard's window): tracked events of its key attributed to the treatment ÷ evaluations
//! that served the treatment (or that rate minus the control's). [`check_all`] is the
//! release guard job's work: roll back a plan whose guard tripped, advance one whose stage
//! lasted its `min_duration` with a healthy guard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vexil_core::{FlagType, Rollout, Serve, WeightedVariation};

use super::fields::check_comment;
use super::flag_configs::{self, commit_in};
use super::{By, Error, Result, check_version, found};
use crate::audit::{Action, Actor};
use crate::store::flags::{Config, Flag, FlagConfig};
use crate::store::insights::{MINUTE_MS, MINUTES_KEPT_MS};
use crate::store::release::{self as rows, PlanRow, PlanStatus};
use crate::store::{Conn, Store, environments, new_id, now_ms, now_rfc3339};

/// A rollout's weights sum to this (100 %).
const FULL: u32 = 100_000;
/// Most stages a plan may have.
const MAX_STAGES: usize = 20;
/// The longest a stage may be held for.
const MAX_STAGE_MS: i64 = 366 * 24 * 3_600_000;
/// Most evaluations a guard may wait for.
const MAX_SAMPLES: u64 = 1_000_000_000;

/// One stage: the treatment's weight (thousandths of a percent) and how long the stage
/// lasts at least before the plan advances by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"weight": 10000, "min_duration": "24h"}))]
pub(crate) struct Stage {
    #[schema(maximum = 100000)]
    pub(crate) weight: u32,
    /// `30s`, `15m`, `24h`, `7d`. Required on every stage but the last when the plan
    /// advances by itself; the last stage is where the plan ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min_duration: Option<String>,
}

/// What rolls a plan back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "error", "max_rate": 0.05, "relative_to_control": false, "window": "1h", "min_samples": 200}))]
pub(crate) struct Guard {
    /// The tracked event key counted against the treatment.
    pub(crate) event: String,
    /// The highest healthy rate (events per evaluation, 0 to 1); with
    /// `relative_to_control`, the most the treatment's rate may exceed the control's by.
    pub(crate) max_rate: f64,
    #[serde(default)]
    pub(crate) relative_to_control: bool,
    /// How far back the rate looks (`1m` to `48h`; default `1h`), never before the plan
    /// started.
    #[serde(default = "default_window")]
    pub(crate) window: String,
    /// Evaluations of the treatment (and, relative, of the control) needed before the
    /// guard judges (default 200).
    #[serde(default = "default_samples")]
    #[schema(minimum = 1)]
    pub(crate) min_samples: u64,
}

fn default_window() -> String {
    "1h".into()
}

fn default_samples() -> u64 {
    200
}

fn default_true() -> bool {
    true
}

/// A release plan to start.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"treatment": "on", "control": "off", "bucket_by": "customerId",
    "stages": [{"weight": 1000, "min_duration": "1h"}, {"weight": 10000, "min_duration": "24h"},
               {"weight": 50000, "min_duration": "24h"}, {"weight": 100000}],
    "auto_advance": true, "guard": {"event": "error", "max_rate": 0.05, "window": "1h", "min_samples": 200},
    "comment": "chat widget for everyone"}))]
pub(crate) struct NewPlan {
    /// The variation being released (`on` for boolean flags when omitted).
    pub(crate) treatment: Option<String>,
    /// The variation everyone else gets, and everyone after a rollback (`off` for boolean
    /// flags when omitted).
    pub(crate) control: Option<String>,
    /// The context attribute units are bucketed by (default `targetingKey`).
    pub(crate) bucket_by: Option<String>,
    /// Default: 1 % for 1h, 10 % for 24h, 50 % for 24h, then 100 %.
    pub(crate) stages: Option<Vec<Stage>>,
    #[serde(default = "default_true")]
    pub(crate) auto_advance: bool,
    pub(crate) guard: Option<Guard>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// The body of a rollback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "support tickets about the widget doubled"}))]
pub(crate) struct RollbackInput {
    #[schema(max_length = 1000)]
    pub(crate) reason: String,
}

/// One variation's counts over the guard's window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Reading {
    pub(crate) evaluations: i64,
    /// Tracked events of the guard's key attributed to this variation.
    pub(crate) events: i64,
    /// `events / evaluations` (absent without evaluations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<f64>,
}

/// What the guard makes of its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The rate is within bounds with enough evaluations.
    Healthy,
    /// Not enough evaluations yet to judge.
    Waiting,
    /// The rate passed `max_rate`: the plan rolls back.
    Tripped,
}

/// The guard's readings per variation (treatment and control) and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Readings {
    /// The window read: from this minute to `at`.
    pub(crate) from: String,
    pub(crate) at: String,
    pub(crate) variations: BTreeMap<String, Reading>,
    pub(crate) verdict: Verdict,
    /// The verdict in words.
    pub(crate) message: String,
}

/// A release plan as served.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000c", "flag_id": "0190e0a4-0000-7000-8000-000000000005",
    "flag_key": "chat-widget", "environment_id": "0190e0a4-0000-7000-8000-000000000004", "treatment": "on", "control": "off",
    "bucket_by": "customerId", "stages": [{"weight": 1000, "min_duration": "1h"}, {"weight": 10000, "min_duration": "24h"},
    {"weight": 50000, "min_duration": "24h"}, {"weight": 100000}], "auto_advance": true,
    "guard": {"event": "error", "max_rate": 0.05, "relative_to_control": false, "window": "1h", "min_samples": 200},
    "status": "running", "stage": 1, "weight": 10000, "stage_started_at": "2026-12-02T10:00:00.000Z",
    "next_advance_at": "2026-12-03T10:00:00.000Z",
    "readings": {"from": "2026-12-02T10:00:00.000Z", "at": "2026-12-02T10:30:00.000Z",
        "variations": {"on": {"evaluations": 1204, "events": 13, "rate": 0.0108}, "off": {"evaluations": 10873, "events": 98, "rate": 0.009}},
        "verdict": "healthy", "message": "error rate of on is 1.08% (13 of 1204), within 5%"},
    "created_by": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "comment": "chat widget for everyone", "version": 2, "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-02T10:00:00.000Z"}))]
pub(crate) struct Plan {
    pub(crate) id: String,
    pub(crate) flag_id: String,
    pub(crate) flag_key: String,
    pub(crate) environment_id: String,
    pub(crate) treatment: String,
    pub(crate) control: String,
    pub(crate) bucket_by: String,
    pub(crate) stages: Vec<Stage>,
    pub(crate) auto_advance: bool,
    pub(crate) guard: Option<Guard>,
    pub(crate) status: PlanStatus,
    /// The index of the current stage in `stages`.
    pub(crate) stage: usize,
    /// The treatment's weight now (thousandths of a percent).
    pub(crate) weight: u32,
    pub(crate) stage_started_at: String,
    /// When the plan advances by itself if the guard stays healthy (running plans that
    /// advance by themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_advance_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ended_at: Option<String>,
    /// Why it was rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The guard's readings: now for a live plan, at its end for one that ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) readings: Option<Readings>,
    pub(crate) created_by: Actor,
    pub(crate) comment: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// `30s`, `15m`, `24h`, `7d` in milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let ms = match unit {
        's' => 1_000,
        'm' => MINUTE_MS,
        'h' => 3_600_000,
        'd' => 24 * 3_600_000,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(ms)
}

fn duration_field(path: &str, text: &str, (min, max): (i64, i64), range: &str) -> Result<i64> {
    match parse_duration(text) {
        Some(ms) if (min..=max).contains(&ms) => Ok(ms),
        Some(_) => Err(Error::invalid_field(path, format!("must be {range}"))),
        None => Err(Error::invalid_field(
            path,
            "must be a whole number of seconds, minutes, hours or days: 30s, 15m, 24h, 7d",
        )),
    }
}

/// The default stages: 1 %, 10 %, 50 %, 100 %.
fn default_stages() -> Vec<Stage> {
    let stage = |weight, d: Option<&str>| Stage {
        weight,
        min_duration: d.map(str::to_owned),
    };
    vec![
        stage(1_000, Some("1h")),
        stage(10_000, Some("24h")),
        stage(50_000, Some("24h")),
        stage(FULL, None),
    ]
}

fn check_stages(stages: &[Stage], auto_advance: bool) -> Result<()> {
    if stages.is_empty() || stages.len() > MAX_STAGES {
        return Err(Error::invalid_field(
            "stages",
            format!("must hold 1 to {MAX_STAGES} stages"),
        ));
    }
    let last = stages.len() - 1;
    if stages[last].weight != FULL {
        return Err(Error::invalid_field(
            &format!("stages[{last}].weight"),
            "the last stage must be 100000 (100%): a plan ends with everyone on the treatment",
        ));
    }
    for (i, s) in stages.iter().enumerate() {
        let path = format!("stages[{i}]");
        if s.weight > FULL {
            return Err(Error::invalid_field(
                &format!("{path}.weight"),
                "must be at most 100000 (100%)",
            ));
        }
        if i > 0 && s.weight <= stages[i - 1].weight {
            return Err(Error::invalid_field(
                &format!("{path}.weight"),
                "must be more than the stage before: a plan only moves forward",
            ));
        }
        match (&s.min_duration, i == last) {
            (Some(_), true) if stages.len() > 1 => {
                return Err(Error::invalid_field(
                    &format!("{path}.min_duration"),
                    "the last stage is where the plan ends; it takes no min_duration",
                ));
            }
            (Some(d), _) => {
                duration_field(
                    &format!("{path}.min_duration"),
                    d,
                    (0, MAX_STAGE_MS),
                    "at most 366d",
                )?;
            }
            (None, false) if auto_advance => {
                return Err(Error::invalid_field(
                    &format!("{path}.min_duration"),
                    "is required on every stage but the last when auto_advance is on",
                ));
            }
            (None, _) => {}
        }
    }
    Ok(())
}

fn check_guard(guard: &Guard) -> Result<()> {
    if !vexil_core::is_valid_key(&guard.event) {
        return Err(Error::invalid_field(
            "guard.event",
            "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        ));
    }
    if !guard.max_rate.is_finite() || !(0.0..=1.0).contains(&guard.max_rate) {
        return Err(Error::invalid_field(
            "guard.max_rate",
            "must be a rate from 0 to 1 (0.05 is 5%)",
        ));
    }
    duration_field(
        "guard.window",
        &guard.window,
        (MINUTE_MS, MINUTES_KEPT_MS),
        "from 1m to 48h",
    )?;
    if guard.min_samples == 0 || guard.min_samples > MAX_SAMPLES {
        return Err(Error::invalid_field(
            "guard.min_samples",
            "must be from 1 to 1000000000",
        ));
    }
    Ok(())
}

/// The treatment (or control) a plan names: `given`, or the boolean flag's `fallback`.
fn variation_of(flag: &Flag, field: &str, given: Option<String>, fallback: &str) -> Result<String> {
    let key = match given {
        Some(key) => key,
        None if flag.kind == FlagType::Boolean
            && flag.variations.iter().any(|v| v.key == fallback) =>
        {
            fallback.to_owned()
        }
        None => return Err(Error::invalid_field(field, "is required")),
    };
    if !flag.variations.iter().any(|v| v.key == key) {
        let known: Vec<&str> = flag.variations.iter().map(|v| v.key.as_str()).collect();
        return Err(Error::invalid_field(
            field,
            format!(
                "'{key}' is not a variation of '{}' (it has {})",
                flag.key,
                known.join(", ")
            ),
        ));
    }
    Ok(key)
}

fn stages_of(row: &PlanRow) -> Result<Vec<Stage>> {
    Ok(serde_json::from_str(&row.stages)?)
}

fn guard_of(row: &PlanRow) -> Result<Option<Guard>> {
    Ok(row.guard.as_deref().map(serde_json::from_str).transpose()?)
}

fn stage_index(row: &PlanRow) -> usize {
    usize::try_from(row.stage).unwrap_or(0)
}

/// What the configuration serves as its fallthrough at `stage`.
fn serve_at(row: &PlanRow, stages: &[Stage], stage: usize) -> Serve {
    let weight = stages.get(stage).map_or(0, |s| s.weight);
    if weight >= FULL {
        return Serve::variation(row.treatment.clone());
    }
    if weight == 0 {
        // Nobody outside targets and rules yet (the allow list only).
        return Serve::variation(row.control.clone());
    }
    Serve {
        variation: None,
        rollout: Some(Rollout {
            bucket_by: row.bucket_by.clone(),
            seed: None,
            variations: vec![
                WeightedVariation {
                    variation: row.treatment.clone(),
                    weight,
                },
                WeightedVariation {
                    variation: row.control.clone(),
                    weight: FULL - weight,
                },
            ],
        }),
    }
}

/// When the current stage has lasted its `min_duration` (ms), if it has one and is not the
/// last.
fn advance_due_at(row: &PlanRow, stages: &[Stage]) -> Option<i64> {
    let stage = stage_index(row);
    if stage + 1 >= stages.len() {
        return None;
    }
    let ms = parse_duration(stages[stage].min_duration.as_deref()?)?;
    Some(vexil_core::time::parse_rfc3339(&row.stage_started_at)?.saturating_add(ms))
}

/// The plan as served (`readings`: the live readings, else those stored at its end).
fn view(row: &PlanRow, readings: Option<Readings>) -> Result<Plan> {
    let stages = stages_of(row)?;
    let stage = stage_index(row);
    let next_advance_at = match (row.status, row.auto_advance) {
        (PlanStatus::Running, true) => {
            advance_due_at(row, &stages).map(vexil_core::time::format_rfc3339)
        }
        _ => None,
    };
    let stored = row
        .readings
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?;
    Ok(Plan {
        id: row.id.clone(),
        flag_id: row.flag_id.clone(),
        flag_key: row.flag_key.clone(),
        environment_id: row.environment_id.clone(),
        treatment: row.treatment.clone(),
        control: row.control.clone(),
        bucket_by: row.bucket_by.clone(),
        weight: stages.get(stage).map_or(0, |s| s.weight),
        stages,
        auto_advance: row.auto_advance,
        guard: guard_of(row)?,
        status: row.status,
        stage,
        stage_started_at: row.stage_started_at.clone(),
        next_advance_at,
        ended_at: row.ended_at.clone(),
        reason: row.reason.clone(),
        readings: readings.or(stored),
        created_by: serde_json::from_str(&row.created_by)?,
        comment: row.comment.clone(),
        version: row.version,
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    })
}

fn percent(weight: u32) -> String {
    let p = f64::from(weight) / 1000.0;
    format!("{p}%")
}

fn rate_text(rate: f64) -> String {
    let p = (rate * 10_000.0).round() / 100.0;
    format!("{p}%")
}

/// The guard's readings of a plan at `now` (ms); `None` without a guard.
pub(crate) async fn readings(conn: &mut Conn, row: &PlanRow, now: i64) -> Result<Option<Readings>> {
    let Some(guard) = guard_of(row)? else {
        return Ok(None);
    };
    let window = parse_duration(&guard.window).unwrap_or(3_600_000);
    let started = vexil_core::time::parse_rfc3339(&row.created_at).unwrap_or(now);
    let from = (now - window).max(started);
    let from = from - from.rem_euclid(MINUTE_MS);
    let totals =
        rows::minute_totals(conn, &row.environment_id, &row.flag_key, from, &guard.event).await?;
    let mut variations: BTreeMap<String, Reading> = [&row.treatment, &row.control]
        .into_iter()
        .map(|v| (v.clone(), Reading::default()))
        .collect();
    for (variation, event_key, count) in totals {
        let Some(reading) = variations.get_mut(&variation) else {
            continue;
        };
        if event_key.is_empty() {
            reading.evaluations = reading.evaluations.saturating_add(count);
        } else {
            reading.events = reading.events.saturating_add(count);
        }
    }
    for reading in variations.values_mut() {
        reading.rate =
            (reading.evaluations > 0).then(|| reading.events as f64 / reading.evaluations as f64);
    }
    let (verdict, message) = judge(&guard, &row.treatment, &row.control, &variations);
    Ok(Some(Readings {
        from: vexil_core::time::format_rfc3339(from),
        at: vexil_core::time::format_rfc3339(now),
        variations,
        verdict,
        message,
    }))
}

/// The guard's verdict on readings, in words.
fn judge(
    guard: &Guard,
    treatment: &str,
    control: &str,
    variations: &BTreeMap<String, Reading>,
) -> (Verdict, String) {
    let t = variations.get(treatment).cloned().unwrap_or_default();
    let c = variations.get(control).cloned().unwrap_or_default();
    let need = i64::try_from(guard.min_samples).unwrap_or(i64::MAX);
    let event = &guard.event;
    let waiting = |v: &str, r: &Reading| {
        (
            Verdict::Waiting,
            format!(
                "waiting for {need} evaluations of {v} ({} so far)",
                r.evaluations
            ),
        )
    };
    if t.evaluations < need {
        return waiting(treatment, &t);
    }
    if guard.relative_to_control && c.evaluations < need {
        return waiting(control, &c);
    }
    let rate_t = t.rate.unwrap_or(0.0);
    let of_t = format!(
        "{event} rate of {treatment} is {} ({} of {})",
        rate_text(rate_t),
        t.events,
        t.evaluations
    );
    if guard.relative_to_control {
        let rate_c = c.rate.unwrap_or(0.0);
        let over = rate_t - rate_c;
        let text = format!(
            "{of_t}, {} of {control} ({} of {}): {} points apart, {} allowed",
            rate_text(rate_c),
            c.events,
            c.evaluations,
            rate_text(over).trim_end_matches('%'),
            rate_text(guard.max_rate).trim_end_matches('%'),
        );
        return match over > guard.max_rate {
            true => (Verdict::Tripped, text),
            false => (Verdict::Healthy, text),
        };
    }
    match rate_t > guard.max_rate {
        true => (
            Verdict::Tripped,
            format!("{of_t}, above the {} allowed", rate_text(guard.max_rate)),
        ),
        false => (
            Verdict::Healthy,
            format!("{of_t}, within {}", rate_text(guard.max_rate)),
        ),
    }
}

/// A step of a plan's life.
#[derive(Debug, Clone)]
enum Step {
    Advance,
    Pause,
    Resume,
    Rollback(String),
    Cancel,
}

/// Starts a release plan for the flag in the environment.
pub(crate) async fn start(
    store: &Store,
    by: &By,
    (flag_id, env_id): (&str, &str),
    input: NewPlan,
) -> Result<Plan> {
    check_comment(input.comment.as_deref())?;
    let stages = input.stages.unwrap_or_else(default_stages);
    check_stages(&stages, input.auto_advance)?;
    if let Some(guard) = &input.guard {
        check_guard(guard)?;
    }
    let bucket_by = input.bucket_by.unwrap_or_else(|| "targetingKey".into());
    if bucket_by.trim().is_empty()
        || bucket_by.trim() != bucket_by
        || bucket_by.chars().count() > 200
    {
        return Err(Error::invalid_field(
            "bucket_by",
            "must be a context attribute name of 1 to 200 characters, without spaces around it",
        ));
    }
    let mut tx = store.write().await?;
    let (flag, before) = flag_configs::load(tx.conn(), flag_id, env_id).await?;
    let treatment = variation_of(&flag, "treatment", input.treatment, "on")?;
    let control = variation_of(&flag, "control", input.control, "off")?;
    if treatment == control {
        return Err(Error::invalid_field(
            "control",
            "must differ from the treatment",
        ));
    }
    if flag.archived {
        return Err(Error::conflict(
            format!("flag '{}' is archived; restore it first", flag.key),
            json!({"archived": true}),
        ));
    }
    let env = found(
        environments::get(tx.conn(), env_id).await?,
        "environment",
        env_id,
    )?;
    if env.requires_approval {
        return Err(Error::Refused {
            code: "approval_required",
            message: format!(
                "environment '{}' requires approval, and a release plan changes the \
                 configuration by itself as it advances: release plans cannot run there",
                env.key
            ),
            details: json!({"environment_id": env.id}),
        });
    }
    if rows::live_for(tx.conn(), flag_id, env_id).await?.is_some() {
        return Err(Error::conflict(
            format!(
                "a release plan of '{}' is already running (or paused) in '{}'",
                flag.key, env.key
            ),
            json!({"flag_id": flag_id, "environment_id": env_id}),
        ));
    }
    let organization_id = by
        .meta
        .organization_id
        .clone()
        .ok_or_else(|| Error::internal("route without a resolved organization"))?;
    let now = now_rfc3339();
    let last = stages.len() - 1;
    let row = PlanRow {
        id: new_id(),
        flag_id: flag.id.clone(),
        environment_id: env.id.clone(),
        project_id: env.project_id.clone(),
        organization_id,
        flag_key: flag.key.clone(),
        treatment,
        control,
        bucket_by,
        stages: serde_json::to_string(&stages)?,
        auto_advance: input.auto_advance,
        guard: input
            .guard
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
        // A plan of one stage is done as soon as it starts.
        status: match last {
            0 => PlanStatus::Completed,
            _ => PlanStatus::Running,
        },
        stage: 0,
        stage_started_at: now.clone(),
        ended_at: (last == 0).then(|| now.clone()),
        reason: None,
        readings: None,
        comment: input.comment.clone(),
        created_by: serde_json::to_string(&by.actor)?,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut config = before.config.clone();
    config.enabled = true;
    config.fallthrough = serve_at(&row, &stages, 0);
    if let Some(guard) = &input.guard
        && !config.watch_events.contains(&guard.event)
    {
        // The flag watches the guard's event, so that tracked events are attributed to it.
        config.watch_events.push(guard.event.clone());
    }
    let text = format!(
        "release plan started: {} of {} to {}{}",
        percent(stages[0].weight),
        flag.key,
        row.treatment,
        comment_tail(input.comment.as_deref())
    );
    let change = by.because(Some(&text)).by_release();
    commit_in(
        tx.conn(),
        &flag,
        &before,
        config,
        change,
        Some(Action::FlagConfigUpdate),
    )
    .await
    .map_err(|e| match e {
        Error::Invalid { message, fields } if fields.contains_key("watch_events") => {
            Error::invalid_field(
                "guard.event",
                format!("the configuration watches too many events to add this one ({message})"),
            )
        }
        other => other,
    })?;
    rows::insert(tx.conn(), &row).await?;
    let plan = view(&row, None)?;
    by.because(input.comment.as_deref())
        .record(tx.conn(), Action::ReleaseStart, &row.id, None, Some(&plan))
        .await?;
    let shown = live_view(tx.conn(), &row).await?;
    tx.commit().await?;
    Ok(shown)
}

fn comment_tail(comment: Option<&str>) -> String {
    match comment {
        Some(c) if !c.is_empty() => format!(": {c}"),
        _ => String::new(),
    }
}

/// The plan of a flag in an environment: the live one, else the latest that ended; with
/// its guard's readings now when live.
pub(crate) async fn get(store: &Store, flag_id: &str, env_id: &str) -> Result<Plan> {
    let mut conn = store.read().await?;
    flag_configs::load(&mut conn, flag_id, env_id).await?;
    let row = rows::current(&mut conn, flag_id, env_id).await?;
    let row = row.ok_or_else(no_plan)?;
    live_view(&mut conn, &row).await
}

fn no_plan() -> Error {
    Error::NotFound("no release plan has run for this flag in this environment".into())
}

/// The plan with live readings when it is live.
async fn live_view(conn: &mut Conn, row: &PlanRow) -> Result<Plan> {
    let readings = match row.status.is_live() {
        true => readings(conn, row, now_ms()).await?,
        false => None,
    };
    view(row, readings)
}

/// `status` as given in a query.
pub(crate) fn parse_statuses(status: Option<&str>) -> Result<Vec<PlanStatus>> {
    let Some(text) = status.filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|s| {
            PlanStatus::parse(s.trim()).ok_or_else(|| {
                Error::invalid_field(
                    "status",
                    "must be running, paused, completed, rolled_back or cancelled (comma-separated)",
                )
            })
        })
        .collect()
}

/// A page of a project's release plans, newest first.
pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    environment_id: Option<&str>,
    statuses: &[PlanStatus],
    (limit, offset): (i64, i64),
) -> Result<(Vec<Plan>, i64)> {
    let mut conn = store.read().await?;
    let (rows, total) = rows::list(
        &mut conn,
        project_id,
        environment_id,
        statuses,
        (limit, offset),
    )
    .await?;
    let mut plans = Vec::with_capacity(rows.len());
    for row in &rows {
        plans.push(live_view(&mut conn, row).await?);
    }
    Ok((plans, total))
}

/// Moves the live plan on to its next stage now (the last stage completes it).
pub(crate) async fn advance(
    store: &Store,
    by: &By,
    at: (&str, &str),
    expected: Option<i64>,
) -> Result<Plan> {
    act(store, by, at, expected, Step::Advance).await
}

/// Stops the plan from advancing by itself; the guard keeps watching.
pub(crate) async fn pause(
    store: &Store,
    by: &By,
    at: (&str, &str),
    expected: Option<i64>,
) -> Result<Plan> {
    act(store, by, at, expected, Step::Pause).await
}

/// Lets the plan advance by itself again; the stage's time counts from now.
pub(crate) async fn resume(
    store: &Store,
    by: &By,
    at: (&str, &str),
    expected: Option<i64>,
) -> Result<Plan> {
    act(store, by, at, expected, Step::Resume).await
}

/// Rolls the plan back: every unit outside targets and rules gets the control.
pub(crate) async fn rollback(
    store: &Store,
    by: &By,
    at: (&str, &str),
    expected: Option<i64>,
    input: RollbackInput,
) -> Result<Plan> {
    if input.reason.trim().is_empty() {
        return Err(Error::invalid_field(
            "reason",
            "is required: say why the release is rolled back",
        ));
    }
    check_comment(Some(&input.reason))
        .map_err(|_| Error::invalid_field("reason", "must be at most 1000 characters"))?;
    let reason = input.reason.trim().to_owned();
    act(store, by, at, expected, Step::Rollback(reason)).await
}

/// Cancels the plan, leaving the configuration as it is.
pub(crate) async fn cancel(
    store: &Store,
    by: &By,
    at: (&str, &str),
    expected: Option<i64>,
) -> Result<Plan> {
    act(store, by, at, expected, Step::Cancel).await
}

/// A person's step on the live plan of a flag in an environment; with `expected`, only
/// if the plan is still at that version (a step on a plan that moved meanwhile — the guard
/// advanced it — is refused rather than taken twice).
async fn act(
    store: &Store,
    by: &By,
    (flag_id, env_id): (&str, &str),
    expected: Option<i64>,
    step: Step,
) -> Result<Plan> {
    let mut tx = store.write().await?;
    flag_configs::load(tx.conn(), flag_id, env_id).await?;
    let row = rows::current(tx.conn(), flag_id, env_id).await?;
    let row = row.ok_or_else(no_plan)?;
    check_version(expected, row.version)?;
    // A plan that ends keeps the readings of the moment.
    let readings = match row.status.is_live() {
        true => readings(tx.conn(), &row, now_ms()).await?,
        false => None,
    };
    let after = step_in(tx.conn(), by, &row, step, readings).await?;
    let shown = live_view(tx.conn(), &after).await?;
    tx.commit().await?;
    Ok(shown)
}

/// Takes `step` on the plan in the open write transaction: the configuration change it
/// makes (if any), the plan's new state and its audit entry.
async fn step_in(
    conn: &mut Conn,
    by: &By,
    before: &PlanRow,
    step: Step,
    readings: Option<Readings>,
) -> Result<PlanRow> {
    let verb = match &step {
        Step::Advance => "advanced",
        Step::Pause => "paused",
        Step::Resume => "resumed",
        Step::Rollback(..) => "rolled back",
        Step::Cancel => "cancelled",
    };
    let allowed = match &step {
        Step::Pause => before.status == PlanStatus::Running,
        Step::Resume => before.status == PlanStatus::Paused,
        _ => before.status.is_live(),
    };
    if !allowed {
        return Err(Error::conflict(
            format!(
                "the release plan is {}; it cannot be {verb}",
                before.status.as_str().replace('_', " ")
            ),
            json!({"status": before.status}),
        ));
    }
    let stages = stages_of(before)?;
    let now = now_rfc3339();
    let mut after = PlanRow {
        version: before.version + 1,
        updated_at: now.clone(),
        ..before.clone()
    };
    let (action, serve, text) = match step {
        Step::Advance => {
            let next = stage_index(before) + 1;
            after.stage = i64::try_from(next).unwrap_or(i64::MAX);
            after.stage_started_at = now.clone();
            let last = next + 1 >= stages.len();
            if last {
                after.status = PlanStatus::Completed;
                after.ended_at = Some(now.clone());
            }
            let weight = stages.get(next).map_or(FULL, |s| s.weight);
            let text = format!(
                "release plan {}: stage {} of {}, {} to {}",
                if last { "completed" } else { "advanced" },
                next + 1,
                stages.len(),
                percent(weight),
                before.treatment
            );
            let action = match last {
                true => Action::ReleaseComplete,
                false => Action::ReleaseAdvance,
            };
            (action, Some(serve_at(before, &stages, next)), text)
        }
        Step::Pause => {
            after.status = PlanStatus::Paused;
            (Action::ReleasePause, None, String::new())
        }
        Step::Resume => {
            after.status = PlanStatus::Running;
            // The stage's time counts again from now: a pause is a doubt.
            after.stage_started_at = now.clone();
            (Action::ReleaseResume, None, String::new())
        }
        Step::Rollback(reason) => {
            after.status = PlanStatus::RolledBack;
            after.ended_at = Some(now.clone());
            after.reason = Some(reason.clone());
            let text = format!("release plan rolled back: {reason}");
            (
                Action::ReleaseRollback,
                Some(Serve::variation(before.control.clone())),
                text,
            )
        }
        Step::Cancel => {
            after.status = PlanStatus::Cancelled;
            after.ended_at = Some(now.clone());
            (Action::ReleaseCancel, None, String::new())
        }
    };
    if after.ended_at.is_some() {
        after.readings = readings.as_ref().map(serde_json::to_string).transpose()?;
    }
    if let Some(serve) = serve {
        let (flag, config) =
            flag_configs::load(conn, &before.flag_id, &before.environment_id).await?;
        serve_in(conn, by, (&flag, &config), serve, &text).await?;
    }
    if !rows::update(conn, &after).await? {
        return Err(Error::conflict(
            "the release plan changed meanwhile; read it again",
            json!({"status": before.status}),
        ));
    }
    let comment = after
        .reason
        .as_deref()
        .filter(|_| action == Action::ReleaseRollback);
    by.because(comment)
        .record(
            conn,
            action,
            &after.id,
            Some(&view(before, None)?),
            Some(&view(&after, None)?),
        )
        .await?;
    Ok(after)
}

/// Sets the fallthrough of the configuration, as the plan.
async fn serve_in(
    conn: &mut Conn,
    by: &By,
    (flag, before): (&Flag, &FlagConfig),
    serve: Serve,
    text: &str,
) -> Result<()> {
    let mut config = before.config.clone();
    config.fallthrough = serve;
    let text: String = text.chars().take(1000).collect();
    let change = by.because(Some(&text)).by_release();
    commit_in(
        conn,
        flag,
        before,
        config,
        change,
        Some(Action::FlagConfigUpdate),
    )
    .await?;
    Ok(())
}

/// What a live plan owns of a configuration: its fallthrough, and the guard's event in
/// `watch_events` (without it the guard would see no events and call the plan healthy).
/// A change of either by anyone but the plan is refused with `release_running`.
pub(crate) async fn refuse_owned(
    conn: &mut Conn,
    before: &FlagConfig,
    config: &Config,
) -> Result<()> {
    let touches = config.fallthrough != before.config.fallthrough
        || config.watch_events != before.config.watch_events;
    if !touches {
        return Ok(());
    }
    let Some(plan) = rows::live_for(conn, &before.flag_id, &before.environment_id).await? else {
        return Ok(());
    };
    let (flag, env) = (&before.flag_key, &before.environment_key);
    let message = if config.fallthrough != before.config.fallthrough {
        format!(
            "a release plan owns the default (fallthrough) of '{flag}' in '{env}' while it runs \
             or is paused; targets and rules stay yours. Cancel the plan to change the default"
        )
    } else {
        match guard_of(&plan)? {
            Some(g) if !config.watch_events.contains(&g.event) => format!(
                "the release plan of '{flag}' in '{env}' guards on '{}' events: the \
                 configuration keeps watching them while the plan runs or is paused",
                g.event
            ),
            _ => return Ok(()),
        }
    };
    Err(Error::Refused {
        code: "release_running",
        message,
        details: json!({"flag_id": before.flag_id, "environment_id": before.environment_id, "release_id": plan.id}),
    })
}

/// `release_running` when a plan of the flag is live (archiving it would leave the plan
/// stuck).
pub(crate) async fn refuse_archiving(conn: &mut Conn, flag: &Flag) -> Result<()> {
    let live = rows::live_where(conn, rows::LiveOf::Flag, &flag.id).await?;
    if live.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        code: "release_running",
        message: format!(
            "'{}' has {} release plan(s) running or paused: cancel or roll them back before \
             archiving it",
            flag.key,
            live.len()
        ),
        details: json!({"release_ids": live.iter().map(|p| &p.id).collect::<Vec<_>>()}),
    })
}

/// Invalid when the flag's new variations drop a treatment or control a live plan names.
pub(crate) async fn refuse_dropping_variations(conn: &mut Conn, flag: &Flag) -> Result<()> {
    for plan in rows::live_where(conn, rows::LiveOf::Flag, &flag.id).await? {
        for (role, key) in [("treatment", &plan.treatment), ("control", &plan.control)] {
            if !flag.variations.iter().any(|v| &v.key == key) {
                return Err(Error::invalid_field(
                    "variations",
                    format!(
                        "'{key}' is the {role} of a release plan that is running or paused; \
                         cancel the plan first"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `release_running` when turning on approval in an environment where plans are live
/// (their steps are never held, which approval forbids).
pub(crate) async fn refuse_approval_with_plans(store: &Store, env_id: &str) -> Result<()> {
    let mut conn = store.read().await?;
    let live = rows::live_where(&mut conn, rows::LiveOf::Environment, env_id).await?;
    if live.is_empty() {
        return Ok(());
    }
    let flags: Vec<&str> = live.iter().map(|p| p.flag_key.as_str()).collect();
    Err(Error::Refused {
        code: "release_running",
        message: format!(
            "release plans are running or paused here ({}): they change configurations by \
             themselves, which approval forbids; cancel or finish them first",
            flags.join(", ")
        ),
        details: json!({"release_ids": live.iter().map(|p| &p.id).collect::<Vec<_>>()}),
    })
}

/// Claims (or renews) the release guard's lease for `node` until `until` (ms); whether
/// `node` holds it.
pub(crate) async fn claim_guard(store: &Store, node: &str, now: i64, until: i64) -> Result<bool> {
    let mut conn = store.read().await?;
    Ok(rows::claim_lease(&mut conn, GUARD_LEASE, node, now, until).await?)
}

/// The guard's lease.
const GUARD_LEASE: &str = "release-guard";

/// Whether any release plan is live (the guard's cheap first look).
pub(crate) async fn any_live(store: &Store) -> Result<bool> {
    let mut conn = store.read().await?;
    Ok(rows::any_live(&mut conn).await?)
}

/// The release guard's work at `now`: rolls back every live plan whose guard tripped and
/// advances every running plan that advances by itself and whose stage lasted its
/// `min_duration` with a healthy guard (or none) while its configuration is on. Decisions
/// are read without a lock and taken in one write transaction, each only if its plan did
/// not change meanwhile. Returns the steps taken.
pub(crate) async fn check_all(store: &Store) -> Result<usize> {
    let now = now_ms();
    let mut decided = Vec::new();
    {
        let mut conn = store.read().await?;
        for row in rows::live(&mut conn).await? {
            let readings = readings(&mut conn, &row, now).await?;
            if let Some(r) = readings.as_ref().filter(|r| r.verdict == Verdict::Tripped) {
                let reason = format!("the guard tripped: {}", r.message);
                decided.push((row, Step::Rollback(reason), readings));
                continue;
            }
            if row.status != PlanStatus::Running || !row.auto_advance {
                continue;
            }
            let stages = stages_of(&row)?;
            let due = advance_due_at(&row, &stages).is_some_and(|at| at <= now);
            let healthy = readings
                .as_ref()
                .is_none_or(|r| r.verdict == Verdict::Healthy);
            if !due || !healthy {
                continue;
            }
            let on =
                crate::store::flags::configs::get(&mut conn, &row.flag_id, &row.environment_id)
                    .await?
                    .is_some_and(|c| c.config.enabled);
            if on {
                decided.push((row, Step::Advance, readings));
            }
        }
    }
    if decided.is_empty() {
        return Ok(0);
    }
    // One transaction per step: a step refused half-way leaves nothing behind.
    let mut taken = 0;
    for (row, step, readings) in decided {
        let mut tx = store.write().await?;
        let Some(current) = rows::get(tx.conn(), &row.id).await? else {
            continue;
        };
        if current.version != row.version {
            continue;
        }
        let mut by = By::system();
        by.actor = Actor::release_guard();
        by.meta.organization_id = Some(row.organization_id.clone());
        match step_in(tx.conn(), &by, &current, step, readings).await {
            Ok(_) => {
                tx.commit().await?;
                taken += 1;
            }
            Err(Error::Unavailable) => return Err(Error::Unavailable),
            Err(Error::Internal(e)) => return Err(Error::Internal(e)),
            // A step that no longer validates is logged and retried at the next check.
            Err(e) => {
                tracing::warn!(plan = %row.id, flag = %row.flag_key, error = %e, "release step refused");
            }
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_units() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("15m"), Some(900_000));
        assert_eq!(parse_duration("24h"), Some(86_400_000));
        assert_eq!(parse_duration("7d"), Some(604_800_000));
        assert_eq!(parse_duration("0s"), Some(0));
        for bad in [
            "", "h", "1", "1.5h", "-1h", "1h30m", "1 h", "9999999d", "1w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    fn reading(evaluations: i64, events: i64) -> Reading {
        Reading {
            evaluations,
            events,
            rate: (evaluations > 0).then(|| events as f64 / evaluations as f64),
        }
    }

    fn guard(relative: bool) -> Guard {
        Guard {
            event: "error".into(),
            max_rate: 0.05,
            relative_to_control: relative,
            window: "1h".into(),
            min_samples: 100,
        }
    }

    fn verdict(g: &Guard, on: Reading, off: Reading) -> (Verdict, String) {
        let readings = BTreeMap::from([("on".to_owned(), on), ("off".to_owned(), off)]);
        judge(g, "on", "off", &readings)
    }

    #[test]
    fn the_guard_waits_for_samples_then_trips_above_the_rate() {
        let g = guard(false);
        let (v, m) = verdict(&g, reading(99, 50), reading(0, 0));
        assert_eq!(v, Verdict::Waiting);
        assert_eq!(m, "waiting for 100 evaluations of on (99 so far)");
        assert_eq!(
            verdict(&g, reading(100, 5), reading(0, 0)).0,
            Verdict::Healthy,
            "5 % is allowed"
        );
        let (v, m) = verdict(&g, reading(100, 6), reading(0, 0));
        assert_eq!(v, Verdict::Tripped);
        assert_eq!(m, "error rate of on is 6% (6 of 100), above the 5% allowed");
    }

    #[test]
    fn relative_to_control_compares_the_rates() {
        let g = guard(true);
        assert_eq!(
            verdict(&g, reading(200, 20), reading(50, 5)).0,
            Verdict::Waiting,
            "the control needs samples too"
        );
        // 10 % against 6 %: 4 points apart, within 5.
        assert_eq!(
            verdict(&g, reading(200, 20), reading(100, 6)).0,
            Verdict::Healthy
        );
        // 12 % against 6 %: 6 points apart.
        let (v, m) = verdict(&g, reading(200, 24), reading(100, 6));
        assert_eq!(v, Verdict::Tripped, "{m}");
    }

    #[test]
    fn stages_only_move_forward_and_the_last_is_where_the_plan_ends() {
        assert!(check_stages(&default_stages(), true).is_ok());
        let s = |w, d: Option<&str>| Stage {
            weight: w,
            min_duration: d.map(str::to_owned),
        };
        assert!(
            check_stages(&[s(0, Some("1h")), s(100_000, None)], true).is_ok(),
            "a 0 % stage (allow list only) first"
        );
        assert!(
            check_stages(&[s(1000, None), s(100_000, None)], false).is_ok(),
            "advanced by hand"
        );
        assert!(check_stages(&[s(1000, Some("1h")), s(1000, None)], true).is_err());
        assert!(check_stages(&[s(100_000, None)], true).is_ok(), "one stage");
    }
}
