//! Console load test: server-side render time of the web console's flags page
//! (`GET /ui/{org}/{project}/flags`, 50 flags a page) over a project of 10,000 flags —
//! `cargo run --release -p vexil-server --example console_render`.
//!
//! Starts a server on a fresh SQLite file in a separate OS process (this program
//! re-executed with a hidden `--serve`, with the `vexil` binary's allocator), creates
//! `--flags` flags in the default project over the management API, adds an admin member and
//! signs in through the console's own forms as a browser would (the sign-in form with its
//! double-submit token, then the forced change of the one-time password, then a second
//! sign-in). It then requests the first page, a search (`?q=flag-09`, 1,000 matches) and a
//! page deep in the list (`?page=100`), each `--warmup` times and then `--requests` times one
//! after another on one keep-alive connection, and prints the latency percentiles (until
//! the whole body is read) and the size of each page.
//!
//! ```sh
//! cargo run --release -p vexil-server --example console_render
//! cargo run --release -p vexil-server --example console_render -- --flags 1000 --requests 500
//! ```
//!
//! Bounded: the whole run stops by itself after `--time-limit` seconds (default 10 minutes,
//! seeding included). Loopback only. Not part of any test run.
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::{Api, ChildServer, loadavg};

/// The allocator of the `vexil` binary, so that the server measured here allocates as
/// `vexil serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// The console's session cookie (without `--secure-cookies`).
const SESSION_COOKIE: &str = "vexil_session";
/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "vexil_login";
/// The member who signs in to the console.
const EMAIL: &str = "console-load@example.com";
/// The password the member chooses instead of the one-time one.
const NEW_PASSWORD: &str = "console-render-load-test-password";

#[derive(Debug, Parser)]
struct Args {
    /// Flags to create in the default project.
    #[arg(long, default_value_t = 10_000)]
    flags: usize,
    /// Concurrent requests while creating the flags.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Measured requests per page (sequential).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Requests per page before measuring (not counted).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 600)]
    time_limit: u64,
    /// Internal: serve this database URL, print the address, run until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.serve {
        return support::serve(url, false);
    }
    // The load generator is sequential: one worker leaves the other cores to the server.
    let args = &args;
    let database = ("sqlite", "", "consolerender");
    support::bounded(database, 1, args.time_limit, |url| async move {
        run(args, &url).await
    })
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut server = ChildServer::start(url, false).await?;
    let result = async {
        // No redirects followed: the sign-in steps look at them.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        let api = Api::new(server.addr, client);
        let seeding = Instant::now();
        let org = seed(&api, args.flags, args.writers).await?;
        println!(
            "created {} flags in {:.1}s",
            args.flags,
            seeding.elapsed().as_secs_f64()
        );
        let password = api
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/organizations/{org}/members"),
                Some(json!({"email": EMAIL, "role": "admin"})),
            )
            .await?["password"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no one-time password in the new member's answer"))?
            .to_owned();
        let session = sign_in(&api, &password).await?;
        println!(
            "signed in through the console; server pid {} at {}; {} cores; loadavg {}",
            server.pid,
            server.addr,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg()
        );
        println!(
            "{:<42} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "page", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes"
        );
        // Sorted by key, 50 a page: the first key each page must show (when there are
        // enough flags for it).
        let pages = [("", 0), ("?q=flag-09", 9_000), ("?page=100", 99 * 50)];
        for (query, first) in pages {
            let path = format!("/ui/default/default/flags{query}");
            let expect = (first < args.flags).then(|| format!("flag-{first:05}"));
            measure(&api, &session, &path, expect.as_deref(), args).await?;
        }
        println!("loadavg {}", loadavg());
        anyhow::Ok(())
    }
    .await;
    server.stop().await;
    result
}

