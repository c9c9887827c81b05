//! Scheduled-change latency: how long after its `execute_at` a scheduled change is visible
//! through OFREP. Starts a server on a fresh database (SQLite file or a new PostgreSQL
//! database) in a separate OS process, creates `--changes` flags, schedules "enable" for
//! each, `--spacing-ms` apart starting `--lead-ms` from now, then polls OFREP's bulk
//! evaluation every `--poll-ms` and records when each flag first answers `true`. Prints the
//! delay between each change's time and its first sighting: p50, p99 and max (the polling
//! interval is included in each figure).
//!
//! Bounded: stops by itself after `--time-limit` seconds. Loopback only. Not part of any
//! test run.
//!
//! ```sh
//! cargo run --release -p vexil-server --example schedule_latency
//! cargo run --release -p vexil-server --example schedule_latency -- --backend postgres
//! ```
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::{Value, json};
use support::{Api, ChildServer};

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// How many scheduled changes (one flag each).
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Time between two changes' `execute_at`.
    #[arg(long, default_value_t = 137)]
    spacing_ms: u64,
    /// Time from scheduling to the first change.
    #[arg(long, default_value_t = 3000)]
    lead_ms: u64,
    /// How often OFREP is asked.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
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
    let args = &args;
    let database = (args.backend.as_str(), args.admin_url.as_str(), "schedule");
    support::bounded(database, 1, args.time_limit, |url| async move {
        run(args, &url).await
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut server = ChildServer::start(url, false).await?;
    let result = measure(args, &Api::new(server.addr, reqwest::Client::new())).await;
    server.stop().await;
    result
}

async fn measure(args: &Args, api: &Api) -> anyhow::Result<()> {
    use reqwest::Method;
    let (project, env) = api.production().await?;
    let key = api
        .send(
            Method::POST,
            &format!("/api/v1/projects/{project}/api-keys"),
            Some(json!({"name": "latency", "type": "server", "environment_id": env})),
        )
        .await?["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..args.changes {
        let flag = api
            .send(
                Method::POST,
                &format!("/api/v1/projects/{project}/feature-flags"),
                Some(json!({"key": format!("sched-{i:03}")})),
            )
            .await?;
        ids.push(flag["id"].as_str().unwrap_or_default().to_owned());
    }
    let first = now_ms() + args.lead_ms as i64;
    let mut due: HashMap<String, i64> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let at = first + (i as u64 * args.spacing_ms) as i64;
        api.send(
            Method::POST,
            &format!("/api/v1/flags/{id}/environments/{env}/scheduled-changes"),
            Some(json!({"execute_at": vexil_core::time::format_rfc3339(at), "patch": {"enabled": true}})),
        )
        .await?;
        due.insert(format!("sched-{i:03}"), at);
    }
    anyhow::ensure!(
        now_ms() < first,
        "scheduling took longer than --lead-ms; give a larger lead"
    );
    println!(
        "{} changes scheduled on {}, {} ms apart; polling OFREP every {} ms",
        args.changes, args.backend, args.spacing_ms, args.poll_ms
    );
    let mut delays = Vec::new();
    let client = reqwest::Client::new();
    while !due.is_empty() {
        let answer: Value = client
            .post(format!("{}/ofrep/v1/evaluate/flags", api.base))
            .bearer_auth(&key)
            .json(&json!({"context": {"targetingKey": "u1"}}))
            .send()
            .await?
            .json()
            .await?;
        let seen = now_ms();
        for flag in answer["flags"].as_array().into_iter().flatten() {
            let Some(name) = flag["key"].as_str() else {
                continue;
            };
            if flag["value"] == true
                && let Some(at) = due.remove(name)
            {
                delays.push(seen - at);
            }
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    }
    delays.sort_unstable();
    let pick = |q: f64| delays[((delays.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "delay from execute_at to OFREP: p50 {} ms, p99 {} ms, max {} ms, min {} ms (n = {})",
        pick(0.5),
        pick(0.99),
        delays[delays.len() - 1],
        delays[0],
        delays.len()
    );
    Ok(())
}
