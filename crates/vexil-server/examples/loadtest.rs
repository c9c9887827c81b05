//! Management-API load test: starts a server in-process on a fresh database (SQLite file or
//! a new PostgreSQL database), seeds flags, then drives it from N concurrent clients over
//! loopback for a fixed time and prints p50/p99 latencies: reads under each kind of credential
//! (instance token, personal token, session cookie), logins (argon2id), config changes and
//! filtered lists. Bounded in time; stops by itself.
//!
//! ```sh
//! cargo run --release -p vexil-server --example loadtest -- --backend sqlite
//! cargo run --release -p vexil-server --example loadtest -- --backend postgres \
//!     --admin-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::TOKEN;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use vexil_server::{App, Config};

/// Builds the request number `n` of a scenario: method, path and optional JSON body.
type MakeRequest = dyn Fn(u64) -> (reqwest::Method, String, Option<Value>) + Send + Sync;

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Flags to seed.
    #[arg(long, default_value_t = 1000)]
    flags: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (url, cleanup) =
        support::scratch_database(&args.backend, &args.admin_url, "loadtest").await?;
    let result = run(&args, &url).await;
    cleanup.run().await;
    result
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut config = Config::for_tests(url);
    config.bootstrap_token = Some(SecretString::from(TOKEN));
    let app = App::build(&config).await?;
    let base = format!("http://{}", app.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;

    let api = Api {
        client: client.clone(),
        base: base.clone(),
        auth: Auth::Bearer(TOKEN.into()),
    };
    let project = api.get("/api/v1/projects").await?["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let envs = api
        .get(&format!("/api/v1/projects/{project}/environments"))
        .await?;
    let env = envs["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("backend {}, seeding {} flags…", args.backend, args.flags);
    let mut flag_ids = Vec::with_capacity(args.flags);
    for i in 0..args.flags {
        let tag = if i.is_multiple_of(10) {
            "checkout"
        } else {
            "misc"
        };
        let body =
            json!({"key": format!("flag-{i:05}"), "name": format!("Flag {i}"), "tags": [tag]});
        let flag = api
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/feature-flags"),
                Some(body),
            )
            .await?;
        flag_ids.push(flag["id"].as_str().unwrap_or_default().to_owned());
    }
    let flag_ids = Arc::new(flag_ids);

    let rule = |n: u64| {
        json!({"enabled": n.is_multiple_of(2), "rules": [{"clauses": [
            {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]},
            {"attribute": "plan", "op": "in", "values": ["pro", "enterprise"]}],
            "serve": {"variation": "on"}}], "comment": format!("load test change {n}")})
    };
    // A user (editor of `default`) with a session and a personal token, to measure what
    // authentication and authorization cost per request, and a login's argon2id.
    let org = api.get("/api/v1/organizations").await?["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let member = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/organizations/{org}/members"),
            Some(json!({"email": "load@example.com", "role": "editor", "password": "load test password"})),
        )
        .await?;
    anyhow::ensure!(member["role"] == "editor", "member: {member}");
    let anonymous = Api {
        auth: Auth::Anonymous,
        ..api.clone()
    };
    let login_body = json!({"email": "load@example.com", "password": "load test password"});
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&login_body)
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("vexil_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let csrf = login.json::<Value>().await?["csrf_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let session = Api {
        auth: Auth::Session { cookie, csrf },
        ..api.clone()
    };
    let pat = session
        .send(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "load"})),
        )
        .await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let personal = Api {
        auth: Auth::Bearer(pat),
        ..api.clone()
    };
    let get_flag = |ids: Arc<Vec<String>>| -> Box<MakeRequest> {
        Box::new(move |n| {
            let id = &ids[(n as usize * 7919) % ids.len()];
            (
                reqwest::Method::GET,
                format!("/api/v1/feature-flags/{id}"),
                None,
            )
        })
    };
    let scenarios: Vec<(&str, &Api, Box<MakeRequest>)> = vec![
        (
            "GET flag (instance token)",
            &api,
            get_flag(flag_ids.clone()),
        ),
        (
            "GET flag (personal token of an editor)",
            &personal,
            get_flag(flag_ids.clone()),
        ),
        (
            "GET flag (session cookie of an editor)",
            &session,
            get_flag(flag_ids.clone()),
        ),
        (
            "POST login (argon2id, new session)",
            &anonymous,
            Box::new(move |_| {
                (
                    reqwest::Method::POST,
                    "/api/v1/auth/login".into(),
                    Some(login_body.clone()),
                )
            }),
        ),
        (
            "PATCH flag config",
            &api,
            Box::new({
                let ids = flag_ids.clone();
                let env = env.clone();
                move |n| {
                    let id = &ids[(n as usize * 7919) % ids.len()];
                    (
                        reqwest::Method::PATCH,
                        format!("/api/v1/flags/{id}/environments/{env}/config"),
                        Some(rule(n)),
                    )
                }
            }),
        ),
        (
            "GET flag list (tag=checkout, q=flag, limit 100)",
            &api,
            Box::new({
                let project = project.clone();
                move |_| {
                    (
                        reqwest::Method::GET,
                        format!(
                            "/api/v1/projects/{project}/feature-flags?tag=checkout&q=flag&limit=100"
                        ),
                        None,
                    )
                }
            }),
        ),
    ];
    for (name, api, make) in scenarios {
        let make: Arc<MakeRequest> = Arc::from(make);
        let stats = drive(api, args.clients, Duration::from_secs(args.seconds), make).await;
        stats.print(name);
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    auth: Auth,
}

/// How a scenario's requests authenticate.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Session { cookie: String, csrf: String },
    Anonymous,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Session { cookie, csrf } => req
                .header("cookie", format!("vexil_session={cookie}"))
                .header("x-csrf-token", csrf),
            Auth::Anonymous => req,
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

struct Stats {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

impl Stats {
    fn print(mut self, name: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.latencies
                .get(i)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let n = self.latencies.len();
        println!(
            "{name}: {n} requests in {:.1}s ({:.0}/s), errors {}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64(),
            self.errors,
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
    }
}

async fn drive(api: &Api, clients: usize, duration: Duration, make: Arc<MakeRequest>) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (api, stop, counter, make) = (api.clone(), stop.clone(), counter.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (method, path, body) = make(n);
                let t = Instant::now();
                match api.send(method, &path, body).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut stats = Stats {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        if let Ok((l, e)) = t.await {
            stats.latencies.extend(l);
            stats.errors += e;
        }
    }
    stats.elapsed = started.elapsed();
    stats
}
