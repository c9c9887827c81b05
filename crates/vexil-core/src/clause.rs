//! Clauses compiled for evaluation: operator values parsed once (regexes, semvers, CIDRs,
//! dates, numbers), attribute paths split once, and the matching rules of docs/concepts.md.
//! How each operator reads a value is in `operand.rs`.

use std::cmp::Ordering;
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use semver::Version;
use serde_json::Value;

use crate::context::{Context, short_eq};

use crate::error::ValidationError;
use crate::model::{Clause, Op};
use crate::operand::{Cidr, ContextVersion, date_of, decimal_of, number_of, parse_clause_version};

/// The evaluation time, as epoch milliseconds: as an attribute it always holds that time,
/// and as a `before`/`after` clause value it stands for it (`trial_ends_at after $now`).
pub const NOW_ATTRIBUTE: &str = "$now";

/// Regexes are bounded so that a hostile pattern cannot take unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Segments may nest; this bounds recursion should a cycle ever slip past validation.
pub(crate) const MAX_DEPTH: usize = 64;

/// What evaluation needs besides the clause: the context, the time and segment lookup.
pub(crate) struct Env<'c> {
    pub ctx: &'c Context,
    /// The evaluation time as a JSON integer (epoch milliseconds), what `$now` looks up.
    pub now: Value,
}

impl Env<'_> {
    /// The evaluation time in epoch milliseconds.
    #[inline]
    fn now_ms(&self) -> Option<i64> {
        self.now.as_i64()
    }
}

/// Looks up segment membership by key; implemented by the snapshot.
pub(crate) trait Segments {
    fn contains(&self, segment: &str, env: &Env<'_>, depth: usize) -> bool;
}

/// An attribute reference: a plain name, a dotted path into nested objects, or `$now`.
#[derive(Debug, Clone)]
pub(crate) enum Attr {
    Name(Box<str>),
    Path {
        full: Box<str>,
        parts: Box<[Box<str>]>,
    },
    Now,
}

impl Attr {
    pub(crate) fn new(name: &str) -> Attr {
        if name == NOW_ATTRIBUTE {
            Attr::Now
        } else if name.contains('.') {
            Attr::Path {
                full: name.into(),
                parts: name.split('.').map(Box::from).collect(),
            }
        } else {
            Attr::Name(name.into())
        }
    }

    /// The attribute's value in the context; JSON `null` counts as absent.
    #[inline]
    pub(crate) fn lookup<'c>(&self, env: &'c Env<'_>) -> Option<&'c Value> {
        let found = match self {
            Attr::Name(n) => env.ctx.get(n),
            Attr::Path { full, parts } => walk(env.ctx, parts).or_else(|| env.ctx.get(full)),
            Attr::Now => Some(&env.now),
        };
        found.filter(|v| !v.is_null())
    }
}

fn walk<'c>(ctx: &'c Context, parts: &[Box<str>]) -> Option<&'c Value> {
    let (first, rest) = parts.split_first()?;
    let mut cur = ctx.get(first)?;
    for p in rest {
        cur = cur.as_object()?.get(&**p)?;
    }
    Some(cur)
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    #[inline]
    fn holds(self, o: Ordering) -> bool {
        match self {
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Lt => o == Ordering::Less,
            Cmp::Lte => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Gte => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrOp {
    Eq,
    StartsWith,
    EndsWith,
    Contains,
}

impl StrOp {
    #[inline]
    fn exact(self, attr: &str, v: &str) -> bool {
        let (a, b) = (attr.as_bytes(), v.as_bytes());
        match self {
            StrOp::Eq => short_eq(a, b),
            StrOp::StartsWith => a.len() >= b.len() && short_eq(&a[..b.len()], b),
            StrOp::EndsWith => a.len() >= b.len() && short_eq(&a[a.len() - b.len()..], b),
            StrOp::Contains => attr.contains(v),
        }
    }

    /// ASCII case-insensitive form; `v` is already lowercase.
    #[inline]
    fn ascii_ci(self, attr: &str, v: &str) -> bool {
        let (a, v) = (attr.as_bytes(), v.as_bytes());
        match self {
            StrOp::Eq => a.eq_ignore_ascii_case(v),
            StrOp::StartsWith => a.len() >= v.len() && a[..v.len()].eq_ignore_ascii_case(v),
            StrOp::EndsWith => a.len() >= v.len() && a[a.len() - v.len()..].eq_ignore_ascii_case(v),
            StrOp::Contains => {
                v.is_empty() || a.windows(v.len()).any(|w| w.eq_ignore_ascii_case(v))
            }
        }
    }
}

/// String operands; lowercased at compile time when the clause is case-insensitive.
#[derive(Debug, Clone)]
pub(crate) struct Strings {
    values: Box<[Box<str>]>,
    ci: bool,
}

impl Strings {
    fn test(&self, op: StrOp, attr: &str) -> bool {
        if !self.ci {
            self.values.iter().any(|v| op.exact(attr, v))
        } else if attr.is_ascii() {
            self.values.iter().any(|v| op.ascii_ci(attr, v))
        } else {
            // Full Unicode lowercasing allocates; it is only needed for non-ASCII input.
            let lower = attr.to_lowercase();
            self.values.iter().any(|v| op.exact(&lower, v))
        }
    }
}

/// The operator with its pre-parsed operands.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    In {
        strings: Strings,
        numbers: Box<[f64]>,
        bools: [bool; 2],
    },
    Str(StrOp, Strings),
    Matches(Box<[Regex]>),
    Num(Cmp, Box<[f64]>),
    Date {
        after: bool,
        values: Box<[i64]>,
        /// One of the values is `$now`, the evaluation time.
        now: bool,
    },
    Semver(Cmp, Box<[Version]>),
    InCidr(Box<[Cidr]>),
    Exists,
    InSegment(Box<[Box<str>]>),
}

