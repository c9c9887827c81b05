//! The web console: server-rendered pages under `/ui/`, from compile-time checked askama
//! templates (`templates/`), with one stylesheet and one small script of our own
//! (`assets/`). Every action is a plain form post answered by a redirect; the script only
//! adds confirmations, rule rows, the live banner and the theme toggle.
//!
//! Pages call the domain layer (`manage`) directly. Every route but sign-in and the assets
//! passes [`gate`]: the session cookie authenticates (else a redirect to sign-in), a form
//! post must carry the session's CSRF token in its `csrf` field, and the route is looked up
//! in the same policy table as the JSON API (`http::authz::policy`), after the keys in the
//! URL are resolved to ids ([`Place`]).

mod assets;
mod audit;
mod chart;
mod draft;
mod flag;
mod flags;
mod form;
mod frame;
mod insights;
mod keys;
mod people;
mod plans;
mod playground;
mod promote;
mod release;
mod segments;
mod settings;
mod sign_in;
mod templates;
mod webhooks;

use std::collections::HashMap;

use askama::Template;
use axum::RequestExt as _;
use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use std::sync::Arc;

use crate::access::{OrgScope, Principal};
use crate::audit::Actor;
use crate::credentials::constant_time_eq;
use crate::http::AppState;
use crate::http::auth::{self, csrf_token, session_cookie};
use crate::http::authz::{self, Check};
use crate::http::error::ApiError;
use crate::manage;
use crate::store::environments::Environment;
use crate::store::flags::Flag;
use crate::store::organizations::Organization;
use crate::store::projects::Project;
use crate::store::segments::Segment;
use crate::store::{self, Store};

pub(crate) use form::FormData;
pub(crate) use frame::Frame;

/// Every console route behind the gate: `(method, path)`. The router is built from this
/// list and a test checks that each has an entry in the policy table.
pub const ROUTES: [(&str, &str); 71] = [
    ("GET", "/ui/"),
    ("POST", "/ui/logout"),
    ("GET", "/ui/account"),
    ("POST", "/ui/account/password"),
    ("GET", "/ui/{org}/{project}"),
    ("GET", "/ui/{org}/{project}/live"),
    ("GET", "/ui/{org}/{project}/flags"),
    ("POST", "/ui/{org}/{project}/flags"),
    ("POST", "/ui/{org}/{project}/flags/bulk"),
    ("GET", "/ui/{org}/{project}/flags/{flag}"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/edit"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/kill"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/archive"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/restore"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/delete"),
    ("GET", "/ui/{org}/{project}/flags/{flag}/in/{env}"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/toggle"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/schedule"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/propose"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/copy"),
    ("POST", "/ui/{org}/{project}/flags/{flag}/in/{env}/release"),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/release/advance",
    ),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/release/pause",
    ),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/release/resume",
    ),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/release/rollback",
    ),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/release/cancel",
    ),
    ("GET", "/ui/{org}/{project}/releases"),
    ("GET", "/ui/{org}/{project}/changes"),
    ("POST", "/ui/{org}/{project}/changes/{change_id}/approve"),
    ("POST", "/ui/{org}/{project}/changes/{change_id}/reject"),
    ("POST", "/ui/{org}/{project}/changes/{change_id}/apply"),
    ("POST", "/ui/{org}/{project}/changes/{change_id}/cancel"),
    ("GET", "/ui/{org}/{project}/flags/{flag}/in/{env}/history"),
    ("GET", "/ui/{org}/{project}/flags/{flag}/in/{env}/insights"),
    ("GET", "/ui/{org}/{project}/insights"),
    (
        "POST",
        "/ui/{org}/{project}/flags/{flag}/in/{env}/history/{version}/restore",
    ),
    ("GET", "/ui/{org}/{project}/segments"),
    ("POST", "/ui/{org}/{project}/segments"),
    ("GET", "/ui/{org}/{project}/segments/{segment}"),
    ("POST", "/ui/{org}/{project}/segments/{segment}"),
    ("POST", "/ui/{org}/{project}/segments/{segment}/delete"),
    ("GET", "/ui/{org}/{project}/templates"),
    ("POST", "/ui/{org}/{project}/templates"),
    ("GET", "/ui/{org}/{project}/templates/{template}"),
    ("POST", "/ui/{org}/{project}/templates/{template}/delete"),
    ("GET", "/ui/{org}/{project}/keys"),
    ("POST", "/ui/{org}/{project}/keys"),
    ("POST", "/ui/{org}/{project}/keys/{key_id}/revoke"),
    ("GET", "/ui/{org}/{project}/webhooks"),
    ("POST", "/ui/{org}/{project}/webhooks"),
    ("GET", "/ui/{org}/{project}/webhooks/{webhook}"),
    ("POST", "/ui/{org}/{project}/webhooks/{webhook}"),
    ("POST", "/ui/{org}/{project}/webhooks/{webhook}/toggle"),
    ("POST", "/ui/{org}/{project}/webhooks/{webhook}/test"),
    ("POST", "/ui/{org}/{project}/webhooks/{webhook}/delete"),
    (
        "POST",
        "/ui/{org}/{project}/webhooks/{webhook}/deliveries/{delivery_id}/redeliver",
    ),
    ("GET", "/ui/{org}/{project}/audit"),
    ("GET", "/ui/{org}/{project}/people"),
    ("POST", "/ui/{org}/{project}/people"),
    ("POST", "/ui/{org}/{project}/people/{user_id}/role"),
    ("POST", "/ui/{org}/{project}/people/{user_id}/remove"),
    ("POST", "/ui/{org}/{project}/tokens"),
    ("POST", "/ui/{org}/{project}/tokens/{token_id}/revoke"),
    ("GET", "/ui/{org}/{project}/settings"),
    ("POST", "/ui/{org}/{project}/settings"),
    ("POST", "/ui/{org}/{project}/environments"),
    ("POST", "/ui/{org}/{project}/environments/{env}"),
    ("POST", "/ui/{org}/{project}/promote"),
    ("POST", "/ui/{org}/{project}/projects"),
    ("GET", "/ui/{org}/{project}/playground"),
];

