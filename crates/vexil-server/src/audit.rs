//! The audit trail's hash chain: `hash = sha256(prev_hash ‖ canonical JSON of the entry)`.
//! Canonical JSON has object keys sorted and no whitespace, so any edit of a stored entry
//! (or removal of one before the last) changes a hash that a later entry depends on.
//! Also the vocabulary every audited change uses: [`Actor`], [`RequestMeta`] and [`Action`].

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something: an API token, a user, or the server itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"}))]
pub(crate) struct Actor {
    pub(crate) id: String,
    pub(crate) name: String,
}

impl Actor {
    pub(crate) fn system() -> Actor {
        Actor {
            id: "system".into(),
            name: "vexil".into(),
        }
    }

    /// The release guard: the job that advances release plans and rolls them back.
    pub(crate) fn release_guard() -> Actor {
        Actor {
            id: "release-guard".into(),
            name: "release guard".into(),
        }
    }

    /// The job that delivers webhooks (and disables one whose deliveries keep failing).
    pub(crate) fn webhooks() -> Actor {
        Actor {
            id: "webhooks".into(),
            name: "webhook delivery".into(),
        }
    }

    /// The job that applies scheduled changes and change requests at their time.
    pub(crate) fn scheduler() -> Actor {
        Actor {
            id: "scheduler".into(),
            name: "scheduler".into(),
        }
    }
}

/// Who sent the request, for the audit trail (empty for the server's own changes).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestMeta {
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) request_id: Option<String>,
    /// The organization the change happens in, as authorization resolved it; audit entries
    /// record it, and per-organization audit reading filters on it.
    pub(crate) organization_id: Option<String>,
}

macro_rules! actions {
    ($($variant:ident => $text:literal,)*) => {
        /// What an audit entry records, with its stable name on the wire
        /// (`resource.verb`); the resource type is the part before the dot.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Action {
            $($variant,)*
        }

        impl Action {
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $text,)*
                }
            }
        }
    };
}

actions! {
    OrganizationCreate => "organization.create",
    OrganizationUpdate => "organization.update",
    OrganizationDelete => "organization.delete",
    ProjectCreate => "project.create",
    ProjectUpdate => "project.update",
    ProjectDelete => "project.delete",
    EnvironmentCreate => "environment.create",
    EnvironmentUpdate => "environment.update",
    EnvironmentDelete => "environment.delete",
    FlagCreate => "flag.create",
    FlagUpdate => "flag.update",
    FlagDelete => "flag.delete",
    FlagArchive => "flag.archive",
    FlagRestore => "flag.restore",
    FlagKillSwitch => "flag.kill_switch",
    FlagConfigUpdate => "flag_config.update",
    FlagConfigRestore => "flag_config.restore",
    ScheduledChangeCreate => "scheduled_change.create",
    ScheduledChangeCancel => "scheduled_change.cancel",
    ScheduledChangeApply => "scheduled_change.apply",
    ScheduledChangeFail => "scheduled_change.fail",
    ChangeRequestCreate => "change_request.create",
    ChangeRequestApprove => "change_request.approve",
    ChangeRequestReject => "change_request.reject",
    ChangeRequestApply => "change_request.apply",
    ChangeRequestStale => "change_request.stale",
    ChangeRequestFail => "change_request.fail",
    ChangeRequestCancel => "change_request.cancel",
    ReleaseStart => "release.start",
    ReleaseAdvance => "release.advance",
    ReleasePause => "release.pause",
    ReleaseResume => "release.resume",
    ReleaseRollback => "release.rollback",
    ReleaseComplete => "release.complete",
    ReleaseCancel => "release.cancel",
    SegmentCreate => "segment.create",
    SegmentUpdate => "segment.update",
    SegmentDelete => "segment.delete",
    ApiKeyCreate => "api_key.create",
    ApiKeyRevoke => "api_key.revoke",
    ApiKeyDelete => "api_key.delete",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    TokenDelete => "token.delete",
    UserCreate => "user.create",
    UserUpdate => "user.update",
    UserLogin => "user.login",
    UserLoginFailed => "user.login_failed",
    UserLogout => "user.logout",
    UserPasswordChange => "user.password_change",
    UserPasswordReset => "user.password_reset",
    UserClaimed => "user.claimed",
    MemberAdd => "member.add",
    MemberUpdate => "member.update",
    MemberRemove => "member.remove",
    FlagTemplateCreate => "flag_template.create",
    FlagTemplateUpdate => "flag_template.update",
    FlagTemplateDelete => "flag_template.delete",
    WebhookCreate => "webhook.create",
    WebhookUpdate => "webhook.update",
    WebhookDelete => "webhook.delete",
    WebhookDisable => "webhook.disable",
}

impl Action {
    /// The kind of resource the entry is filed under (`flag` for `flag.kill_switch`).
    pub(crate) fn resource_type(self) -> &'static str {
        let text = self.as_str();
        text.split_once('.').map_or(text, |(resource, _)| resource)
    }
}

/// One audit entry as stored and served (docs/concepts.md).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-000000000009", "seq": 42, "at": "2026-02-01T08:30:00.000Z",
    "actor": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "action": "flag_config.update", "resource_type": "flag_config", "resource_id": "0190e0a4-0000-7000-8000-000000000005",
    "before": {"enabled": false}, "after": {"enabled": true}, "comment": "launch", "ip": "203.0.113.9",
    "user_agent": "curl/8.5.0", "request_id": "3f2a9c1e0b7d4a58-000000000000002a",
    "organization_id": "0190e0a4-0000-7000-8000-000000000001",
    "prev_hash": "0000000000000000000000000000000000000000000000000000000000000000",
    "hash": "5d41402abc4b2a76b9719d911017c592ae2f4e6b5d41402abc4b2a76b9719d91"}))]
pub(crate) struct AuditEntry {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) at: String,
    /// Who: `{id, name}`.
    #[schema(value_type = Actor)]
    pub(crate) actor: Value,
    pub(crate) action: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
    pub(crate) comment: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) request_id: Option<String>,
    /// The organization the entry belongs to (who may read it); absent for instance-level
    /// entries such as logins, and for entries written before organizations were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) organization_id: Option<String>,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry, given its `prev_hash` and content.
    pub(crate) fn compute_hash(&self) -> String {
        let mut content = json!({
            "id": self.id,
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "before": self.before,
            "after": self.after,
            "comment": self.comment,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
        });
        // Hashed only when present, so that entries written before the field existed
        // still verify.
        if let (Some(org), Some(map)) = (&self.organization_id, content.as_object_mut()) {
            map.insert("organization_id".into(), Value::String(org.clone()));
        }
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical_json(&content).as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Hashes an API secret for storage; secrets are high-entropy, so a plain SHA-256 suffices.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_everywhere() {
        let v = json!({"b": 1, "a": {"d": [3, {"z": 1, "y": 2}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn actions_are_filed_under_their_resource() {
        assert_eq!(Action::FlagKillSwitch.as_str(), "flag.kill_switch");
        assert_eq!(Action::FlagKillSwitch.resource_type(), "flag");
        assert_eq!(Action::FlagConfigRestore.resource_type(), "flag_config");
        assert_eq!(Action::ApiKeyRevoke.resource_type(), "api_key");
    }
}