/// A compiled clause.
#[derive(Debug, Clone)]
pub(crate) struct CompiledClause {
    attr: Attr,
    negate: bool,
    matcher: Matcher,
}

impl CompiledClause {
    /// Segment keys this clause refers to (for cycle and reference checks).
    pub(crate) fn segment_refs(&self) -> &[Box<str>] {
        match &self.matcher {
            Matcher::InSegment(keys) => keys,
            _ => &[],
        }
    }

    #[inline]
    pub(crate) fn matches(&self, env: &Env<'_>, segments: &dyn Segments, depth: usize) -> bool {
        match &self.matcher {
            Matcher::Exists => self.attr.lookup(env).is_some() != self.negate,
            Matcher::InSegment(keys) => {
                keys.iter().any(|k| segments.contains(k, env, depth + 1)) != self.negate
            }
            m => {
                let Some(value) = self.attr.lookup(env) else {
                    return false;
                };
                let result = match value {
                    Value::Array(items) => {
                        let mut any_comparable = None;
                        for item in items {
                            match m.test(item, env) {
                                Some(true) => {
                                    any_comparable = Some(true);
                                    break;
                                }
                                Some(false) => any_comparable = Some(false),
                                None => {}
                            }
                        }
                        any_comparable
                    }
                    v => m.test(v, env),
                };
                // Incomparable (None) is false whether negated or not.
                result.is_some_and(|r| r != self.negate)
            }
        }
    }
}

impl Matcher {
    /// Tests one scalar attribute value: `None` when the operator cannot compare its type.
    #[inline]
    fn test(&self, v: &Value, env: &Env<'_>) -> Option<bool> {
        match self {
            Matcher::In {
                strings,
                numbers,
                bools,
            } => match v {
                Value::String(s) if numbers.is_empty() => {
                    if strings.values.is_empty() {
                        None
                    } else {
                        Some(strings.test(StrOp::Eq, s))
                    }
                }
                // A string that is a plain decimal number also compares with the numbers.
                Value::String(s) => {
                    let as_string =
                        (!strings.values.is_empty()).then(|| strings.test(StrOp::Eq, s));
                    if as_string == Some(true) {
                        return as_string;
                    }
                    decimal_of(s).map(|x| numbers.contains(&x)).or(as_string)
                }
                Value::Number(n) if !numbers.is_empty() => {
                    let x = n.as_f64()?;
                    Some(numbers.contains(&x))
                }
                Value::Bool(b) if bools[0] || bools[1] => Some(bools[usize::from(*b)]),
                _ => None,
            },
            Matcher::Str(op, strings) => Some(strings.test(*op, v.as_str()?)),
            Matcher::Matches(regexes) => {
                let s = v.as_str()?;
                Some(regexes.iter().any(|r| r.is_match(s)))
            }
            Matcher::Num(cmp, numbers) => {
                let x = number_of(v)?;
                Some(
                    numbers
                        .iter()
                        .any(|y| x.partial_cmp(y).is_some_and(|o| cmp.holds(o))),
                )
            }
            Matcher::Date { after, values, now } => {
                let t = date_of(v)?;
                let beyond = |d: i64| if *after { t > d } else { t < d };
                Some(
                    values.iter().any(|&d| beyond(d)) || (*now && env.now_ms().is_some_and(beyond)),
                )
            }
            Matcher::Semver(cmp, versions) => {
                let ver = ContextVersion::of(v)?;
                Some(versions.iter().any(|w| cmp.holds(ver.cmp(w))))
            }
            Matcher::InCidr(nets) => {
                let ip: IpAddr = v.as_str()?.parse().ok()?;
                Some(nets.iter().any(|n| n.contains(ip)))
            }
            // Handled in `CompiledClause::matches`; never compared per value.
            Matcher::Exists | Matcher::InSegment(_) => None,
        }
    }
}

