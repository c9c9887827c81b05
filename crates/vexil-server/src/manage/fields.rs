//! Input every operation shares: merge patches (with an optional top-level `comment`),
//! listing windows, and the field checks (keys, names, descriptions, comments, expiries).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::Error;

/// Longest accepted `comment`, `name` and `description`.
pub(crate) const MAX_COMMENT: usize = 1000;
pub(crate) const MAX_NAME: usize = 200;
pub(crate) const MAX_DESCRIPTION: usize = 4000;

/// A merge patch body: the changes, plus the `comment` for the audit entry and revision.
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    pub(crate) changes: Map<String, Value>,
    pub(crate) comment: Option<String>,
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
    pub(crate) fn apply<T: DeserializeOwned>(
        &self,
        mut current: Value,
        immutable: &[&str],
        current_immutable: &Value,
    ) -> Result<T, Error> {
        check_comment(self.comment.as_deref())?;
        let mut changes = self.changes.clone();
        for field in immutable {
            if let Some(v) = changes.remove(*field)
                && Some(&v) != current_immutable.get(*field)
            {
                return Err(Error::invalid_field(field, "cannot be changed"));
            }
        }
        merge_patch(&mut current, &Value::Object(changes));
        vexil_core::from_value_with_path(current).map_err(Error::from)
    }
}

/// Keys: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$` (docs/concepts.md).
pub(crate) fn check_key(field: &str, key: &str) -> Result<(), Error> {
    if vexil_core::is_valid_key(key) {
        Ok(())
    } else {
        Err(Error::invalid_field(
            field,
            "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        ))
    }
}

/// Text columns refuse NUL on PostgreSQL, and no name or comment needs control characters
/// other than line breaks and tabs.
fn check_text(field: &str, text: &str) -> Result<(), Error> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The key and name of a new record (the name defaults to the key), checked; returns the
/// name.
pub(crate) fn check_new(key: &str, name: Option<String>) -> Result<String, Error> {
    check_key("key", key)?;
    let name = name.unwrap_or_else(|| key.to_owned());
    check_name("name", &name)?;
    Ok(name)
}

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), Error> {
    check_text(field, name)?;
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME || name.trim().is_empty() {
        return Err(Error::invalid_field(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_description(field: &str, text: &str) -> Result<(), Error> {
    check_text(field, text)?;
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid_field(
            field,
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_comment(comment: Option<&str>) -> Result<(), Error> {
    if let Some(c) = comment {
        check_text("comment", c)?;
    }
    match comment {
        Some(c) if c.chars().count() > MAX_COMMENT => Err(Error::invalid_field(
            "comment",
            format!("must be at most {MAX_COMMENT} characters"),
        )),
        _ => Ok(()),
    }
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` removes, and
/// anything else (arrays included) replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// `?limit=&offset=` with the API's defaults and bounds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pagination {
    #[serde(default = "default_limit")]
    pub(crate) limit: i64,
    #[serde(default)]
    pub(crate) offset: i64,
}

pub(crate) fn default_limit() -> i64 {
    50
}

impl Pagination {
    pub(crate) const MAX_LIMIT: i64 = 500;

    pub(crate) fn validate(self) -> Result<Self, Error> {
        if !(1..=Self::MAX_LIMIT).contains(&self.limit) {
            return Err(Error::invalid_field("limit", "must be between 1 and 500"));
        }
        if self.offset < 0 {
            return Err(Error::invalid_field("offset", "must not be negative"));
        }
        Ok(self)
    }
}

/// An expiry given as input (`field`), as stored: fixed-width RFC 3339 UTC, in the future.
pub(crate) fn check_expiry(field: &str, text: &str) -> Result<String, Error> {
    let ms = vexil_core::time::parse_rfc3339(text).ok_or_else(|| {
        Error::invalid_field(
            field,
            "must be an RFC 3339 timestamp such as 2030-01-01T00:00:00Z",
        )
    })?;
    if ms <= crate::store::now_ms() {
        return Err(Error::invalid_field(field, "must be in the future"));
    }
    Ok(vexil_core::time::format_rfc3339(ms))
}

/// A trimmed, lowercased email address, or invalid input at `field`.
pub(crate) fn check_email(field: &str, email: &str) -> Result<String, Error> {
    crate::credentials::normalize_email(email).map_err(|m| Error::invalid_field(field, m))
}

/// A rule with an optional id, recognised across versions by its clauses.
pub(crate) trait IdentifiedRule {
    fn id(&self) -> Option<&String>;
    fn set_id(&mut self, id: String);
    fn clauses(&self) -> &[vexil_core::Clause];
}

/// Flag rules and segment rules alike: an `id` and `clauses`.
macro_rules! identified_rule {
    ($($rule:ty),*) => {$(
        impl IdentifiedRule for $rule {
            fn id(&self) -> Option<&String> {
                self.id.as_ref()
            }
            fn set_id(&mut self, id: String) {
                self.id = Some(id);
            }
            fn clauses(&self) -> &[vexil_core::Clause] {
                &self.clauses
            }
        }
    )*};
}

identified_rule!(vexil_core::Rule, vexil_core::SegmentRule);

/// Gives every rule without an id one: the id of an unclaimed previous rule with the same
/// clauses (so that re-sending a rule list keeps its ids stable), else a `fresh` one not
/// taken in the list; given ids stay.
pub(crate) fn assign_rule_ids<R: IdentifiedRule>(
    rules: &mut [R],
    previous: &[R],
    fresh: impl Fn() -> String,
) {
    let mut taken: std::collections::HashSet<String> =
        rules.iter().filter_map(|r| r.id().cloned()).collect();
    for rule in rules.iter_mut().filter(|r| r.id().is_none()) {
        let reused = previous
            .iter()
            .filter(|p| p.clauses() == rule.clauses())
            .filter_map(|p| p.id())
            .find(|id| !taken.contains(*id))
            .cloned();
        let id = reused.unwrap_or_else(|| {
            loop {
                let candidate = fresh();
                if !taken.contains(&candidate) {
                    break candidate;
                }
            }
        });
        taken.insert(id.clone());
        rule.set_id(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "arr": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "arr": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "arr": [3]}));
    }
}
