//! One flagd evaluation, whichever protocol version asks: the caller's key (its
//! `authorization` metadata, else the operator's default key), the key's environment
//! snapshot, the engine's result checked against the type the call asked for, and the
//! gRPC status flagd answers with when it cannot be served.

use std::sync::Arc;

use prost_types::Struct;
use secrecy::ExposeSecret;
use serde_json::Value;
use tonic::Status;
use tonic::metadata::MetadataMap;
use vexil_core::{Detail, ErrorCode, FlagType};

use super::Grpc;
use super::convert;
use crate::clock::now_ms;
use crate::flag_metadata::FlagMetadata;
use crate::keys::{KeyInfo, Refusal};
use crate::snapshots::EnvSnapshot;

/// One resolved flag: the typed value, the flagd reason, the variant and the metadata.
#[derive(Debug)]
pub(crate) struct Resolved<T> {
    pub(crate) value: T,
    pub(crate) reason: &'static str,
    /// `None` when the result has no variation.
    pub(crate) variant: Option<String>,
    pub(crate) metadata: Struct,
}

/// A value of `ResolveAll`: the `AnyFlag` oneof (numbers, integers included, as doubles).
#[derive(Debug)]
pub(crate) enum AnyValue {
    Bool(bool),
    String(String),
    Double(f64),
    Object(Struct),
}

/// Every flag of a `ResolveAll` answer by key, and the answer's metadata.
pub(crate) type All = (Vec<(String, Resolved<AnyValue>)>, Struct);

/// Reads the typed value a call asked for from a flag of type `kind`, or refuses it.
pub(crate) type Typed<T> = fn(&str, FlagType, &Value) -> Result<T, Status>;

