//! The playground: a context evaluated against every flag of an environment, from the
//! in-memory snapshot the evaluation plane serves (so it answers exactly as SDKs and OFREP
//! would, without touching the database).

use serde_json::Value;
use vexil_core::Context;

use super::{Error, Result};
use crate::clock::now_ms;
use crate::snapshots::Snapshots;

/// One flag's result: key, value, variation and reason, as the evaluation API gives them.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) variation: String,
    pub(crate) reason: String,
}

/// Evaluates `context` (JSON text, an object) against every flag of the environment.
pub(crate) fn evaluate_all(
    snapshots: &Snapshots,
    env_id: &str,
    context: &str,
) -> Result<Vec<Outcome>> {
    let context: Context = serde_json::from_str(context).map_err(|e| {
        Error::invalid_field("context", format!("not a valid evaluation context: {e}"))
    })?;
    let env = snapshots.get(env_id).ok_or(Error::Unavailable)?;
    let now = now_ms();
    Ok(env
        .snapshot
        .evaluate_all(&context, now)
        .map(|(info, detail)| {
            let record = serde_json::to_value(detail.record(info.key)).unwrap_or(Value::Null);
            let reason = &record["reason"];
            let mut why = reason["kind"].as_str().unwrap_or_default().to_owned();
            for (field, label) in [("rule_index", "rule"), ("error_code", "error")] {
                if let Some(v) = reason.get(field).filter(|v| !v.is_null()) {
                    let shown = if field == "rule_index" {
                        (v.as_u64().unwrap_or(0) + 1).to_string()
                    } else {
                        v.as_str().unwrap_or_default().to_owned()
                    };
                    why.push_str(&format!(" ({label} {shown})"));
                }
            }
            if reason["in_rollout"] == Value::Bool(true) {
                why.push_str(" (rollout)");
            }
            Outcome {
                key: info.key.to_owned(),
                value: record["value"].to_string(),
                variation: record["variation"].as_str().unwrap_or("—").to_owned(),
                reason: why,
            }
        })
        .collect())
}
