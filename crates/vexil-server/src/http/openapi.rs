//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations, served
//! at `/api-docs/openapi.json`, with the vendored Swagger UI at `/docs` (works offline).

pub(crate) mod bodies;
pub(crate) mod errors;

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    AppState, api_keys, as_code, audit_logs, environments, evaluate, flag_configs, flags, insights,
    members, ofrep, oidc, ops, organizations, pending, projects, release, segments, sessions,
    simple, stream, templates, tokens, users, webhooks, ws,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vexil",
        description = "Self-hosted feature flags: management API. Errors have the shape \
            `{\"error\": {\"code\", \"message\", \"details\"}}`; lists are `{items, total, limit, offset}`; \
            mutable resources carry `version`, returned as `ETag`, checked against `If-Match` (412).",
        license(name = "Apache-2.0")
    ),
    paths(
        evaluate::evaluate, evaluate::evaluate_bulk, evaluate::sdk_config, stream::stream_ruleset, stream::ofrep_event_stream, ws::stream_ws, ws::ws_token,
        ops::health, ops::ready, ops::metrics,
        organizations::list_organizations, organizations::create_organization, organizations::get_organization,
        organizations::update_organization, organizations::delete_organization,
        projects::list_projects, projects::create_project, projects::get_project, projects::update_project,
        projects::delete_project,
        environments::list_environments, environments::create_environment, environments::get_environment,
        environments::update_environment, environments::delete_environment, environments::copy_environment,
        flags::list_flags, flags::create_flag, flags::get_flag, flags::update_flag, flags::delete_flag,
        flags::archive_flag, flags::restore_flag, flags::kill_switch,
        flags::bulk_update_flags,
        flag_configs::list_flag_configs, flag_configs::get_config, flag_configs::update_config,
        flag_configs::toggle_config,
        flag_configs::list_revisions, flag_configs::restore_revision,
        pending::create_scheduled, pending::list_scheduled, pending::project_scheduled, pending::get_scheduled,
        pending::cancel_scheduled, pending::create_request, pending::list_requests, pending::project_requests,
        pending::get_request, pending::cancel_request, pending::approve_request, pending::reject_request,
        pending::apply_request,
        release::start, release::get_plan, release::advance, release::pause, release::resume,
        release::rollback, release::cancel, release::project_plans,
        insights::sdk_metrics, insights::track, insights::flag_insights, insights::environment_insights,
        segments::list_segments, segments::create_segment, segments::get_segment, segments::update_segment,
        segments::delete_segment,
        api_keys::list_api_keys, api_keys::create_api_key, api_keys::revoke_api_key, api_keys::delete_api_key,
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::get_webhook, webhooks::update_webhook,
        webhooks::delete_webhook, webhooks::test_webhook, webhooks::list_deliveries, webhooks::get_delivery,
        webhooks::redeliver,
        as_code::export_project, as_code::import_project,
        templates::list_templates, templates::create_template, templates::get_template,
        templates::update_template, templates::delete_template,
        audit_logs::list_audit_logs, audit_logs::get_audit_log, audit_logs::verify_audit_log,
        simple::list_simple, simple::create_simple, simple::get_simple, simple::update_simple,
        ofrep::evaluate_flag, ofrep::evaluate_flags,
        sessions::login, sessions::logout, sessions::current_session, oidc::oidc_login, oidc::oidc_callback,
        users::get_me, users::update_me, users::change_password,
        members::list_members, members::add_member, members::update_member, members::remove_member,
        tokens::list_tokens, tokens::create_token, tokens::get_token, tokens::revoke_token,
        tokens::delete_token,
    ),
    components(schemas(errors::ErrorBody)),
    modifiers(&BearerAuth, &Aliases, &ErrorExamples),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "evaluation", description = "Evaluation with an environment API key: native evaluate, bulk, and the SDK ruleset"),
        (name = "organizations"), (name = "projects"), (name = "environments"),
        (name = "flags", description = "Flags of a project, created in every environment; archive, restore, kill switch, bulk actions"),
        (name = "flag configurations", description = "A flag's configuration in one environment, validated against the environment's whole ruleset; every change is a new version with a revision"),
        (name = "revisions", description = "The history of a flag configuration; restoring an old revision creates a new version"),
        (name = "release control", description = "Configuration changes held until a time (scheduled changes) or until another member approves them (change requests); environments with `requires_approval` refuse direct changes with 409 `approval_required`, except the kill switch"),
        (name = "release plans", description = "Guarded staged rollouts: a plan moves one flag in one environment from a control to a treatment variation in stages (it owns the configuration's fallthrough while live), advances by itself after each stage's `min_duration` while its guard is healthy, and rolls back at once when the guard's event rate passes `max_rate`"),
        (name = "insights", description = "How flags are used: evaluations counted by the server and reported by SDKs, tracked events attributed to the variation each watching flag serves, per flag and environment over time and per environment, as JSON or CSV"),
        (name = "segments", description = "Reusable audiences of a project, seen by every environment"),
        (name = "API keys", description = "Evaluation-plane keys of a project, each bound to one environment; the secret is shown once, at creation"),
        (name = "flag templates", description = "A project's predefined flag shapes (type, variations, tags, temporary, client-side) with a starting configuration per environment; `POST …/feature-flags {\"template\": KEY}` makes a flag from one"),
        (name = "flags as code", description = "A project as one document (segments, flags, variations, each environment's configuration), exported and imported all or nothing; `vexil export` and `vexil apply` use these"),
        (name = "webhooks", description = "Signed HTTP notifications of a project's changes, from its committed audit trail (Standard Webhooks signatures; `standard`, `slack` and `discord` formats), delivered at least once and in order per webhook, retried with exponential backoff for 24 h; admin role"),
        (name = "audit logs", description = "The hash-chained audit trail of every change, and its verification"),
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol 0.3.0, authenticated with an API key (`Authorization: Bearer` or `X-API-Key`); errors in OFREP's own shape"),
        (name = "auth", description = "Browser sessions: log in with email and password for an HttpOnly session cookie; cookie-authenticated changes carry the session's `X-CSRF-Token`"),
        (name = "users", description = "The caller's own account"),
        (name = "members", description = "Who belongs to an organization, with which role: owner, admin, editor, viewer"),
        (name = "tokens", description = "Personal access tokens (act as their user, capped at a role) and service tokens (one organization, one role); the secret is shown once"),
        (name = "simple API", description = "On/off boolean flags by name in one environment: project `default`, environment `production` unless `?project=&environment=`"),
    )
)]
#[derive(Debug)]
pub(crate) struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An environment API key (`Authorization: Bearer <key>` works too)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "vexil_session",
                "The browser session from `POST /api/v1/auth/login`; changes also need `X-CSRF-Token`",
            ))),
        );
    }
}