/// The handler of a route of [`ROUTES`].
fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    let rest = path.strip_prefix("/ui/{org}/{project}").unwrap_or(path);
    match (method, rest) {
        ("GET", "/ui/") => get(sign_in::home),
        ("POST", "/ui/logout") => post(sign_in::logout),
        ("GET", "/ui/account") => get(sign_in::account),
        ("POST", "/ui/account/password") => post(sign_in::change_password),
        ("GET", "") => get(flags::project_home),
        ("GET", "/live") => get(flags::live),
        ("GET", "/flags") => get(flags::list),
        ("POST", "/flags") => post(flags::create),
        ("POST", "/flags/bulk") => post(flags::bulk),
        ("GET", "/flags/{flag}") => get(flag::first_environment),
        ("POST", "/flags/{flag}/edit") => post(flag::edit),
        ("POST", "/flags/{flag}/kill") => post(flag::kill),
        ("POST", "/flags/{flag}/archive") => post(flag::archive),
        ("POST", "/flags/{flag}/restore") => post(flag::restore),
        ("POST", "/flags/{flag}/delete") => post(flag::delete),
        ("GET", "/flags/{flag}/in/{env}") => get(flag::page),
        ("POST", "/flags/{flag}/in/{env}") => post(flag::save),
        ("POST", "/flags/{flag}/in/{env}/toggle") => post(flag::toggle),
        ("POST", "/flags/{flag}/in/{env}/schedule") => {
            post(|cx, place| release::hold(cx, place, "schedule"))
        }
        ("POST", "/flags/{flag}/in/{env}/propose") => {
            post(|cx, place| release::hold(cx, place, "propose"))
        }
        ("POST", "/flags/{flag}/in/{env}/copy") => post(promote::copy_flag),
        ("POST", "/flags/{flag}/in/{env}/release") => post(plans::start),
        ("POST", "/flags/{flag}/in/{env}/release/advance") => {
            post(|cx, place| plans::step(cx, place, "advance"))
        }
        ("POST", "/flags/{flag}/in/{env}/release/pause") => {
            post(|cx, place| plans::step(cx, place, "pause"))
        }
        ("POST", "/flags/{flag}/in/{env}/release/resume") => {
            post(|cx, place| plans::step(cx, place, "resume"))
        }
        ("POST", "/flags/{flag}/in/{env}/release/rollback") => {
            post(|cx, place| plans::step(cx, place, "rollback"))
        }
        ("POST", "/flags/{flag}/in/{env}/release/cancel") => {
            post(|cx, place| plans::step(cx, place, "cancel"))
        }
        ("GET", "/releases") => get(plans::list),
        ("GET", "/changes") => get(release::queue),
        ("POST", "/changes/{change_id}/approve") => {
            post(|cx, place, id| release::act(cx, place, id, "approve"))
        }
        ("POST", "/changes/{change_id}/reject") => {
            post(|cx, place, id| release::act(cx, place, id, "reject"))
        }
        ("POST", "/changes/{change_id}/apply") => {
            post(|cx, place, id| release::act(cx, place, id, "apply"))
        }
        ("POST", "/changes/{change_id}/cancel") => {
            post(|cx, place, id| release::act(cx, place, id, "cancel"))
        }
        ("GET", "/flags/{flag}/in/{env}/history") => get(flag::history),
        ("GET", "/flags/{flag}/in/{env}/insights") => get(insights::flag_page),
        ("GET", "/insights") => get(insights::overview),
        ("POST", "/flags/{flag}/in/{env}/history/{version}/restore") => {
            post(flag::restore_revision)
        }
        ("GET", "/segments") => get(segments::list),
        ("POST", "/segments") => post(segments::create),
        ("GET", "/segments/{segment}") => get(segments::page),
        ("POST", "/segments/{segment}") => post(segments::save),
        ("POST", "/segments/{segment}/delete") => post(segments::delete),
        ("GET", "/templates") => get(templates::list),
        ("POST", "/templates") => post(templates::create),
        ("GET", "/templates/{template}") => get(templates::page),
        ("POST", "/templates/{template}/delete") => post(templates::delete),
        ("GET", "/keys") => get(keys::list),
        ("POST", "/keys") => post(keys::create),
        ("POST", "/keys/{key_id}/revoke") => post(keys::revoke),
        ("GET", "/webhooks") => get(webhooks::list),
        ("POST", "/webhooks") => post(webhooks::create),
        ("GET", "/webhooks/{webhook}") => get(webhooks::page),
        ("POST", "/webhooks/{webhook}") => post(webhooks::save),
        ("POST", "/webhooks/{webhook}/toggle") => post(webhooks::toggle),
        ("POST", "/webhooks/{webhook}/test") => post(webhooks::test),
        ("POST", "/webhooks/{webhook}/delete") => post(webhooks::delete),
        ("POST", "/webhooks/{webhook}/deliveries/{delivery_id}/redeliver") => {
            post(webhooks::redeliver)
        }
        ("GET", "/audit") => get(audit::list),
        ("GET", "/people") => get(people::list),
        ("POST", "/people") => post(people::add),
        ("POST", "/people/{user_id}/role") => post(people::set_role),
        ("POST", "/people/{user_id}/remove") => post(people::remove),
        ("POST", "/tokens") => post(people::create_token),
        ("POST", "/tokens/{token_id}/revoke") => post(people::revoke_token),
        ("GET", "/settings") => get(settings::page),
        ("POST", "/settings") => post(settings::save_project),
        ("POST", "/environments") => post(settings::create_environment),
        ("POST", "/environments/{env}") => post(settings::save_environment),
        ("POST", "/promote") => post(promote::promote_project),
        ("POST", "/projects") => post(settings::create_project),
        ("GET", "/playground") => get(playground::page),
        _ => unreachable!("console route {method} {path} has no handler"),
    }
}

