//! Clauses compiled for evaluation: operator values parsed once (regexes, semvers, CIDRs,
//! dates, numbers), attribute paths split once, and the matching rules of DESIGN §2.

use std::cmp::Ordering;
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use semver::Version;
use serde_json::Value;

use crate::context::{Context, short_eq};

use crate::error::ValidationError;
use crate::model::{Clause, Op};
use crate::time::parse_rfc3339;

/// The attribute that always holds the evaluation time, as epoch milliseconds.
pub const NOW_ATTRIBUTE: &str = "$now";

/// Regexes are bounded so that a hostile pattern cannot take unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Segments may nest; this bounds recursion should a cycle ever slip past validation.
pub(crate) const MAX_DEPTH: usize = 64;

/// What evaluation needs besides the clause: the context, the time and segment lookup.
pub(crate) struct Env<'c> {
    pub ctx: &'c Context,
    pub now: Value,
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

#[derive(Debug, Clone, Copy)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid IP address '{addr}'"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("invalid prefix length '{p}' (0 to {max})")),
            },
        };
        Ok(Cidr { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
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
                            match m.test(item) {
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
                    v => m.test(v),
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
    fn test(&self, v: &Value) -> Option<bool> {
        match self {
            Matcher::In {
                strings,
                numbers,
                bools,
            } => match v {
                Value::String(s) if !strings.values.is_empty() => Some(strings.test(StrOp::Eq, s)),
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
                let x = v.as_number()?.as_f64()?;
                Some(
                    numbers
                        .iter()
                        .any(|y| x.partial_cmp(y).is_some_and(|o| cmp.holds(o))),
                )
            }
            Matcher::Date { after, values } => {
                let t = date_of(v)?;
                Some(values.iter().any(|d| if *after { t > *d } else { t < *d }))
            }
            Matcher::Semver(cmp, versions) => {
                let s = v.as_str()?;
                // Most versions are plain `X.Y.Z`: compare those without building a Version.
                if let Some(triple) = plain_version(s) {
                    return Some(versions.iter().any(|w| {
                        let o = triple.cmp(&(w.major, w.minor, w.patch));
                        // A release sorts after every pre-release of the same triple.
                        let o = if o.is_eq() && !w.pre.is_empty() {
                            Ordering::Greater
                        } else {
                            o
                        };
                        cmp.holds(o)
                    }));
                }
                let ver = parse_semver_lenient(s)?;
                Some(
                    versions
                        .iter()
                        .any(|w| cmp.holds(semver_precedence(&ver, w))),
                )
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

/// A date operand or attribute: integer (or finite float) epoch milliseconds, or RFC 3339.
fn date_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite() && f.abs() < 9.0e18).then_some(f as i64)
        }),
        Value::String(s) => parse_rfc3339(s),
        _ => None,
    }
}

/// SemVer 2.0 precedence: build metadata is ignored.
fn semver_precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// Parses `MAJOR.MINOR.PATCH` with no pre-release or build part, as SemVer 2.0 does
/// (no leading zeros); anything else returns `None` and goes to the full parser.
fn plain_version(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = [0u64; 3];
    let (mut part, mut digits) = (0usize, 0usize);
    for &c in s.as_bytes() {
        match c {
            b'0'..=b'9' => {
                // No leading zeros (SemVer 2.0 §2), and no overflow.
                if (digits == 1 && parts[part] == 0) || digits == 19 {
                    return None;
                }
                parts[part] = parts[part] * 10 + u64::from(c - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && part < 2 => {
                part += 1;
                digits = 0;
            }
            _ => return None,
        }
    }
    (part == 2 && digits > 0).then_some((parts[0], parts[1], parts[2]))
}

/// Parses a context version, accepting `2` and `2.1` as `2.0.0` and `2.1.0`.
fn parse_semver_lenient(s: &str) -> Option<Version> {
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let dots = core.matches('.').count();
    if core.is_empty() || dots >= 2 || !core.split('.').all(|p| !p.is_empty()) {
        return None;
    }
    let padded = if dots == 0 {
        format!("{core}.0.0{rest}")
    } else {
        format!("{core}.0{rest}")
    };
    Version::parse(&padded).ok()
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
            match v.as_str().map(Version::parse) {
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
            for (i, v) in values.iter().enumerate() {
                match (v, date_of(v)) {
                    (Value::String(_), Some(d)) => out.push(d),
                    (Value::Number(n), Some(d)) if n.is_i64() || n.is_u64() => out.push(d),
                    _ => bad(i, "invalid date: expected an RFC 3339 timestamp or integer epoch milliseconds".into()),
                }
            }
            Matcher::Date {
                after: clause.op == Op::After,
                values: out.into(),
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

    #[test]
    fn cidr_parsing_and_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::5".parse().unwrap())
        );
        assert!(
            Cidr::parse("10.0.0.1")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
    }

    #[test]
    fn plain_versions() {
        assert_eq!(plain_version("2.4.1"), Some((2, 4, 1)));
        assert_eq!(plain_version("0.0.0"), Some((0, 0, 0)));
        for s in [
            "2.4",
            "2.4.1-rc.1",
            "2.4.1+b",
            "02.4.1",
            "2.4.1.0",
            "a.b.c",
            "",
            "1..2",
        ] {
            assert_eq!(plain_version(s), None, "{s}");
        }
    }

    #[test]
    fn lenient_semver() {
        assert_eq!(parse_semver_lenient("2"), Version::parse("2.0.0").ok());
        assert_eq!(parse_semver_lenient("2.1"), Version::parse("2.1.0").ok());
        assert_eq!(
            parse_semver_lenient("2.1-beta"),
            Version::parse("2.1.0-beta").ok()
        );
        assert_eq!(parse_semver_lenient("v2.1.0"), None);
        assert_eq!(parse_semver_lenient("2..1"), None);
        assert_eq!(parse_semver_lenient(""), None);
    }

    #[test]
    fn semver_precedence_ignores_build() {
        let a = Version::parse("1.0.0+a").unwrap();
        let b = Version::parse("1.0.0+b").unwrap();
        assert_eq!(semver_precedence(&a, &b), Ordering::Equal);
        let pre = Version::parse("1.0.0-alpha").unwrap();
        assert_eq!(semver_precedence(&pre, &a), Ordering::Less);
    }
}
