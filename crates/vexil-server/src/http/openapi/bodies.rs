//! Schema-only descriptions of bodies that have no Rust type of their own: merge patches
//! (read as JSON and applied to the resource), and responses built as JSON values. Keep
//! them in step with the handlers and `manage`; the OpenAPI test and the schemathesis run
//! (`scripts/schemathesis.sh`) check the responses against them.

#![allow(dead_code, reason = "schema-only types: described, never built")]

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Role;
use crate::audit::Actor;
use crate::schemas::{Prerequisite, Rule, SegmentRule, Serve, Target, Variation};
use crate::store::flags::{Flag, FlagConfig};
use crate::store::tokens::Token;
use crate::store::users::{Member, User, UserOrganization};

/// JSON merge patch of an organization: its name (the key never changes).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Inc.", "comment": "rebranding"}))]
pub(crate) struct OrganizationPatch {
    /// 1 to 200 characters.
    name: Option<String>,
    /// For the audit trail (at most 1000 characters).
    comment: Option<String>,
}

/// JSON merge patch of a project (key and organization never change).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Web shop", "description": "The storefront", "comment": "clearer name"}))]
pub(crate) struct ProjectPatch {
    name: Option<String>,
    description: Option<String>,
    /// For the audit trail.
    comment: Option<String>,
}

/// JSON merge patch of an environment (key and project never change).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"protected": true, "comment": "lock down staging"}))]
pub(crate) struct EnvironmentPatch {
    name: Option<String>,
    description: Option<String>,
    is_production: Option<bool>,
    /// Changes here then need the admin role.
    protected: Option<bool>,
    /// Configuration changes here are then proposed as change requests that another
    /// member approves (the kill switch is never held).
    requires_approval: Option<bool>,
    /// For the audit trail.
    comment: Option<String>,
}

/// JSON merge patch of a flag. `id`, `project_id`, `key`, `type`, `archived` and the
/// timestamps may be repeated with their current value but never changed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"description": "New checkout flow", "tags": ["checkout", "q3"], "comment": "tagging"}))]
pub(crate) struct FlagPatch {
    name: Option<String>,
    description: Option<String>,
    /// Replaced whole; every configuration must still resolve against them.
    variations: Option<Vec<Variation>>,
    tags: Option<Vec<String>>,
    client_side: Option<bool>,
    temporary: Option<bool>,
    /// For the audit trail.
    comment: Option<String>,
}

/// JSON merge patch of a flag's configuration in one environment. Arrays and a given
/// `fallthrough` are replaced whole; the result is validated against the environment's
/// whole ruleset.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"enabled": true, "rules": [{"description": "beta testers",
    "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}],
    "serve": {"variation": "on"}}], "comment": "beta for staff"}))]
pub(crate) struct ConfigPatch {
    enabled: Option<bool>,
    /// The variation served while disabled.
    off_variation: Option<String>,
    /// What is served when no target or rule matches.
    fallthrough: Option<Serve>,
    targets: Option<Vec<Target>>,
    rules: Option<Vec<Rule>>,
    prerequisites: Option<Vec<Prerequisite>>,
    /// For the audit trail and the revision.
    comment: Option<String>,
}

/// JSON merge patch of a segment (`null` resets a list or the description; key and project
/// never change).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"included": ["user-1", "user-2"], "comment": "two more testers"}))]
pub(crate) struct SegmentPatch {
    name: Option<String>,
    description: Option<String>,
    included: Option<Vec<String>>,
    excluded: Option<Vec<String>>,
    rules: Option<Vec<SegmentRule>>,
    /// For the audit trail.
    comment: Option<String>,
}

/// JSON merge patch of the caller's account: the name (email and id never change here).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada Lovelace"}))]
pub(crate) struct UserPatch {
    name: Option<String>,
    /// For the audit trail.
    comment: Option<String>,
}

/// The result of a kill switch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flag_id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "flag_key": "new-checkout",
    "changed": 1, "items": []}))]
pub(crate) struct KillSwitchResult {
    flag_id: String,
    flag_key: String,
    /// How many configurations were enabled and are now disabled.
    changed: u64,
    /// The flag's configurations in the environments concerned, as they are now.
    items: Vec<FlagConfig>,
}

