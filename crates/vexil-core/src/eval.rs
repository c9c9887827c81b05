//! Evaluation of docs/evaluation.md: `(flag key, context, now) → Detail`, in the order off →
//! prerequisites → targets → rules → fallthrough, with bucketing for rollouts.

use serde::Serialize;
use serde_json::Value;

use crate::clause::{Attr, Env, MAX_DEPTH, Segments};
use crate::compile::{CompiledFlag, CompiledSegment, CompiledServe, Snapshot};
use crate::context::Context;
use crate::counts::Counter;
use crate::hash::{Murmur3, bucket_of_hash, format_int};
use crate::model::FlagType;

/// Why a value was served (docs/evaluation.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonKind {
    Off,
    PrerequisiteFailed,
    TargetMatch,
    RuleMatch,
    Fallthrough,
    Error,
}

/// Evaluation errors. They are results, not failures: the caller serves its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    TargetingKeyMissing,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
        }
    }
}

/// The reason object of an evaluation result; absent parts are skipped in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reason<'s> {
    pub kind: ReasonKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<&'s str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<usize>,
    pub in_rollout: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prerequisite_key: Option<&'s str>,
}

impl Reason<'_> {
    fn simple(kind: ReasonKind) -> Self {
        Reason {
            kind,
            rule_id: None,
            rule_index: None,
            in_rollout: false,
            error_code: None,
            prerequisite_key: None,
        }
    }

    fn error(code: ErrorCode) -> Self {
        Reason {
            error_code: Some(code),
            ..Reason::simple(ReasonKind::Error)
        }
    }
}

/// The outcome of evaluating one flag; borrows from the snapshot, so it costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detail<'s> {
    /// The served value; `None` on error (the caller's default applies).
    pub value: Option<&'s Value>,
    /// The served variation's key; `None` on error.
    pub variation: Option<&'s str>,
    pub reason: Reason<'s>,
    /// The flag configuration's version; `None` when the flag was not found.
    pub flag_version: Option<u64>,
    /// The flag's type; `None` when the flag was not found.
    pub flag_type: Option<FlagType>,
    is_static: bool,
    counter: Counter<'s>,
}

impl<'s> Detail<'s> {
    fn error(code: ErrorCode, flag: Option<&'s CompiledFlag>) -> Self {
        Detail {
            value: None,
            variation: None,
            reason: Reason::error(code),
            flag_version: flag.map(|f| f.version),
            flag_type: flag.map(|f| f.kind),
            is_static: false,
            counter: Counter::default(),
        }
    }

    /// The result for a flag that does not exist (or that the caller may not see).
    pub fn flag_not_found() -> Detail<'static> {
        Detail::error(ErrorCode::FlagNotFound, None)
    }

    /// The OFREP reason of docs/evaluation.md ("Results and reasons").
    pub fn ofrep_reason(&self) -> &'static str {
        match self.reason.kind {
            ReasonKind::Off | ReasonKind::PrerequisiteFailed => "DISABLED",
            ReasonKind::TargetMatch | ReasonKind::RuleMatch if self.reason.in_rollout => "SPLIT",
            ReasonKind::TargetMatch | ReasonKind::RuleMatch => "TARGETING_MATCH",
            ReasonKind::Fallthrough if self.reason.in_rollout => "SPLIT",
            ReasonKind::Fallthrough if self.is_static => "STATIC",
            ReasonKind::Fallthrough => "DEFAULT",
            ReasonKind::Error => "ERROR",
        }
    }

    /// Counts this result as one evaluation served of its flag's variation (for insights);
    /// an error result counts nothing. One relaxed atomic add, no lock, no allocation.
    pub fn count(&self) {
        self.counter.add();
    }

    /// The JSON record of `POST /api/v1/evaluate` and `vexil eval`.
    pub fn record<'k>(&self, flag_key: &'k str) -> Evaluation<'k, 's> {
        Evaluation {
            flag_key,
            value: self.value,
            variation: self.variation,
            reason: self.reason,
            flag_version: self.flag_version,
        }
    }
}

/// One evaluation result as JSON: `{"flag_key", "value", "variation", "reason", "flag_version"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation<'k, 's> {
    pub flag_key: &'k str,
    pub value: Option<&'s Value>,
    pub variation: Option<&'s str>,
    pub reason: Reason<'s>,
    pub flag_version: Option<u64>,
}

/// What a caller may know about a flag without evaluating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagInfo<'s> {
    pub key: &'s str,
    pub kind: FlagType,
    pub client_side: bool,
    pub version: u64,
}

impl Segments for Snapshot {
    fn contains(&self, key: &str, env: &Env<'_>, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.segments
            .get(key)
            .is_some_and(|s| segment_contains(s, self, env, depth))
    }
}

fn segment_contains(seg: &CompiledSegment, snap: &Snapshot, env: &Env<'_>, depth: usize) -> bool {
    if let Some(tk) = env.ctx.targeting_key() {
        if seg.included.contains(tk) {
            return true;
        }
        if seg.excluded.contains(tk) {
            return false;
        }
    }
    seg.rules
        .iter()
        .any(|clauses| clauses.iter().all(|c| c.matches(env, snap, depth)))
}