/// Paths served by the same handlers as documented ones, documented as copies (with their
/// own operation ids): the Simple API answers `/v1/feature-flags` and `/v1/feature-flags/`
/// alike, and a configuration toggles at `…/toggle` as at `…/config/toggle`.
#[derive(Debug)]
struct Aliases;

const ALIASES: [(&str, &str, &str); 2] = [
    ("/v1/feature-flags/", "/v1/feature-flags", "without_slash"),
    (
        "/api/v1/flags/{flag_id}/environments/{env_id}/config/toggle",
        "/api/v1/flags/{flag_id}/environments/{env_id}/toggle",
        "short_path",
    ),
];

impl Modify for Aliases {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (documented, alias_path, suffix) in ALIASES {
            let Some(item) = openapi.paths.paths.get(documented) else {
                continue;
            };
            let mut alias = item.clone();
            for op in [&mut alias.get, &mut alias.post, &mut alias.patch]
                .into_iter()
                .flatten()
            {
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_{suffix}"));
            }
            openapi.paths.paths.insert(alias_path.to_owned(), alias);
        }
    }
}

/// Error responses declared in a handler's own `responses(...)` with `body = ErrorBody` get
/// the example of their status (the sets in `errors` carry theirs already).
#[derive(Debug)]
struct ErrorExamples;

impl Modify for ErrorExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error_body = utoipa::openapi::Ref::from_schema_name("ErrorBody");
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    let (utoipa::openapi::RefOr::T(response), Ok(status)) =
                        (response, status.parse::<u16>())
                    else {
                        continue;
                    };
                    let Some(content) = response.content.get_mut("application/json") else {
                        continue;
                    };
                    let is_error_body = matches!(
                        &content.schema,
                        Some(utoipa::openapi::RefOr::Ref(r)) if *r == error_body
                    );
                    if is_error_body && content.example.is_none() && content.examples.is_empty() {
                        content.example = Some(errors::example(status));
                    }
                }
            }
        }
    }
}

/// `/api-docs/openapi.json` and the Swagger UI at `/docs`.
pub(crate) fn router() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/api-docs/openapi.json", ApiDoc::openapi()))
}