/// One item of a bulk action: a configuration (enable, disable) or a flag (archive,
/// restore).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BulkItem {
    Config(FlagConfig),
    Flag(Flag),
}

/// The result of a bulk action.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"updated": 2, "items": []}))]
pub(crate) struct BulkResult {
    /// How many configurations (enable, disable) or flags (archive, restore) changed.
    updated: u64,
    /// Every item concerned, as it is now: configurations for enable and disable, flags
    /// for archive and restore.
    items: Vec<BulkItem>,
}

/// The caller's account and organizations.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"user": {"id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "email": "ada@example.com",
    "name": "Ada", "version": 2, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"},
    "organizations": [{"id": "0190e0a4-0000-7000-8000-000000000001", "key": "acme", "name": "Acme", "role": "admin"}]}))]
pub(crate) struct Me {
    user: User,
    organizations: Vec<UserOrganization>,
}

/// A new browser session.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"user": {"id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "email": "ada@example.com",
    "name": "Ada", "version": 2, "created_at": "2026-01-31T12:00:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z"},
    "organizations": [{"id": "0190e0a4-0000-7000-8000-000000000001", "key": "acme", "name": "Acme", "role": "admin"}],
    "csrf_token": "9f2c…", "expires_at": "2026-02-08T08:30:00.000Z", "idle_timeout_secs": 28800}))]
pub(crate) struct LoginResult {
    user: User,
    organizations: Vec<UserOrganization>,
    /// Send as `X-CSRF-Token` with every cookie-authenticated change.
    csrf_token: String,
    /// When the session ends at the latest (RFC 3339).
    expires_at: String,
    /// Seconds without a request after which the session ends.
    idle_timeout_secs: u64,
}

/// Which kind of credential the caller used.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CredentialKind {
    Session,
    PersonalToken,
    ServiceToken,
    InstanceToken,
}

/// The organization of a service token, with the token's role.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenOrganization {
    id: String,
    role: Role,
}

/// The organizations the caller reaches: a user's memberships, a service token's one
/// organization, or `"all"` for the instance token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SessionOrganizations {
    Memberships(Vec<UserOrganization>),
    Service(Vec<TokenOrganization>),
    #[schema(value_type = String)]
    All(String),
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "personal_token", "user": {"id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b",
    "email": "ada@example.com", "name": "Ada", "version": 2, "created_at": "2026-01-31T12:00:00.000Z",
    "updated_at": "2026-02-01T08:30:00.000Z"},
    "organizations": [{"id": "0190e0a4-0000-7000-8000-000000000001", "key": "acme", "name": "Acme", "role": "admin"}],
    "actor": {"id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "name": "ada@example.com (token ci)"},
    "role_cap": "editor"}))]
pub(crate) struct SessionInfo {
    kind: CredentialKind,
    /// The user, for a session or a personal token.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User>,
    organizations: SessionOrganizations,
    /// How changes by this caller appear in the audit trail.
    actor: Actor,
    /// A token's role cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    role_cap: Option<Role>,
    /// With a session cookie: the session's CSRF token.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// The boolean flags of an environment, by the Simple API.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"environment": "production", "flags": {"dark-mode": true, "new-checkout": false},
    "updated_at": "2026-02-01T08:30:00.000Z"}))]
pub(crate) struct SimpleList {
    /// The environment's key.
    environment: String,
    /// Each non-archived boolean flag by key: whether it serves `true` to a context without
    /// attributes.
    flags: BTreeMap<String, bool>,
    /// The latest change of the environment, its flags or configurations.
    updated_at: String,
}

/// A new member: the membership, plus a one-time `password` when the user was created
/// without one.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"user_id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "email": "bob@example.com",
    "name": "bob", "role": "editor", "created_at": "2026-01-31T12:00:00.000Z",
    "updated_at": "2026-01-31T12:00:00.000Z", "password": "correct-horse-battery-staple"}))]
pub(crate) struct CreatedMember {
    #[serde(flatten)]
    member: Member,
    /// Only for a user created by this request without a given password; shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// A new management token: the record plus the secret, shown only here.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0190e0a4-7c1e-7d2a-9b8f-3c4d5e6f7a8b", "name": "ci", "kind": "personal",
    "prefix": "vx_pat_3kQ9", "role": "editor", "user_id": "0190e0a4-0000-7000-8000-000000000002",
    "organization_id": null, "created_at": "2026-01-31T12:00:00.000Z",
    "created_by": "0190e0a4-0000-7000-8000-000000000002", "expires_at": null, "revoked_at": null,
    "last_used_at": null, "token": "vx_pat_3kQ9…"}))]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    record: Token,
    /// The secret (`vx_pat_…`): send as `Authorization: Bearer`.
    token: String,
}