impl Grpc {
    /// The API key of a call: `authorization: Bearer <key>` (or `x-api-key`), else the
    /// default key, authenticated now, so that revoking or expiring it takes effect at once.
    /// Key metadata that is present but unusable (another scheme, empty, over 256
    /// characters) is refused rather than read as no key.
    pub(crate) fn authenticate(&self, metadata: &MetadataMap) -> Result<Arc<KeyInfo>, Status> {
        let presented = match (metadata.get("authorization"), metadata.get("x-api-key")) {
            (Some(v), _) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .and_then(usable)
                    .ok_or_else(|| {
                        Status::unauthenticated("the authorization metadata must be `Bearer <key>`")
                    })?,
            ),
            (None, Some(v)) => Some(v.to_str().ok().and_then(usable).ok_or_else(|| {
                Status::unauthenticated("the x-api-key metadata is not a usable API key")
            })?),
            (None, None) => None,
        };
        let secret = match (presented, &self.default_key) {
            (Some(secret), _) => secret,
            (None, Some(default)) => default.expose_secret(),
            (None, None) => {
                return Err(Status::unauthenticated(
                    "an API key is required: send `authorization: Bearer <key>` metadata",
                ));
            }
        };
        self.keys
            .authenticate(secret)
            .map_err(|refusal| match refusal {
                Refusal::Invalid => {
                    Status::unauthenticated("the API key is unknown, revoked or expired")
                }
                Refusal::RateLimited { retry_after_secs } => Status::resource_exhausted(format!(
                    "the API key's rate limit is reached; retry in {retry_after_secs} s"
                )),
            })
    }

    /// Evaluates `flag_key` for `key` and reads the value as `typed` asks.
    pub(crate) fn resolve<T>(
        &self,
        key: &KeyInfo,
        flag_key: &str,
        context: Option<Struct>,
        typed: Typed<T>,
    ) -> Result<Resolved<T>, Status> {
        let context = convert::context(context).map_err(Status::invalid_argument)?;
        let env = self.environment(key)?;
        if !env.visible_to(key.kind, flag_key) {
            return Err(not_found(flag_key));
        }
        let detail = env.snapshot.evaluate(flag_key, &context, now_ms());
        let (kind, value) = served(flag_key, &detail)?;
        let value = typed(flag_key, kind, value)?;
        // Counted once served: a refused type serves the caller's default, not a variation.
        self.snapshots.count(&detail);
        Ok(Resolved {
            value,
            reason: detail.ofrep_reason(),
            variant: detail.variation.map(str::to_owned),
            metadata: metadata(&detail, key, Some(env.version)),
        })
    }

    /// Every flag `key` may see, evaluated for `context`, with the environment's version as
    /// the answer's metadata. Flags that cannot be served for this context (a split by an
    /// attribute the context lacks) and JSON flags whose value is not an object (no
    /// `AnyFlag` field carries one) are left out, as flagd leaves out what it cannot resolve.
    pub(crate) fn resolve_all(
        &self,
        key: &KeyInfo,
        context: Option<Struct>,
    ) -> Result<All, Status> {
        let context = convert::context(context).map_err(Status::invalid_argument)?;
        let env = self.environment(key)?;
        let flags = env
            .snapshot
            .evaluate_all(&context, now_ms())
            .filter(|(info, _)| key.kind.is_server() || info.client_side)
            .filter_map(|(info, detail)| {
                let (_, value) = served(info.key, &detail).ok()?;
                let value = match value {
                    Value::Bool(b) => AnyValue::Bool(*b),
                    Value::String(s) => AnyValue::String(s.clone()),
                    Value::Number(n) => AnyValue::Double(n.as_f64()?),
                    Value::Object(map) => AnyValue::Object(convert::object_to_struct(map)),
                    Value::Null | Value::Array(_) => return None,
                };
                self.snapshots.count(&detail);
                let resolved = Resolved {
                    value,
                    reason: detail.ofrep_reason(),
                    variant: detail.variation.map(str::to_owned),
                    metadata: metadata(&detail, key, None),
                };
                Some((info.key.to_owned(), resolved))
            })
            .collect();
        let mut all = Struct::default();
        all.fields.insert(
            "environmentVersion".into(),
            convert::json_to_value(&Value::from(env.version)),
        );
        Ok((flags, all))
    }

    /// The current snapshot of the key's environment (always there while the key is).
    fn environment(&self, key: &KeyInfo) -> Result<Arc<EnvSnapshot>, Status> {
        self.snapshots.get(&key.environment_id).ok_or_else(|| {
            tracing::error!(environment_id = %key.environment_id, api_key_id = %key.id,
                "no snapshot for the API key's environment");
            Status::internal("the environment's flags are not available")
        })
    }
}

/// A presented secret, trimmed, if it can be a key at all.
fn usable(secret: &str) -> Option<&str> {
    let secret = secret.trim();
    (!secret.is_empty() && secret.len() <= 256).then_some(secret)
}

/// The flag's type and served value, or the status of an evaluation error.
fn served<'d>(flag_key: &str, detail: &'d Detail<'_>) -> Result<(FlagType, &'d Value), Status> {
    match (detail.reason.error_code, detail.flag_type, detail.value) {
        (None, Some(kind), Some(value)) => Ok((kind, value)),
        (Some(ErrorCode::TargetingKeyMissing), ..) => Err(Status::invalid_argument(format!(
            "TARGETING_KEY_MISSING: flag '{flag_key}' splits by an attribute the context does not have"
        ))),
        _ => Err(not_found(flag_key)),
    }
}

/// A flag that does not exist, is archived, or is hidden from a client key: all read alike.
fn not_found(flag_key: &str) -> Status {
    Status::not_found(format!("FLAG_NOT_FOUND: flag '{flag_key}' was not found"))
}

/// The result's metadata as OFREP gives it (`flagVersion`, and for server keys `ruleId`,
/// `ruleIndex`, `prerequisiteKey`), with `environmentVersion` for a single flag.
fn metadata(detail: &Detail<'_>, key: &KeyInfo, environment_version: Option<u64>) -> Struct {
    let mut json = serde_json::to_value(FlagMetadata::of(detail, key.kind))
        .ok()
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    if let Some(version) = environment_version {
        json.insert("environmentVersion".into(), Value::from(version));
    }
    convert::object_to_struct(&json)
}

