//! The HTTP side of the client commands: requests to the management API with the token,
//! the API's errors turned into [`Failure`]s (each with its exit code), paging through
//! lists, and finding a project and its environments by key.

use std::time::Duration;

use reqwest_tls::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest_tls::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Connection;
use super::table::{clean, text};

/// A request that never got an answer gives up after this long (an import of a large
/// document takes a while).
const TIMEOUT: Duration = Duration::from_secs(120);
/// Items per page when the CLI reads a whole list (the API's maximum).
const PAGE: usize = 500;

pub(crate) const EXIT_REFUSED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_NOT_FOUND: u8 = 3;
pub(crate) const EXIT_AUTH: u8 = 4;
pub(crate) const EXIT_CONFLICT: u8 = 5;
pub(crate) const EXIT_UNAVAILABLE: u8 = 6;

/// Why a client command failed; [`Failure::exit_code`] is what the process ends with.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The API answered with an error status: its message, and notes such as the fields.
    Api {
        status: u16,
        message: String,
        notes: Vec<String>,
    },
    /// Nothing with that key (found by the CLI itself, from a list).
    NotFound(String),
    /// The server could not be reached, or did not answer in time.
    Unavailable(String),
    /// Something the CLI refuses or cannot read (e.g. an answer that is not JSON).
    Refused(String),
    /// A command-line value the CLI cannot use (a usage error, like clap's).
    Usage(String),
    /// Writing to standard output failed (a closed pipe ends the command quietly).
    Output(std::io::Error),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { status, .. } => match status {
                404 => EXIT_NOT_FOUND,
                401 | 403 => EXIT_AUTH,
                409 | 412 => EXIT_CONFLICT,
                500..=599 => EXIT_UNAVAILABLE,
                _ => EXIT_REFUSED,
            },
            Failure::NotFound(_) => EXIT_NOT_FOUND,
            Failure::Unavailable(_) => EXIT_UNAVAILABLE,
            Failure::Refused(_) => EXIT_REFUSED,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Failure::Output(_) => EXIT_REFUSED,
        }
    }

    /// `error: <message>` on stderr, then the notes indented (nothing for a closed pipe).
    pub(crate) fn report(&self) {
        match self {
            Failure::Api { message, notes, .. } => {
                eprintln!("error: {message}");
                for note in notes {
                    eprintln!("  {note}");
                }
            }
            Failure::NotFound(m)
            | Failure::Unavailable(m)
            | Failure::Refused(m)
            | Failure::Usage(m) => eprintln!("error: {m}"),
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Failure::Output(e) => eprintln!("error: writing the output: {e}"),
        }
    }

    /// Worth retrying later (while following): the server is down or failing.
    pub(crate) fn is_transient(&self) -> bool {
        self.exit_code() == EXIT_UNAVAILABLE
    }

    /// An error answer: the API's `{"error": {"code", "message", "details"}}` when it is one.
    fn from_answer(status: StatusCode, body: &[u8], anonymous: bool) -> Failure {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(clean)
            .unwrap_or_else(|| format!("the server answered {status}"));
        let mut notes = Vec::new();
        let details = error.and_then(|e| e.get("details"));
        if let Some(fields) = details
            .and_then(|d| d.get("fields"))
            .and_then(Value::as_object)
        {
            let lines: Vec<String> = fields
                .iter()
                .map(|(field, problem)| {
                    let problem = problem
                        .as_str()
                        .map_or_else(|| problem.to_string(), str::to_owned);
                    clean(&format!("{field}: {problem}"))
                })
                .collect();
            // A single field's message is already `field: problem`.
            if lines.len() > 1 || lines.first().is_some_and(|l| *l != message) {
                notes.extend(lines);
            }
        }
        if let Some(referrers) = details.and_then(|d| d.get("referrers")) {
            notes.push(format!("referrers: {}", clean(&referrers.to_string())));
        }
        if let Some(current) = details.and_then(|d| d.get("current_version")) {
            notes.push(format!("current version: {current}"));
        }
        if status == StatusCode::UNAUTHORIZED && anonymous {
            notes.push("no token was given: pass --token or set VEXIL_TOKEN".to_owned());
        }
        if status.is_redirection() {
            notes.push("check --url (the CLI does not follow redirects)".to_owned());
        }
        Failure::Api {
            status: status.as_u16(),
            message,
            notes,
        }
    }
}

/// `--url`: an http(s) URL without credentials, query or fragment (a path is kept, for a
/// server behind a prefix).
pub(crate) fn parse_base_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (use --token)".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// A management API client for one command.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest_tls::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive (never shown by `Debug`).
    authorization: Option<HeaderValue>,
    /// `--json`: print the API's JSON.
    pub(crate) json: bool,
}

