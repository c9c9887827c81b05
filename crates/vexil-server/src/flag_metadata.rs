//! The metadata of one evaluation result, shared by the evaluation protocols (OFREP over
//! HTTP, flagd's over gRPC) so that both say the same about the same result.

use serde::Serialize;
use vexil_core::Detail;

use crate::keys::KeyKind;

/// Flag metadata (`metadata`): only booleans, strings and numbers, as the spec requires.
/// Rule and prerequisite details describe the flag's rules, so only server keys see them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepMetadata)]
pub(crate) struct FlagMetadata<'s> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flag_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule_id: Option<&'s str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prerequisite_key: Option<&'s str>,
}

impl<'s> FlagMetadata<'s> {
    /// What a key of `kind` may learn about how `detail` came about.
    pub(crate) fn of(detail: &Detail<'s>, kind: KeyKind) -> Self {
        let server = kind.is_server();
        FlagMetadata {
            flag_version: detail.flag_version,
            rule_id: detail.reason.rule_id.filter(|_| server),
            rule_index: detail.reason.rule_index.filter(|_| server),
            prerequisite_key: detail.reason.prerequisite_key.filter(|_| server),
        }
    }
}