/// The console's routes.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let mut gated = Router::new();
    for (method, path) in ROUTES {
        gated = gated.route(path, handler(method, path));
    }
    let gated = gated.route_layer(middleware::from_fn_with_state(state, gate));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(sign_in::form).post(sign_in::submit))
        .route("/ui/assets/{name}", get(assets::serve))
        .merge(gated)
}

/// The console's routes that need no session: sign-in, the static assets and the two
/// redirects to `/ui/`.
pub const PUBLIC_ROUTES: [&str; 4] = ["/", "/ui", "/ui/login", "/ui/assets/{name}"];

/// Where a console URL points: the organization and project named by its keys, and the
/// flag, environment and segment when the route names them.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub(crate) org: Organization,
    pub(crate) project: Project,
    pub(crate) flag: Option<Flag>,
    pub(crate) env: Option<Environment>,
    pub(crate) segment: Option<Segment>,
}

impl Place {
    /// The URL of the project's pages (`/ui/{org}/{project}`).
    pub(crate) fn base(&self) -> String {
        format!("/ui/{}/{}", self.org.key, self.project.key)
    }

    pub(crate) fn flag(&self) -> Result<&Flag, Page> {
        self.flag.as_ref().ok_or_else(|| Page::not_found("flag"))
    }

    pub(crate) fn env(&self) -> Result<&Environment, Page> {
        self.env
            .as_ref()
            .ok_or_else(|| Page::not_found("environment"))
    }

