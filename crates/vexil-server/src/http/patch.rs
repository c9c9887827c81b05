//! PATCH bodies (JSON merge patches with an optional top-level `comment`) and the field
//! checks shared by every resource.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::merge_patch;

/// Longest accepted `comment`, `name` and `description`.
pub const MAX_COMMENT: usize = 1000;
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 4000;

/// A merge patch body: the changes, plus the `comment` for the audit entry and revision.
#[derive(Debug, Clone)]
pub struct Patch {
    pub changes: Map<String, Value>,
    pub comment: Option<String>,
}

impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut changes = Map::deserialize(d)?;
        let comment = match changes.remove("comment") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(serde::de::Error::custom("comment must be a string")),
        };
        Ok(Patch { changes, comment })
    }
}

impl Patch {
    /// Applies the patch to `current` (the editable fields as JSON) and reads the result as
    /// `T`, which rejects unknown fields. Fields in `immutable` may be repeated with their
    /// current value (from `current_immutable`) but not changed.
    pub fn apply<T: DeserializeOwned>(
        &self,
        mut current: Value,
        immutable: &[&str],
        current_immutable: &Value,
    ) -> Result<T, ApiError> {
        check_comment(self.comment.as_deref())?;
        let mut changes = self.changes.clone();
        for field in immutable {
            if let Some(v) = changes.remove(*field)
                && Some(&v) != current_immutable.get(*field)
            {
                return Err(ApiError::invalid_field(field, "cannot be changed"));
            }
        }
        merge_patch(&mut current, &Value::Object(changes));
        vexil_core::from_value_with_path(current).map_err(ApiError::from)
    }
}

/// Keys: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$` (DESIGN §2).
pub fn check_key(field: &str, key: &str) -> Result<(), ApiError> {
    if vexil_core::is_valid_key(key) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        ))
    }
}

/// Text columns refuse NUL on PostgreSQL, and no name or comment needs control characters
/// other than line breaks and tabs.
fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    check_text(field, name)?;
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME || name.trim().is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(())
}

pub fn check_description(field: &str, text: &str) -> Result<(), ApiError> {
    check_text(field, text)?;
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

pub fn check_comment(comment: Option<&str>) -> Result<(), ApiError> {
    if let Some(c) = comment {
        check_text("comment", c)?;
    }
    match comment {
        Some(c) if c.chars().count() > MAX_COMMENT => Err(ApiError::invalid_field(
            "comment",
            format!("must be at most {MAX_COMMENT} characters"),
        )),
        _ => Ok(()),
    }
}