/// Compiles one clause, pushing every problem found (with `path`) onto `errors`.
/// `segment_exists` tells whether an `in_segment` value names a known segment.
pub(crate) fn compile_clause(
    clause: &Clause,
    path: &str,
    segment_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ValidationError>,
) -> Option<CompiledClause> {
    let before = errors.len();
    let vpath = |i: usize| format!("{path}.values[{i}]");
    let mut bad = |i: usize, msg: String| errors.push(ValidationError::new(vpath(i), msg));
    let values = &clause.values;
    let ci = clause.case_insensitive;

    let strings = |bad: &mut dyn FnMut(usize, String)| -> Strings {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v.as_str() {
                Some(s) => out.push(if ci {
                    s.to_lowercase().into()
                } else {
                    s.into()
                }),
                None => bad(i, "must be a string".into()),
            }
        }
        Strings {
            values: out.into(),
            ci,
        }
    };
    let numbers = |bad: &mut dyn FnMut(usize, String)| -> Box<[f64]> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v.as_f64() {
                Some(n) => out.push(n),
                None => bad(i, "must be a number".into()),
            }
        }
        out.into()
    };
    let semvers = |bad: &mut dyn FnMut(usize, String)| -> Box<[Version]> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v.as_str().map(parse_clause_version) {
                Some(Ok(ver)) => out.push(ver),
                Some(Err(e)) => bad(i, format!("invalid semver: {e}")),
                None => bad(i, "must be a semver string".into()),
            }
        }
        out.into()
    };

    let matcher = match clause.op {
        Op::In => {
            let mut strs = Vec::new();
            let mut nums = Vec::new();
            let mut bools = [false; 2];
            for (i, v) in values.iter().enumerate() {
                match v {
                    Value::String(s) => strs.push(if ci {
                        s.to_lowercase().into()
                    } else {
                        s.as_str().into()
                    }),
                    Value::Number(n) => nums.push(n.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(b) => bools[usize::from(*b)] = true,
                    _ => bad(i, "must be a string, number or boolean".into()),
                }
            }
            Matcher::In {
                strings: Strings {
                    values: strs.into(),
                    ci,
                },
                numbers: nums.into(),
                bools,
            }
        }
        Op::StartsWith => Matcher::Str(StrOp::StartsWith, strings(&mut bad)),
        Op::EndsWith => Matcher::Str(StrOp::EndsWith, strings(&mut bad)),
        Op::Contains => Matcher::Str(StrOp::Contains, strings(&mut bad)),
        Op::Matches => {
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let Some(pattern) = v.as_str() else {
                    bad(i, "must be a regular expression string".into());
                    continue;
                };
                match RegexBuilder::new(pattern)
                    .case_insensitive(ci)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    Ok(r) => out.push(r),
                    Err(e) => bad(i, format!("invalid regex: {}", regex_error_summary(&e))),
                }
            }
            Matcher::Matches(out.into())
        }
        Op::Lt => Matcher::Num(Cmp::Lt, numbers(&mut bad)),
        Op::Lte => Matcher::Num(Cmp::Lte, numbers(&mut bad)),
        Op::Gt => Matcher::Num(Cmp::Gt, numbers(&mut bad)),
        Op::Gte => Matcher::Num(Cmp::Gte, numbers(&mut bad)),
        Op::Before | Op::After => {
            let mut out = Vec::with_capacity(values.len());
            let mut now = false;
            for (i, v) in values.iter().enumerate() {
                match (v, date_of(v)) {
                    (Value::String(s), _) if s == NOW_ATTRIBUTE => now = true,
                    (Value::String(_), Some(d)) => out.push(d),
                    (Value::Number(n), Some(d)) if n.is_i64() || n.is_u64() => out.push(d),
                    _ => bad(i, "invalid date: expected an RFC 3339 timestamp, integer epoch milliseconds or \"$now\"".into()),
                }
            }
            Matcher::Date {
                after: clause.op == Op::After,
                values: out.into(),
                now,
            }
        }
        Op::SemverEq => Matcher::Semver(Cmp::Eq, semvers(&mut bad)),
        Op::SemverLt => Matcher::Semver(Cmp::Lt, semvers(&mut bad)),
        Op::SemverLte => Matcher::Semver(Cmp::Lte, semvers(&mut bad)),
        Op::SemverGt => Matcher::Semver(Cmp::Gt, semvers(&mut bad)),
        Op::SemverGte => Matcher::Semver(Cmp::Gte, semvers(&mut bad)),
        Op::InCidr => {
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                match v.as_str().map(Cidr::parse) {
                    Some(Ok(c)) => out.push(c),
                    Some(Err(e)) => bad(i, format!("invalid CIDR: {e}")),
                    None => bad(i, "must be a CIDR string such as 10.0.0.0/8".into()),
                }
            }
            Matcher::InCidr(out.into())
        }
        Op::Exists => Matcher::Exists,
        Op::InSegment => {
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                match v.as_str() {
                    Some(k) if segment_exists(k) => out.push(k.into()),
                    Some(k) => bad(i, format!("unknown segment '{k}'")),
                    None => bad(i, "must be a segment key".into()),
                }
            }
            Matcher::InSegment(out.into())
        }
    };

    match clause.op {
        Op::Exists if !values.is_empty() => {
            errors.push(ValidationError::new(
                format!("{path}.values"),
                "exists takes no values",
            ));
        }
        Op::Exists => {}
        _ if values.is_empty() => {
            errors.push(ValidationError::new(
                format!("{path}.values"),
                "at least one value is required",
            ));
        }
        _ => {}
    }
    if clause.op != Op::InSegment && clause.attribute.is_empty() {
        errors.push(ValidationError::new(
            format!("{path}.attribute"),
            "attribute is required",
        ));
    }

    (errors.len() == before).then(|| CompiledClause {
        attr: Attr::new(&clause.attribute),
        negate: clause.negate,
        matcher,
    })
}

