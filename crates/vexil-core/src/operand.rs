//! How the operators read values: context strings that are plain decimal numbers, versions
//! (a `v` prefix, partial versions, JSON numbers), dates and CIDR networks. Reading a
//! context value does not allocate, as evaluation must not; only a version with a
//! pre-release or build part goes through `semver`'s parser, which may.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use semver::Version;
use serde_json::{Number, Value};

use crate::time::parse_rfc3339;

/// A context value as a number: a JSON number, or a string that is a plain decimal number.
#[inline]
pub(crate) fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => decimal_of(s),
        _ => None,
    }
}

/// A string that is a plain decimal number: an optional `-`, one or more ASCII digits and
/// optionally `.` with one or more digits. Nothing else is a number — no `+`, surrounding
/// spaces, exponent, hexadecimal, digit separators, `NaN` or `inf` — and neither is a string
/// too long to be a finite 64-bit float. Unleash SDKs and browsers send numbers this way.
pub(crate) fn decimal_of(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let unsigned = b.strip_prefix(b"-").unwrap_or(b);
    let (int, fraction) = match unsigned.iter().position(|&c| c == b'.') {
        Some(dot) => (&unsigned[..dot], Some(&unsigned[dot + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !all_digits(int) || !fraction.is_none_or(all_digits) {
        return None;
    }
    // The standard parser rounds correctly and does not allocate; the grammar above is
    // stricter than the one it accepts.
    let x: f64 = s.parse().ok()?;
    x.is_finite().then_some(x)
}

/// A context value read as a version by the `semver_*` operators.
#[derive(Debug)]
pub(crate) enum ContextVersion {
    /// `MAJOR[.MINOR[.PATCH]]` with no pre-release or build part: most versions, compared
    /// without building a `Version`.
    Release([u64; 3]),
    Full(Version),
}

impl ContextVersion {
    /// A version string (optionally prefixed `v` or `V`, `2` and `2.1` meaning `2.0.0` and
    /// `2.1.0`), or a non-negative JSON number (`2` is `2.0.0`, `1.2` is `1.2.0`).
    #[inline]
    pub(crate) fn of(v: &Value) -> Option<ContextVersion> {
        match v {
            Value::String(s) => {
                let s = strip_v(s);
                match release(s.as_bytes()) {
                    Some(r) => Some(ContextVersion::Release(r)),
                    None => parse_semver_lenient(s).map(ContextVersion::Full),
                }
            }
            Value::Number(n) => number_version(n).map(ContextVersion::Release),
            _ => None,
        }
    }

    /// SemVer 2.0 precedence against a clause's version.
    #[inline]
    pub(crate) fn cmp(&self, w: &Version) -> Ordering {
        match self {
            ContextVersion::Release(r) => {
                let o = r.cmp(&[w.major, w.minor, w.patch]);
                // A release sorts after every pre-release of the same triple.
                if o.is_eq() && !w.pre.is_empty() {
                    Ordering::Greater
                } else {
                    o
                }
            }
            ContextVersion::Full(v) => semver_precedence(v, w),
        }
    }
}

/// A clause's version: full SemVer 2.0, optionally prefixed `v` or `V`.
pub(crate) fn parse_clause_version(s: &str) -> Result<Version, semver::Error> {
    Version::parse(strip_v(s))
}

/// Drops one leading `v` or `V` (`v2.1.0`, as git tags and many apps write versions).
#[inline]
fn strip_v(s: &str) -> &str {
    match s.as_bytes().first() {
        Some(b'v' | b'V') => &s[1..],
        _ => s,
    }
}

/// SemVer 2.0 precedence: build metadata is ignored.
fn semver_precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// Parses `MAJOR[.MINOR[.PATCH]]` with no pre-release or build part, missing parts being 0,
/// with SemVer 2.0's rule of no leading zeros; anything else returns `None`.
#[inline]
fn release(s: &[u8]) -> Option<[u64; 3]> {
    let mut parts = [0u64; 3];
    let (mut part, mut digits) = (0usize, 0usize);
    for &c in s {
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
    (digits > 0).then_some(parts)
}

/// A JSON number as a version: a whole number `N` (`2`, `2.0`) below 2^64 is `N.0.0`, and
/// any other non-negative number is read from its shortest decimal form, so `1.2` is `1.2.0`
/// (and `1.10`, the same number as `1.1`, is `1.1.0`). Negative numbers and fractions with
/// a leading zero (`1.05`, `0.00001`) are not versions.
fn number_version(n: &Number) -> Option<[u64; 3]> {
    if let Some(major) = n.as_u64() {
        return Some([major, 0, 0]);
    }
    let f = n.as_f64()?;
    if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 {
        return Some([f as u64, 0, 0]);
    }
    // A float with a fraction is below 2^53, so it prints without an exponent unless it is
    // tiny, and then its fraction has a leading zero anyway.
    let mut text = StackText::default();
    write!(text, "{n}").ok()?;
    release(text.as_bytes())
}

/// A few bytes of formatted text on the stack; writing more than fits is an error.
#[derive(Default)]
struct StackText {
    buf: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses a version with a pre-release or build part, accepting `2-rc.1` and `2.1+b` as
/// `2.0.0-rc.1` and `2.1.0+b`. Rarely reached, so padding may allocate.
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

/// A date operand or attribute: integer (or finite float) epoch milliseconds, or RFC 3339.
#[inline]
pub(crate) fn date_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite() && f.abs() < 9.0e18).then_some(f as i64)
        }),
        Value::String(s) => parse_rfc3339(s),
        _ => None,
    }
}

/// An IPv4 or IPv6 network; a single address is a /32 or /128.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Result<Cidr, String> {
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

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_decimal_strings_are_numbers() {
        for (s, x) in [
            ("13", 13.0),
            ("1.5", 1.5),
            ("-2", -2.0),
            ("0", 0.0),
            ("-0", 0.0),
            ("007", 7.0),
            ("0.25", 0.25),
            ("-1.125", -1.125),
            ("9007199254740993", 9007199254740992.0),
        ] {
            assert_eq!(decimal_of(s), Some(x), "{s}");
        }
        let huge = format!("1{}", "0".repeat(400));
        for s in [
            "", " 13", "13 ", "+3", "-", "--1", "0x10", "1e400", "1e2", "1E2", "NaN", "nan", "inf",
            "-inf", "Infinity", "1_000", "1,000", "1.", ".5", "-.5", "1.2.3", "١٣", "１３", &huge,
        ] {
            assert_eq!(decimal_of(s), None, "{s:?}");
        }
        assert_eq!(number_of(&json!("42")), Some(42.0));
        assert_eq!(number_of(&json!(42)), Some(42.0));
        assert_eq!(number_of(&json!(true)), None);
    }

    #[test]
    fn releases() {
        assert_eq!(release(b"2.4.1"), Some([2, 4, 1]));
        assert_eq!(release(b"0.0.0"), Some([0, 0, 0]));
        assert_eq!(release(b"2.4"), Some([2, 4, 0]));
        assert_eq!(release(b"2"), Some([2, 0, 0]));
        for s in [
            "2.4.1-rc.1",
            "2.4.1+b",
            "02.4.1",
            "2.04",
            "2.4.1.0",
            "a.b.c",
            "",
            "1..2",
            "1.",
            ".1",
            "-1",
            "99999999999999999999",
        ] {
            assert_eq!(release(s.as_bytes()), None, "{s}");
        }
    }

    fn version_of(v: Value) -> Option<Version> {
        ContextVersion::of(&v).map(|cv| match cv {
            ContextVersion::Release([major, minor, patch]) => Version::new(major, minor, patch),
            ContextVersion::Full(v) => v,
        })
    }

    #[test]
    fn context_versions() {
        let v = |s: &str| Version::parse(s).ok();
        assert_eq!(version_of(json!("2.1.0")), v("2.1.0"));
        assert_eq!(version_of(json!("v2.1.0")), v("2.1.0"));
        assert_eq!(version_of(json!("V2.1")), v("2.1.0"));
        assert_eq!(version_of(json!("v2")), v("2.0.0"));
        assert_eq!(version_of(json!("v2.1.0-rc.1")), v("2.1.0-rc.1"));
        assert_eq!(version_of(json!("2.1-beta")), v("2.1.0-beta"));
        assert_eq!(version_of(json!("2+b")), v("2.0.0+b"));
        assert_eq!(version_of(json!(2)), v("2.0.0"));
        assert_eq!(version_of(json!(0)), v("0.0.0"));
        assert_eq!(version_of(json!(1.2)), v("1.2.0"));
        assert_eq!(version_of(json!(2.0)), v("2.0.0"));
        assert_eq!(version_of(json!(1.10)), v("1.1.0"));
        assert_eq!(version_of(json!(10.25)), v("10.25.0"));
        assert_eq!(version_of(json!(1e3)), v("1000.0.0"));
        assert_eq!(version_of(json!(1e19)), v("10000000000000000000.0.0"));
        assert_eq!(version_of(json!(-0.0)), v("0.0.0"));
        for bad in [
            json!("vv2.1.0"),
            json!("v"),
            json!("ver2.1.0"),
            json!(" v2.1.0"),
            json!("2..1"),
            json!(""),
            json!(-1),
            json!(-1.5),
            json!(1.05),
            json!(0.00001),
            json!(1e20),
            json!(true),
        ] {
            assert_eq!(version_of(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn clause_versions_take_a_prefix_but_must_be_complete() {
        assert_eq!(
            parse_clause_version("v1.2.3").ok(),
            Version::parse("1.2.3").ok()
        );
        assert_eq!(
            parse_clause_version("V1.2.3").ok(),
            Version::parse("1.2.3").ok()
        );
        assert!(parse_clause_version("1.2").is_err());
        assert!(parse_clause_version("vv1.2.3").is_err());
    }

    #[test]
    fn releases_sort_after_their_pre_releases() {
        let rc = Version::parse("1.0.0-rc.1").unwrap();
        assert_eq!(
            ContextVersion::Release([1, 0, 0]).cmp(&rc),
            Ordering::Greater
        );
        let full = ContextVersion::Full(Version::parse("1.0.0-alpha").unwrap());
        assert_eq!(full.cmp(&rc), Ordering::Less);
    }

    #[test]
    fn semver_precedence_ignores_build() {
        let a = Version::parse("1.0.0+a").unwrap();
        let b = Version::parse("1.0.0+b").unwrap();
        assert_eq!(semver_precedence(&a, &b), Ordering::Equal);
        let pre = Version::parse("1.0.0-alpha").unwrap();
        assert_eq!(semver_precedence(&pre, &a), Ordering::Less);
    }

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
}
