//! What the `*_detail` getters return: the value (the caller's default on any error), the
//! variation, and why — the reason object of docs/evaluation.md plus the SDK's own error codes.

use serde::Serialize;
use serde_json::Value;

pub use vexil_core::ReasonKind;

/// Why an evaluation fell back to the caller's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such flag in the environment (or it is archived).
    FlagNotFound,
    /// A rollout buckets by an attribute the context lacks (or that is not a string or integer).
    TargetingKeyMissing,
    /// The served value is not of the type asked for (e.g. a string flag read as a boolean).
    TypeMismatch,
    /// The client has no flag data yet: the first fetch has not succeeded and there is no
    /// bootstrap ruleset.
    ClientNotReady,
    /// The evaluation engine failed unexpectedly (a bug; never observed).
    General,
}

impl ErrorCode {
    /// The wire name, e.g. `FLAG_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::ClientNotReady => "CLIENT_NOT_READY",
            ErrorCode::General => "GENERAL",
        }
    }
}

impl From<vexil_core::ErrorCode> for ErrorCode {
    fn from(code: vexil_core::ErrorCode) -> Self {
        match code {
            vexil_core::ErrorCode::FlagNotFound => ErrorCode::FlagNotFound,
            vexil_core::ErrorCode::TargetingKeyMissing => ErrorCode::TargetingKeyMissing,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value was served. Serializes exactly as the server's `reason` object (absent parts
/// are omitted), so it can be compared with `POST /api/v1/evaluate` and the test vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub kind: ReasonKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<usize>,
    pub in_rollout: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prerequisite_key: Option<String>,
}

impl Reason {
    /// An `ERROR` reason with `code`.
    pub fn error(code: ErrorCode) -> Reason {
        Reason {
            kind: ReasonKind::Error,
            rule_id: None,
            rule_index: None,
            in_rollout: false,
            error_code: Some(code),
            prerequisite_key: None,
        }
    }

    pub(crate) fn from_core(reason: &vexil_core::Reason<'_>) -> Reason {
        Reason {
            kind: reason.kind,
            rule_id: reason.rule_id.map(str::to_owned),
            rule_index: reason.rule_index,
            in_rollout: reason.in_rollout,
            error_code: reason.error_code.map(ErrorCode::from),
            prerequisite_key: reason.prerequisite_key.map(str::to_owned),
        }
    }
}

/// The result of a `*_detail` getter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationDetail<T> {
    /// The served value, or the caller's default when `reason.kind` is `Error`.
    pub value: T,
    /// The served variation's key; `None` when the default was used.
    pub variation: Option<String>,
    pub reason: Reason,
    /// The flag configuration's version; `None` when the flag was not found.
    pub flag_version: Option<u64>,
}

impl<T> EvaluationDetail<T> {
    /// The error that made this the caller's default, if any.
    pub fn error(&self) -> Option<ErrorCode> {
        self.reason.error_code
    }

    /// Whether the value is the caller's default because of an error.
    pub fn is_default(&self) -> bool {
        self.reason.kind == ReasonKind::Error
    }

    pub(crate) fn default_with(value: T, code: ErrorCode, flag_version: Option<u64>) -> Self {
        EvaluationDetail {
            value,
            variation: None,
            reason: Reason::error(code),
            flag_version,
        }
    }
}

/// A flag value type the typed getters can return: converts the served JSON value, or says
/// it is of another type (then the caller's default is served with `TYPE_MISMATCH`).
pub trait FlagValue: Sized {
    /// `None` when `value` is not of this type.
    fn from_json(value: &Value) -> Option<Self>;
}

impl FlagValue for bool {
    #[inline]
    fn from_json(value: &Value) -> Option<bool> {
        value.as_bool()
    }
}

impl FlagValue for String {
    fn from_json(value: &Value) -> Option<String> {
        value.as_str().map(str::to_owned)
    }
}

/// Integers: JSON integers, and floats with no fractional part that fit (`42.0` is the same
/// number as `42`); `3.5` is a type mismatch.
impl FlagValue for i64 {
    fn from_json(value: &Value) -> Option<i64> {
        let n = value.as_number()?;
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
        let f = n.as_f64()?;
        // i64::MAX as f64 rounds up to 2^63, which does not fit: compare with `<`.
        (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    }
}

/// Floats: any JSON number.
impl FlagValue for f64 {
    fn from_json(value: &Value) -> Option<f64> {
        value.as_f64()
    }
}

/// JSON: any value.
impl FlagValue for Value {
    fn from_json(value: &Value) -> Option<Value> {
        Some(value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_conversions() {
        assert_eq!(bool::from_json(&json!(true)), Some(true));
        assert_eq!(bool::from_json(&json!("true")), None);
        assert_eq!(i64::from_json(&json!(42)), Some(42));
        assert_eq!(i64::from_json(&json!(42.0)), Some(42));
        assert_eq!(i64::from_json(&json!(3.5)), None);
        assert_eq!(i64::from_json(&json!(1e300)), None);
        assert_eq!(i64::from_json(&json!(u64::MAX)), None);
        assert_eq!(f64::from_json(&json!(3)), Some(3.0));
        assert_eq!(f64::from_json(&json!("3")), None);
        assert_eq!(String::from_json(&json!("x")), Some("x".to_owned()));
        assert_eq!(Value::from_json(&json!([1])), Some(json!([1])));
    }

    #[test]
    fn reasons_serialize_like_the_server() {
        let r = Reason::error(ErrorCode::TypeMismatch);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"kind": "ERROR", "in_rollout": false, "error_code": "TYPE_MISMATCH"})
        );
    }
}