    /// The id of the project's environment named `key` in a form (`""`: none, meaning
    /// every environment).
    pub(crate) async fn environment_id(
        &self,
        store: &Store,
        key: &str,
    ) -> Result<Option<String>, Page> {
        if key.is_empty() {
            return Ok(None);
        }
        let (envs, _) = manage::environments::list(store, &self.project.id, 100, 0).await?;
        envs.into_iter()
            .find(|e| e.key == key)
            .map(|e| Some(e.id))
            .ok_or_else(|| Page::not_found("environment"))
    }

    pub(crate) fn segment(&self) -> Result<&Segment, Page> {
        self.segment
            .as_ref()
            .ok_or_else(|| Page::not_found("segment"))
    }
}

/// The notice a page shows after a redirect (`?done=saved`; see `frame::notice_text`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Done {
    pub(crate) done: Option<String>,
}

/// The session's CSRF token, for the forms of the page being rendered.
#[derive(Debug, Clone)]
pub(crate) struct Csrf(pub(crate) String);

/// What every gated handler works with: the store, who is asking (and as whom changes are
/// recorded), the CSRF token for the forms it renders, and the submitted form (empty for a
/// page).
pub(crate) struct Ctx {
    pub(crate) store: Arc<Store>,
    /// The evaluation plane's in-memory rulesets (the playground, the live version).
    pub(crate) snapshots: Arc<crate::snapshots::Snapshots>,
    /// Insights settings (the stale rules) and pending counts.
    pub(crate) insights: Arc<crate::insights::Insights>,
    pub(crate) principal: Principal,
    pub(crate) by: manage::By,
    pub(crate) csrf: Csrf,
    pub(crate) form: FormData,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Page> {
        let by = manage::By::from_request_parts(parts, state).await?;
        let ext = &parts.extensions;
        let (Some(principal), Some(csrf)) = (ext.get::<Principal>(), ext.get::<Csrf>()) else {
            return Err(Page::status(StatusCode::UNAUTHORIZED, "Sign in first."));
        };
        Ok(Ctx {
            store: state.store.clone(),
            snapshots: state.snapshots.clone(),
            insights: state.insights.clone(),
            principal: principal.clone(),
            by,
            csrf: csrf.clone(),
            form: ext.get::<FormData>().cloned().unwrap_or_default(),
        })
    }
}

/// Authenticates, checks a form post's CSRF token and authorizes through the policy table.
async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match admit(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(response) => response,
    }
}

