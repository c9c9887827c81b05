//! The audit trail's hash chain: `hash = sha256(prev_hash ‖ canonical JSON of the entry)`.
//! Canonical JSON has object keys sorted and no whitespace, so any edit of a stored entry
//! (or removal of one before the last) changes a hash that a later entry depends on.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something: an API token, a user, or the server itself.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    pub id: String,
    pub name: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            id: "system".into(),
            name: "vexil".into(),
        }
    }
}

/// One audit entry as stored and served (DESIGN §2).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub seq: i64,
    pub at: String,
    pub actor: Value,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub comment: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The organization the entry belongs to (who may read it); absent for instance-level
    /// entries such as logins, and for entries written before organizations were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry, given its `prev_hash` and content.
    pub fn compute_hash(&self) -> String {
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
pub fn canonical_json(value: &Value) -> String {
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
pub fn hash_secret(secret: &str) -> String {
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
}