/// Creates the flags; returns the default organization's id.
async fn seed(api: &Api, flags: usize, writers: usize) -> anyhow::Result<String> {
    let orgs = api.get("/api/v1/organizations").await?;
    let org = id_of(&orgs, "default", "organization")?;
    let projects = api.get("/api/v1/projects").await?;
    let project = id_of(&projects, "default", "project")?;
    // A few writers at once; SQLite serializes them anyway.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers.max(1) {
        let (api, next, project) = (api.clone(), next.clone(), project.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= flags {
                    return anyhow::Ok(());
                }
                api.send(
                    reqwest::Method::POST,
                    &format!("/api/v1/projects/{project}/feature-flags"),
                    Some(flag(i)),
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(org)
}

/// The `id` of the item with `key` in a listing.
fn id_of(listing: &Value, key: &str, what: &str) -> anyhow::Result<String> {
    listing["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["key"] == key))
        .and_then(|i| i["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no {what} with the key '{key}'"))
}

/// A boolean flag with a name, a description and tags, as a list row shows them.
fn flag(i: usize) -> Value {
    let area = ["checkout", "search", "billing", "onboarding", "profile"][i % 5];
    json!({
        "key": format!("flag-{i:05}"),
        "name": format!("Flag {i:05} for {area}"),
        "description": format!("Rolls out change {i} of the {area} area to a growing share of users."),
        "tags": [area, format!("team-{}", i % 12)],
        "client_side": i.is_multiple_of(3),
    })
}

/// Signs in as the member through the console's forms; returns the `Cookie` header of the
/// session.
async fn sign_in(api: &Api, one_time_password: &str) -> anyhow::Result<String> {
    let session = login(api, one_time_password).await?;
    // A first sign-in with a password someone else set goes to the account page.
    let flags = api.page("/ui/default/default/flags", &session).await?;
    anyhow::ensure!(
        flags.status == StatusCode::SEE_OTHER && flags.location.as_deref() == Some("/ui/account"),
        "expected the forced password change, got {} to {:?}",
        flags.status,
        flags.location
    );
    let account = api.page("/ui/account", &session).await?;
    anyhow::ensure!(
        account.status == StatusCode::OK,
        "/ui/account: {}",
        account.status
    );
    let csrf = hidden_field(&account.body, "csrf")
        .ok_or_else(|| anyhow::anyhow!("no csrf field on /ui/account"))?;
    let changed = api
        .post_form(
            "/ui/account/password",
            &session,
            &[
                ("csrf", csrf.as_str()),
                ("current_password", one_time_password),
                ("new_password", NEW_PASSWORD),
                ("repeat_password", NEW_PASSWORD),
            ],
        )
        .await?;
    anyhow::ensure!(
        changed.status == StatusCode::SEE_OTHER,
        "the password change answered {}",
        changed.status
    );
    // The change ends every session: sign in again with the new password.
    let session = login(api, NEW_PASSWORD).await?;
    let flags = api.page("/ui/default/default/flags", &session).await?;
    anyhow::ensure!(
        flags.status == StatusCode::OK,
        "the flags page after signing in: {} to {:?}",
        flags.status,
        flags.location
    );
    Ok(session)
}

/// One pass through the sign-in form; returns the session's `Cookie` header.
async fn login(api: &Api, password: &str) -> anyhow::Result<String> {
    let form = api.page("/ui/login", "").await?;
    anyhow::ensure!(form.status == StatusCode::OK, "/ui/login: {}", form.status);
    let login_cookie = form
        .cookie(LOGIN_COOKIE)
        .ok_or_else(|| anyhow::anyhow!("no {LOGIN_COOKIE} cookie from /ui/login"))?;
    let token = hidden_field(&form.body, "token")
        .ok_or_else(|| anyhow::anyhow!("no token field on /ui/login"))?;
    let signed_in = api
        .post_form(
            "/ui/login",
            &format!("{LOGIN_COOKIE}={login_cookie}"),
            &[
                ("token", token.as_str()),
                ("next", "/ui/"),
                ("email", EMAIL),
                ("password", password),
            ],
        )
        .await?;
    let session = signed_in.cookie(SESSION_COOKIE).ok_or_else(|| {
        anyhow::anyhow!(
            "signing in answered {} without a {SESSION_COOKIE} cookie",
            signed_in.status
        )
    })?;
    Ok(format!("{SESSION_COOKIE}={session}"))
}

/// The `value` of the form field named `name` (any attribute order).
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value = tag.find("value=\"")? + "value=\"".len();
    let len = tag[value..].find('"')?;
    Some(tag[value..value + len].to_owned())
}

/// Requests `path` `warmup` times, then `requests` times measured, and prints a row;
/// the page must name the flag `expect`.
async fn measure(
    api: &Api,
    session: &str,
    path: &str,
    expect: Option<&str>,
    args: &Args,
) -> anyhow::Result<()> {
    let body = api.page_ok(path, session).await?;
    if let Some(key) = expect {
        anyhow::ensure!(
            support::find(&body, key.as_bytes()).is_some(),
            "{path} does not show the flag {key}"
        );
    }
    for _ in 1..args.warmup {
        api.page_ok(path, session).await?;
    }
    let mut latencies = Vec::with_capacity(args.requests);
    let mut bytes = body.len();
    for _ in 0..args.requests.max(1) {
        let started = Instant::now();
        bytes = api.page_ok(path, session).await?.len();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "{:<42} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10}",
        format!("GET {path}"),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        bytes
    );
    Ok(())
}

/// The `p` quantile of sorted durations, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A console answer: status, redirect target, cookies set and body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Answer {
    async fn of(resp: reqwest::Response) -> anyhow::Result<Answer> {
        let status = resp.status();
        let headers = resp.headers();
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = resp.text().await?;
        Ok(Answer {
            status,
            location,
            set_cookies,
            body,
        })
    }

    /// The value of the cookie `name` that this answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let pair = c.split(';').next()?;
            let (n, v) = pair.split_once('=')?;
            (n.trim() == name && !v.is_empty()).then(|| v.to_owned())
        })
    }
}

/// The console's pages and forms, as a browser reaches them (cookies given per call).
trait ConsolePages {
    async fn page(&self, path: &str, cookie: &str) -> anyhow::Result<Answer>;
    async fn page_ok(&self, path: &str, cookie: &str) -> anyhow::Result<axum::body::Bytes>;
    async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Answer>;
}

impl ConsolePages for Api {
    /// A console page with the given `Cookie` header (none if empty).
    async fn page(&self, path: &str, cookie: &str) -> anyhow::Result<Answer> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if !cookie.is_empty() {
            req = req.header(COOKIE, cookie);
        }
        Answer::of(req.send().await?).await
    }

    /// A console page that must answer 200; returns its body.
    async fn page_ok(&self, path: &str, cookie: &str) -> anyhow::Result<axum::body::Bytes> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
        Ok(body)
    }

    /// A console form post with the given `Cookie` header.
    async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .form(fields)
            .send()
            .await?;
        Answer::of(resp).await
    }
}