async fn admit(state: &AppState, mut req: Request) -> Result<Request, Response> {
    let cookie = session_cookie(req.headers(), state.auth.cookie_name());
    let Some(secret) = cookie else {
        return Err(to_sign_in(&req));
    };
    let principal = match auth::authenticate_session(&state.store, &state.auth, &secret, None).await
    {
        Ok(p) => p,
        Err(ApiError::Unauthorized) => return Err(to_sign_in(&req)),
        Err(e) => return Err(Page::from(e).into_response()),
    };
    let csrf = csrf_token(&secret);
    // Someone else set this person's password: nothing but choosing one's own (or
    // leaving) until it is done.
    let own_account = matches!(
        req.uri().path(),
        "/ui/account" | "/ui/account/password" | "/ui/logout"
    );
    if !own_account
        && manage::users::must_change_password(&state.store, &principal)
            .await
            .map_err(|e| Page::from(e).into_response())?
    {
        return Err(Page::redirect("/ui/account").into_response());
    }
    if *req.method() != Method::GET && *req.method() != Method::HEAD {
        // Read the form (bounded by the router's body limit) to check its token.
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, crate::http::MAX_BODY)
            .await
            .map_err(|_| {
                Page::status(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
                    .into_response()
            })?;
        let form = FormData::parse(&bytes);
        let given = form.get("csrf").unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
            return Err(Page::status(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from this console (its security token is missing or wrong). Reload the page and try again.",
            )
            .into_response());
        }
        req = Request::from_parts(parts, Body::empty());
        req.extensions_mut().insert(form);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(check) = authz::policy(req.method(), &route) else {
        tracing::error!(route = %route, method = %req.method(), "no access policy for this console route; refused");
        return Err(
            Page::status(StatusCode::FORBIDDEN, "This page has no access policy.").into_response(),
        );
    };
    let params: HashMap<String, String> = match req.extract_parts::<RawPathParams>().await {
        Ok(p) => p
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => return Err(Page::not_found("page").into_response()),
    };
    if let Some(place) = resolve(&state.store, &principal, &params)
        .await
        .map_err(IntoResponse::into_response)?
    {
        let ids = place_ids(&place, &params);
        let org = match check {
            Check::InHandler => place.org.id.clone(),
            Check::Role(resolve, role) => {
                authz::check_scope(&state.store, &principal, resolve, Some(role), &ids)
                    .await
                    .map_err(|e| Page::from(e).into_response())?
            }
            Check::ChangeEnvironment(resolve) => {
                authz::check_scope(&state.store, &principal, resolve, None, &ids)
                    .await
                    .map_err(|e| Page::from(e).into_response())?
            }
        };
        req.extensions_mut().insert(OrgScope(org));
        req.extensions_mut().insert(place);
    } else if !matches!(check, Check::InHandler) {
        return Err(Page::not_found("page").into_response());
    }
    req.extensions_mut().insert(Csrf(csrf));
    req.extensions_mut()
        .insert::<Actor>(principal.actor.clone());
    req.extensions_mut().insert(principal);
    Ok(req)
}

/// The ids the policy table's resolvers read, named as its entries for console routes
/// name them.
fn place_ids(place: &Place, params: &HashMap<String, String>) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    ids.insert("org".to_owned(), place.org.id.clone());
    ids.insert("project".to_owned(), place.project.id.clone());
    if let Some(f) = &place.flag {
        ids.insert("flag".to_owned(), f.id.clone());
        ids.insert("flag_id".to_owned(), f.id.clone());
    }
    if let Some(e) = &place.env {
        ids.insert("env".to_owned(), e.id.clone());
        ids.insert("env_id".to_owned(), e.id.clone());
    }
    if let Some(s) = &place.segment {
        ids.insert("segment".to_owned(), s.id.clone());
    }
    for raw in ["key_id", "change_id", "webhook", "template"] {
        if let Some(id) = params.get(raw) {
            ids.insert(raw.to_owned(), id.clone());
        }
    }
    ids
}

