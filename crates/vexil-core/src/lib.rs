//! `vexil-core`: Vexil's evaluation engine — the flag model, validation, compilation into
//! immutable snapshots, and evaluation — with no I/O and no clock (`now` is passed in).
//!
//! ```
//! use vexil_core::{Ruleset, Snapshot};
//! let ruleset = Ruleset::from_json(r#"{"version": 1, "flags": {"dark-mode": {
//!     "type": "boolean",
//!     "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
//!     "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}}}}"#)?;
//! let snapshot = Snapshot::compile(&ruleset)?;
//! let context: vexil_core::Context = serde_json::from_str(r#"{"targetingKey": "user-1"}"#).unwrap();
//! let detail = snapshot.evaluate("dark-mode", &context, 0);
//! assert_eq!(detail.value, Some(&serde_json::json!(true)));
//! # Ok::<(), vexil_core::ValidationErrors>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod clause;
mod compile;
mod context;
mod counts;
mod error;
mod eval;
mod fxhash;
pub mod hash;
mod model;
mod operand;
pub mod time;
mod update;

pub use clause::NOW_ATTRIBUTE;
pub use compile::{Snapshot, TOTAL_WEIGHT, is_valid_key};
pub use context::{Context, MAX_CONTEXT_ATTRIBUTES, MAX_CONTEXT_DEPTH};
pub use counts::Tally;
pub use error::{ValidationError, ValidationErrors};
pub use eval::{Detail, ErrorCode, Evaluation, FlagInfo, Reason, ReasonKind};
pub use model::{
    Clause, FlagDef, FlagType, Op, Prerequisite, Rollout, Rule, Ruleset, SegmentDef, SegmentRule,
    Serve, Target, Variation, WeightedVariation, from_json_with_path, from_value_with_path,
};
pub use update::Change;