impl Snapshot {
    /// Evaluates flag `key` for `context` at `now_ms` (milliseconds since the Unix epoch).
    pub fn evaluate<'s>(&'s self, key: &str, context: &Context, now_ms: i64) -> Detail<'s> {
        let env = Env {
            ctx: context,
            now: Value::from(now_ms),
        };
        match self.flags.get(key) {
            Some(flag) if !flag.archived => self.eval_flag(flag, &env, 0),
            _ => Detail::error(ErrorCode::FlagNotFound, None),
        }
    }

    /// Evaluates every (non-archived) flag for one context, in no particular order.
    pub fn evaluate_all<'s, 'c>(
        &'s self,
        context: &'c Context,
        now_ms: i64,
    ) -> impl Iterator<Item = (FlagInfo<'s>, Detail<'s>)> + use<'s, 'c> {
        let env = Env {
            ctx: context,
            now: Value::from(now_ms),
        };
        self.flags
            .values()
            .filter(|f| !f.archived)
            .map(move |f| (info(f), self.eval_flag(f, &env, 0)))
    }

    /// Metadata of flag `key`, if it exists and is not archived.
    pub fn flag_info(&self, key: &str) -> Option<FlagInfo<'_>> {
        self.flags.get(key).filter(|f| !f.archived).map(|f| info(f))
    }

    /// Metadata of every non-archived flag.
    pub fn flags(&self) -> impl Iterator<Item = FlagInfo<'_>> {
        self.flags.values().filter(|f| !f.archived).map(|f| info(f))
    }

    fn eval_flag<'s>(&'s self, flag: &'s CompiledFlag, env: &Env<'_>, depth: usize) -> Detail<'s> {
        let served = |index: usize, reason: Reason<'s>| Detail {
            value: Some(&flag.variations[index].1),
            variation: Some(&*flag.variations[index].0),
            reason,
            flag_version: Some(flag.version),
            flag_type: Some(flag.kind),
            is_static: flag.is_static,
            counter: Counter(flag.counts.cell(index)),
        };
        if !flag.enabled {
            return served(flag.off, Reason::simple(ReasonKind::Off));
        }
        for p in flag.prereqs.iter() {
            if !self.prerequisite_holds(&p.flag, &p.variations, env, depth) {
                let reason = Reason {
                    prerequisite_key: Some(&p.flag),
                    ..Reason::simple(ReasonKind::PrerequisiteFailed)
                };
                return served(flag.off, reason);
            }
        }
        if !flag.targets.is_empty()
            && let Some(tk) = env.ctx.targeting_key()
            && let Some(&index) = flag.targets.get(tk)
        {
            return served(index, Reason::simple(ReasonKind::TargetMatch));
        }
        for (i, rule) in flag.rules.iter().enumerate() {
            if rule.clauses.iter().all(|c| c.matches(env, self, 0)) {
                let base = Reason {
                    rule_id: rule.id.as_deref(),
                    rule_index: Some(i),
                    ..Reason::simple(ReasonKind::RuleMatch)
                };
                return serve(flag, &rule.serve, env, base, &served);
            }
        }
        serve(
            flag,
            &flag.fallthrough,
            env,
            Reason::simple(ReasonKind::Fallthrough),
            &served,
        )
    }

    fn prerequisite_holds(
        &self,
        key: &str,
        variations: &[Box<str>],
        env: &Env<'_>,
        depth: usize,
    ) -> bool {
        if depth >= MAX_DEPTH {
            return false;
        }
        let Some(flag) = self.flags.get(key).filter(|f| !f.archived && f.enabled) else {
            return false;
        };
        let detail = self.eval_flag(flag, env, depth + 1);
        detail
            .variation
            .is_some_and(|v| variations.iter().any(|w| &**w == v))
    }
}

fn info(f: &CompiledFlag) -> FlagInfo<'_> {
    FlagInfo {
        key: &f.key,
        kind: f.kind,
        client_side: f.client_side,
        version: f.version,
    }
}

fn serve<'s>(
    flag: &'s CompiledFlag,
    serve: &'s CompiledServe,
    env: &Env<'_>,
    reason: Reason<'s>,
    served: &dyn Fn(usize, Reason<'s>) -> Detail<'s>,
) -> Detail<'s> {
    match serve {
        CompiledServe::Fixed(index) => served(*index, reason),
        CompiledServe::Rollout {
            bucket_by,
            salt,
            buckets,
        } => {
            let Some(b) = bucket_for(bucket_by, salt, env) else {
                return Detail::error(ErrorCode::TargetingKeyMissing, Some(flag));
            };
            // Weights sum to 100000 > bucket, so some entry always matches; the fallback
            // to the last entry only guards against a snapshot built without validation.
            let index = buckets
                .iter()
                .find(|(upto, _)| b < *upto)
                .or(buckets.last())
                .map(|(_, i)| *i);
            match index {
                Some(index) => served(
                    index,
                    Reason {
                        in_rollout: true,
                        ..reason
                    },
                ),
                None => Detail::error(ErrorCode::TargetingKeyMissing, Some(flag)),
            }
        }
    }
}

/// The bucket of the context's `bucket_by` value: strings as is, integers in decimal.
fn bucket_for(attr: &Attr, salt: &str, env: &Env<'_>) -> Option<u32> {
    let mut h = Murmur3::new(0);
    h.write(salt.as_bytes());
    h.write(b".");
    match attr.lookup(env)? {
        Value::String(s) => h.write(s.as_bytes()),
        Value::Number(n) => {
            let mut buf = [0u8; 20];
            if let Some(u) = n.as_u64() {
                h.write(format_int(&mut buf, false, u));
            } else {
                let i = n.as_i64()?;
                h.write(format_int(&mut buf, i < 0, i.unsigned_abs()));
            }
        }
        _ => return None,
    }
    Some(bucket_of_hash(h.finish()))
}