/// Resolves the keys of a console URL. An organization or project the caller cannot see
/// is "not found", exactly like one that does not exist.
async fn resolve(
    store: &Store,
    principal: &Principal,
    params: &HashMap<String, String>,
) -> Result<Option<Place>, Page> {
    let (Some(org_key), Some(project_key)) = (params.get("org"), params.get("project")) else {
        return Ok(None);
    };
    let mut conn = store.read().await.map_err(manage::Error::from)?;
    let org = store::organizations::get_by_key(&mut conn, org_key)
        .await
        .map_err(manage::Error::from)?
        .ok_or_else(|| Page::not_found("organization or project"))?;
    if principal.role_in(&mut conn, &org.id).await?.is_none() {
        return Err(Page::not_found("organization or project"));
    }
    let project = store::projects::get_by_key(&mut conn, &org.id, project_key)
        .await
        .map_err(manage::Error::from)?
        .ok_or_else(|| Page::not_found("project"))?;
    let flag = match params.get("flag") {
        Some(key) => Some(
            store::flags::get_by_key(&mut conn, &project.id, key)
                .await
                .map_err(manage::Error::from)?
                .ok_or_else(|| Page::not_found("flag"))?,
        ),
        None => None,
    };
    let env = match params.get("env") {
        Some(key) => Some(
            store::environments::get_by_key(&mut conn, &project.id, key)
                .await
                .map_err(manage::Error::from)?
                .ok_or_else(|| Page::not_found("environment"))?,
        ),
        None => None,
    };
    let segment = match params.get("segment") {
        Some(key) => Some(
            store::segments::get_by_key(&mut conn, &project.id, key)
                .await
                .map_err(manage::Error::from)?
                .ok_or_else(|| Page::not_found("segment"))?,
        ),
        None => None,
    };
    Ok(Some(Place {
        org,
        project,
        flag,
        env,
        segment,
    }))
}

/// To the sign-in page, coming back here afterwards (for a page; a form post goes back to
/// the console's home).
fn to_sign_in(req: &Request) -> Response {
    let next = if *req.method() == Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/ui/", |p| p.as_str())
            .to_owned()
    } else {
        "/ui/".to_owned()
    };
    Redirect::to(&format!("/ui/login?next={}", form::url_encode(&next))).into_response()
}

/// A page answer: rendered HTML, a redirect after a form post, or an error page.
#[derive(Debug)]
pub(crate) enum Page {
    Html(StatusCode, String),
    Redirect(String),
    Error(StatusCode, String),
}

pub(crate) type PageResult = Result<Page, Page>;

impl Page {
    pub(crate) fn render(t: &impl Template) -> Page {
        Page::render_status(StatusCode::OK, t)
    }

    pub(crate) fn render_status(status: StatusCode, t: &impl Template) -> Page {
        match t.render() {
            Ok(html) => Page::Html(status, html),
            Err(e) => {
                tracing::error!(error = %e, "a console template failed to render");
                Page::Error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }

    /// A page with a form: 400 when it shows the form refused (its problems), else 200.
    pub(crate) fn render_form(refused: bool, t: &impl Template) -> Page {
        let status = if refused {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Page::render_status(status, t)
    }

    /// A redirect (303: the browser follows it with a GET) to a path of ours.
    pub(crate) fn redirect(to: impl Into<String>) -> Page {
        Page::Redirect(to.into())
    }

    pub(crate) fn not_found(what: &str) -> Page {
        Page::Error(StatusCode::NOT_FOUND, format!("No such {what}."))
    }

    pub(crate) fn status(status: StatusCode, message: &str) -> Page {
        Page::Error(status, message.to_owned())
    }
}

impl From<ApiError> for Page {
    fn from(e: ApiError) -> Page {
        if let ApiError::Internal(inner) = &e {
            tracing::error!(error = %inner, "internal error in the console");
        }
        Page::Error(e.status(), e.to_string())
    }
}

impl From<manage::Error> for Page {
    fn from(e: manage::Error) -> Page {
        Page::from(ApiError::from(e))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
    asset_css: &'static str,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self {
            Page::Html(status, html) => html_response(status, html),
            Page::Redirect(to) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Page::Error(status, message) => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                    asset_css: assets::CSS_URL.as_str(),
                };
                html_response(status, page.render().unwrap_or(message))
            }
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Whether the principal may change things in the place's organization (editor or more):
/// pages show edit controls only then (the routes check again through the policy table).
pub(crate) async fn role_here(
    store: &Store,
    principal: &Principal,
    place: &Place,
) -> Result<crate::access::Role, Page> {
    let mut conn = store.read().await.map_err(manage::Error::from)?;
    principal
        .role_in(&mut conn, &place.org.id)
        .await?
        .ok_or_else(|| Page::not_found("organization or project"))
}