/// The regex crate's syntax errors draw a caret diagram over several lines; the last line
/// ("error: unclosed group") is the part a person needs in a one-line message.
fn regex_error_summary(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error: ").to_owned())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoSegments;

    impl Segments for NoSegments {
        fn contains(&self, _: &str, _: &Env<'_>, _: usize) -> bool {
            false
        }
    }

    fn compile(clause: Value) -> Result<CompiledClause, Vec<ValidationError>> {
        let clause: Clause = serde_json::from_value(clause).unwrap();
        let mut errors = Vec::new();
        compile_clause(&clause, "c", &|_| false, &mut errors).ok_or(errors)
    }

    /// Whether `clause` matches a context whose attribute `a` is `value`, at `now_ms`.
    fn matches(clause: Value, value: Value, now_ms: i64) -> bool {
        let compiled = compile(clause).unwrap_or_else(|e| panic!("{e:?}"));
        let ctx: Context = [("a", value)].into_iter().collect();
        let env = Env {
            ctx: &ctx,
            now: Value::from(now_ms),
        };
        compiled.matches(&env, &NoSegments, 0)
    }

    #[test]
    fn numeric_operators_read_plain_decimal_strings() {
        let gt = json!({"attribute": "a", "op": "gt", "values": [5]});
        let gt_not = json!({"attribute": "a", "op": "gt", "values": [5], "negate": true});
        assert!(matches(gt.clone(), json!("13"), 0));
        assert!(matches(gt.clone(), json!("5.5"), 0));
        assert!(!matches(gt.clone(), json!("-13"), 0));
        assert!(matches(gt_not.clone(), json!("3"), 0));
        for not_a_number in ["", " 13", "0x10", "1e400", "NaN", "inf", "1_000", "+13"] {
            assert!(
                !matches(gt.clone(), json!(not_a_number), 0),
                "{not_a_number}"
            );
            assert!(
                !matches(gt_not.clone(), json!(not_a_number), 0),
                "{not_a_number}"
            );
        }
        assert!(matches(
            json!({"attribute": "a", "op": "lte", "values": [1.5]}),
            json!(["9", "1.5"]),
            0
        ));
    }

    #[test]
    fn in_compares_numeric_strings_with_number_values() {
        let numbers = json!({"attribute": "a", "op": "in", "values": [10, 20]});
        let numbers_not = json!({"attribute": "a", "op": "in", "values": [10, 20], "negate": true});
        assert!(matches(numbers.clone(), json!("20"), 0));
        assert!(matches(numbers.clone(), json!("20.0"), 0));
        assert!(!matches(numbers.clone(), json!("15"), 0));
        assert!(matches(numbers_not.clone(), json!("15"), 0));
        assert!(!matches(numbers_not.clone(), json!("twenty"), 0));
        let mixed = json!({"attribute": "a", "op": "in", "values": ["gold", 3]});
        assert!(matches(mixed.clone(), json!("3"), 0));
        assert!(matches(mixed.clone(), json!("gold"), 0));
        assert!(!matches(mixed, json!("3.5"), 0));
        // Only the context's strings are read as numbers, not the clause's.
        let strings_not = json!({"attribute": "a", "op": "in", "values": ["42"], "negate": true});
        assert!(!matches(strings_not, json!(42), 0));
    }

    #[test]
    fn semver_operators_take_prefixes_and_numbers() {
        let eq = json!({"attribute": "a", "op": "semver_eq", "values": ["v2.1.0"]});
        for same in [json!("2.1.0"), json!("v2.1.0"), json!("V2.1"), json!(2.1)] {
            assert!(matches(eq.clone(), same.clone(), 0), "{same}");
        }
        let lt = json!({"attribute": "a", "op": "semver_lt", "values": ["3.0.0"]});
        assert!(matches(lt.clone(), json!(2), 0));
        assert!(!matches(lt.clone(), json!(3), 0));
        assert!(matches(lt, json!("v3.0.0-rc.1"), 0));
    }

    #[test]
    fn before_and_after_take_now_as_a_value() {
        let after = json!({"attribute": "a", "op": "after", "values": ["$now"]});
        assert!(matches(after.clone(), json!(1_000), 999));
        assert!(!matches(after.clone(), json!(1_000), 1_000));
        assert!(matches(after.clone(), json!("2026-02-01T00:00:00Z"), 0));
        let before = json!({"attribute": "a", "op": "before", "values": ["$now"]});
        assert!(matches(before.clone(), json!(999), 1_000));
        assert!(!matches(before, json!("2026-02-01T00:00:00Z"), 0));
        // With other values, any of them may match.
        let either = json!({"attribute": "a", "op": "before", "values": [0, "$now"]});
        assert!(matches(either.clone(), json!(-1), -5));
        assert!(matches(either, json!(5), 10));
        // `$now` against itself is neither before nor after.
        let itself = json!({"attribute": "$now", "op": "after", "values": ["$now"]});
        assert!(!matches(itself, json!(null), 1_000));
    }

    #[test]
    fn now_is_a_date_value_only_for_before_and_after() {
        for spelling in ["$NOW", "now", "$now "] {
            let errors = compile(json!({"attribute": "a", "op": "after", "values": [spelling]}))
                .err()
                .unwrap_or_default();
            assert_eq!(errors.len(), 1, "{spelling}");
        }
        assert!(compile(json!({"attribute": "a", "op": "gt", "values": ["$now"]})).is_err());
        // A string operator takes `$now` as the literal text.
        assert!(matches(
            json!({"attribute": "a", "op": "in", "values": ["$now"]}),
            json!("$now"),
            0
        ));
    }
}