fn mismatch(flag_key: &str, kind: FlagType, call: &str, wanted: &str) -> Status {
    let kind = match kind {
        FlagType::Boolean => "boolean",
        FlagType::String => "string",
        FlagType::Number => "number",
        FlagType::Json => "JSON",
    };
    Status::invalid_argument(format!(
        "TYPE_MISMATCH: flag '{flag_key}' is a {kind} flag; {call} needs {wanted}"
    ))
}

/// `ResolveBoolean`: a boolean flag.
pub(crate) fn boolean(flag_key: &str, kind: FlagType, value: &Value) -> Result<bool, Status> {
    match (kind, value) {
        (FlagType::Boolean, Value::Bool(b)) => Ok(*b),
        _ => Err(mismatch(flag_key, kind, "ResolveBoolean", "a boolean flag")),
    }
}

/// `ResolveString`: a string flag.
pub(crate) fn string(flag_key: &str, kind: FlagType, value: &Value) -> Result<String, Status> {
    match (kind, value) {
        (FlagType::String, Value::String(s)) => Ok(s.clone()),
        _ => Err(mismatch(flag_key, kind, "ResolveString", "a string flag")),
    }
}

/// `ResolveFloat`: a number flag, whatever its value.
pub(crate) fn float(flag_key: &str, kind: FlagType, value: &Value) -> Result<f64, Status> {
    match (kind, value.as_f64()) {
        (FlagType::Number, Some(n)) => Ok(n),
        _ => Err(mismatch(flag_key, kind, "ResolveFloat", "a number flag")),
    }
}

/// `ResolveInt`: a number flag whose served value is a whole number within 64 bits.
pub(crate) fn int(flag_key: &str, kind: FlagType, value: &Value) -> Result<i64, Status> {
    if kind != FlagType::Number {
        return Err(mismatch(flag_key, kind, "ResolveInt", "a number flag"));
    }
    let whole = value.as_i64().or_else(|| {
        let n = value.as_f64()?;
        // Within i64 and whole: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        (n.fract() == 0.0 && n.abs() < 9.2e18).then_some(n as i64)
    });
    whole.ok_or_else(|| {
        Status::invalid_argument(format!(
            "TYPE_MISMATCH: flag '{flag_key}' served {value}, which is not an integer; use ResolveFloat"
        ))
    })
}

/// `ResolveObject`: a JSON flag whose served value is an object.
pub(crate) fn object(flag_key: &str, kind: FlagType, value: &Value) -> Result<Struct, Status> {
    match (kind, convert::json_to_struct(value)) {
        (FlagType::Json, Some(s)) => Ok(s),
        (FlagType::Json, None) => Err(Status::invalid_argument(format!(
            "TYPE_MISMATCH: flag '{flag_key}' served a JSON value that is not an object"
        ))),
        _ => Err(mismatch(flag_key, kind, "ResolveObject", "a JSON flag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tonic::Code;

    #[test]
    fn types_are_checked_as_flagd_checks_them() {
        assert!(boolean("f", FlagType::Boolean, &json!(true)).unwrap());
        assert_eq!(
            boolean("f", FlagType::String, &json!("x"))
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        assert_eq!(float("f", FlagType::Number, &json!(2)).unwrap(), 2.0);
        assert_eq!(int("f", FlagType::Number, &json!(7)).unwrap(), 7);
        assert_eq!(int("f", FlagType::Number, &json!(7.0)).unwrap(), 7);
        assert_eq!(
            int("f", FlagType::Number, &json!(7.5)).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert!(object("f", FlagType::Json, &json!({"a": 1})).is_ok());
        assert_eq!(
            object("f", FlagType::Json, &json!([1])).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            string("f", FlagType::Json, &json!("x")).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
