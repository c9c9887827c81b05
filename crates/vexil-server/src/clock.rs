//! The wall clock, for every layer: the store stamps rows with it, the evaluation plane
//! passes it to the engine (which has none of its own).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time as stored: fixed-width RFC 3339 UTC.
pub(crate) fn now_rfc3339() -> String {
    vexil_core::time::format_rfc3339(now_ms())
}