/// `/health`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub(crate) struct Health {
    status: String,
}

/// `/ready`: `ready`, or `unavailable` with the reason.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready"}))]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// Why not ready: `snapshots not loaded` or `database unreachable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The results of a bulk evaluation, by flag key.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": {"new-checkout": {"flag_key": "new-checkout", "value": true, "variation": "on",
    "reason": {"kind": "FALLTHROUGH", "in_rollout": false}, "flag_version": 3}}}))]
pub(crate) struct BulkEvaluation {
    flags: BTreeMap<String, crate::schemas::Evaluation>,
}

/// Why OFREP served a value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OfrepReason {
    /// The flag is on and serves one value to everyone.
    Static,
    /// A target or rule matched.
    TargetingMatch,
    /// A percentage rollout chose the value.
    Split,
    /// The flag is off, or a prerequisite failed.
    Disabled,
    /// No target or rule matched: the fallthrough.
    Default,
}

/// OFREP error codes this server uses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OfrepErrorCode {
    /// The body is not JSON.
    ParseError,
    /// The body has no `context` object, or an invalid one.
    InvalidContext,
    /// The flag splits by an attribute the context lacks.
    TargetingKeyMissing,
    /// No such flag, archived, or not `client_side` for a client key.
    FlagNotFound,
    /// Anything else (such as a body over 1 MiB).
    General,
}

/// OFREP `bulkEvaluationFailure`: the whole request failed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"errorCode": "INVALID_CONTEXT", "errorDetails": "the request has no 'context' object"}))]
pub(crate) struct OfrepBulkFailure {
    error_code: OfrepErrorCode,
    error_details: String,
}

/// OFREP `generalErrorResponse`: a server-side failure, never with internals.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"errorDetails": "internal error"}))]
pub(crate) struct OfrepGeneralError {
    error_details: String,
}

/// One server-sent event (comments, such as the heartbeat, are not events).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"event": "patch", "id": "13",
    "data": "{\"kind\":\"flag\",\"key\":\"new-checkout\",\"version\":13,\"value\":{}}"}))]
pub(crate) struct SseEvent {
    /// `put`, `patch`, `delete` or `refetch`; OFREP's events are unnamed (`message`).
    event: Option<String>,
    /// The environment version once this event is applied.
    id: Option<String>,
    /// JSON text: for `put` the whole ruleset `{version, flags, segments}`; for `patch`
    /// `{kind, key, version, value}`; for `delete` `{kind, key, version}`; for `refetch`
    /// `{version}`; OFREP: `{"type": "refetchEvaluation", "etag"}`.
    data: String,
}

/// An error of the OFREP event stream: a query OFREP cannot read is in OFREP's shape, a
/// missing or unknown token in the management plane's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum OfrepStreamError {
    Api(super::errors::ErrorBody),
    Ofrep(OfrepBulkFailure),
}

/// JSON merge patch of a webhook (its secret and project never change here). Enabling a
/// webhook clears the reason the server disabled it for.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"enabled": true, "events": ["flag.*", "release.rolled_back"]}))]
pub(crate) struct WebhookPatch {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    format: Option<String>,
    enabled: Option<bool>,
    /// For the audit trail.
    comment: Option<String>,
}

/// JSON merge patch of a flag template (key and project never change). Flags already made
/// from it do not change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"tags": ["release", "search"], "comment": "tag search too"}))]
pub(crate) struct TemplatePatch {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::schemas::FlagType>)]
    kind: Option<String>,
    #[schema(value_type = Option<Vec<crate::schemas::Variation>>)]
    variations: Option<Vec<serde_json::Value>>,
    tags: Option<Vec<String>>,
    client_side: Option<bool>,
    temporary: Option<bool>,
    /// Environment key → starting configuration (`null` removes one).
    #[schema(value_type = Option<Object>)]
    environments: Option<serde_json::Value>,
    /// For the audit trail.
    comment: Option<String>,
}