impl Client {
    pub(crate) fn new(connection: &Connection) -> Result<Client, Failure> {
        let authorization = match connection.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Failure::Usage("the token has characters a header cannot carry".to_owned())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest_tls::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest_tls::redirect::Policy::none())
            .user_agent(concat!("vexil-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Refused(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: connection.url.clone(),
            authorization,
            json: connection.json,
        })
    }

    /// `<base>/api/v1/<segments…>`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// One request; a success's body read as `T` (an empty body as JSON `null`).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, Failure> {
        let url = self.endpoint(segments, query);
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| Failure::Refused(format!("cannot encode the request: {e}")))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(Failure::from_answer(
                status,
                &body,
                self.authorization.is_none(),
            ));
        }
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        serde_json::from_slice(body).map_err(|e| {
            Failure::Refused(format!(
                "the answer from {} is not the API's JSON ({e}): is --url a Vexil server?",
                self.base
            ))
        })
    }

    fn unreachable(&self, e: &reqwest_tls::Error) -> Failure {
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let base = self.base.as_str().trim_end_matches('/');
        Failure::Unavailable(if e.is_timeout() {
            format!("no answer from {base} within {} s", TIMEOUT.as_secs())
        } else if e.is_connect() {
            format!("cannot connect to {base}: {cause}")
        } else {
            format!("the request to {base} failed: {cause}")
        })
    }

    pub(crate) async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, Failure> {
        self.call(Method::GET, segments, query, None).await
    }

    pub(crate) async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    /// A GET whose answer is read as `T` (e.g. a type that keeps the server's key order).
    pub(crate) async fn get_as<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.call(Method::GET, segments, query, None).await
    }

    /// A POST whose answer is read as `T`.
    pub(crate) async fn post_as<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &Value,
    ) -> Result<T, Failure> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    pub(crate) async fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.call(Method::PATCH, segments, &[], Some(body)).await
    }

    /// A DELETE (its answer, usually empty, read as JSON `null`).
    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<Value, Failure> {
        self.call(Method::DELETE, segments, &[], None).await
    }

    /// Every item of a paged list (`{"items", "total", …}`), page by page.
    pub(crate) async fn list_all(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        loop {
            let mut q = query.to_vec();
            q.push(("limit", PAGE.to_string()));
            q.push(("offset", items.len().to_string()));
            let page = self.get(segments, &q).await?;
            let batch = page
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| Failure::Refused("the answer has no list of items".to_owned()))?;
            let total = page.get("total").and_then(Value::as_u64).unwrap_or(0);
            let got = batch.len();
            items.extend(batch.iter().cloned());
            if got == 0 || items.len() as u64 >= total {
                return Ok(items);
            }
        }
    }

    /// The project with this key (or id) among those the caller sees.
    pub(crate) async fn project(&self, wanted: &str) -> Result<Project, Failure> {
        let projects = self.list_all(&["projects"], &[]).await?;
        let project = |p: &Value| Project {
            id: text(p, "id"),
            key: text(p, "key"),
        };
        if let Some(p) = projects.iter().find(|p| text(p, "id") == wanted) {
            return Ok(project(p));
        }
        let matching: Vec<&Value> = projects
            .iter()
            .filter(|p| text(p, "key") == wanted)
            .collect();
        match matching.as_slice() {
            [one] => Ok(project(one)),
            [] => Err(Failure::NotFound(format!(
                "no project '{}'{}",
                clean(wanted),
                known(&projects, "projects you can see")
            ))),
            several => Err(Failure::Refused(format!(
                "{} organizations have a project '{}': pass its id with --project ({})",
                several.len(),
                clean(wanted),
                several
                    .iter()
                    .map(|p| text(p, "id"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The project's environments, in the API's order.
    pub(crate) async fn environments(&self, project_id: &str) -> Result<Vec<Value>, Failure> {
        self.list_all(&["projects", project_id, "environments"], &[])
            .await
    }
}

/// A project the command works in.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) id: String,
    pub(crate) key: String,
}

/// The environment with this key (or id) among `environments` of `project`.
pub(crate) fn pick_environment<'a>(
    environments: &'a [Value],
    wanted: &str,
    project: &str,
) -> Result<&'a Value, Failure> {
    environments
        .iter()
        .find(|e| text(e, "key") == wanted)
        .or_else(|| environments.iter().find(|e| text(e, "id") == wanted))
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "no environment '{}' in project '{}'{}",
                clean(wanted),
                clean(project),
                known(environments, "its environments")
            ))
        })
}

/// ` (label: a, b)` listing the keys of `items`, or nothing when there are none.
pub(crate) fn known(items: &[Value], label: &str) -> String {
    if items.is_empty() {
        return String::new();
    }
    let keys: Vec<String> = items.iter().take(20).map(|i| text(i, "key")).collect();
    let more = if items.len() > 20 { ", …" } else { "" };
    format!(" ({label}: {}{more})", keys.join(", "))
}
