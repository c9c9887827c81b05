//! Release guard latency: the time from the guard's threshold being crossed (the server
//! accepting the tracked events that push the treatment's error rate past `max_rate`) to
//! OFREP serving the control, with the default intervals of `vexil serve` (release guard
//! every 5 s, insights flushed every 10 s). Starts a server in a child process on a fresh
//! database (SQLite file or a new PostgreSQL database), and for each trial creates a flag,
//! starts a guarded plan at 50 %, evaluates 400 users over OFREP (counted by the server),
//! waits a different part of the guard's interval each time, tracks `error` events for half
//! of the treatment's users, and polls OFREP every 50 ms for a treatment user until it gets
//! the control (the polls are evaluations of the treatment too, counted like any other: the
//! error rate stays far above 5 % however long the rollback takes). Loopback only; bounded
//! in time; cleans up.
//!
//! ```sh
//! cargo run --release -p vexil-server --example guardload -- --trials 20
//! cargo run --release -p vexil-server --example guardload -- --backend postgres --trials 20
//! ```
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use support::{Api, ChildServer, loadavg};

/// Users evaluated per trial.
const USERS: usize = 400;
/// The guard's interval in `vexil serve` by default (the server here runs with it).
const GUARD_EVERY_MS: u64 = 5_000;

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Rollbacks to measure.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Internal: serve this database URL, print the address, run until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<String>,
    /// Internal: the child server's request log.
    #[arg(long, hide = true)]
    server_log: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.serve {
        return support::serve(url, args.server_log);
    }
    // About 12 s per trial at worst, plus start-up.
    let limit = 60 + 15 * args.trials as u64;
    let a = &args;
    support::bounded(
        (&args.backend, &args.admin_url, "guardload"),
        2,
        limit,
        |url| async move { run(a, &url).await },
    )
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut server = ChildServer::start(url, false).await?;
    let result = trials(args, &server).await;
    server.stop().await;
    result
}

async fn trials(args: &Args, server: &ChildServer) -> anyhow::Result<()> {
    println!(
        "backend {}, guard every {GUARD_EVERY_MS} ms, insights flushed every 10 s, {} cores, loadavg {}",
        args.backend,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let client = reqwest::Client::new();
    let api = Api::new(server.addr, client.clone());
    let (project, env) = api.production().await?;
    let key = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/api-keys"),
            Some(json!({"name": "guardload", "type": "server", "environment_id": env})),
        )
        .await?["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let base = format!("http://{}", server.addr);
    let ofrep = |flag: String, user: String| {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        async move {
            let r: Value = client
                .post(format!("{base}/ofrep/v1/evaluate/flags/{flag}"))
                .bearer_auth(&key)
                .json(&json!({"context": {"targetingKey": user}}))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(r["value"] == true)
        }
    };
    let mut took = Vec::new();
    for trial in 0..args.trials {
        let flag_key = format!("guarded-{trial}");
        let flag = api
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/feature-flags"),
                Some(json!({"key": flag_key})),
            )
            .await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.send(
            reqwest::Method::POST,
            &format!("/api/v1/flags/{flag}/environments/{env}/release"),
            Some(json!({"auto_advance": false,
                "stages": [{"weight": 50000}, {"weight": 100000}],
                "guard": {"event": "error", "max_rate": 0.05, "window": "1h", "min_samples": 100}})),
        )
        .await?;
        let mut treated = Vec::new();
        for u in 0..USERS {
            let user = format!("user-{trial}-{u}");
            if ofrep(flag_key.clone(), user.clone()).await? {
                treated.push(user);
            }
        }
        // Cross the threshold at a different point of the guard's cycle each trial.
        let offset = (trial as u64 * 1_237) % GUARD_EVERY_MS;
        tokio::time::sleep(Duration::from_millis(offset)).await;
        let events: Vec<Value> = treated
            .iter()
            .step_by(2)
            .map(|u| json!({"key": "error", "context": {"targetingKey": u}}))
            .collect();
        let crossed = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/track"))
            .bearer_auth(&key)
            .json(&json!({"events": events}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "track: {}", r.status());
        let probe = treated.first().cloned().unwrap_or_default();
        let deadline = crossed + Duration::from_secs(30);
        while ofrep(flag_key.clone(), probe.clone()).await? {
            if Instant::now() > deadline {
                let plan = api
                    .get(&format!("/api/v1/flags/{flag}/environments/{env}/release"))
                    .await?;
                anyhow::bail!("trial {trial}: no rollback in 30 s: {plan}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ms = crossed.elapsed().as_secs_f64() * 1000.0;
        println!(
            "trial {trial:>2}: {} of {USERS} users treated, {} errors tracked, control served after {ms:.0} ms",
            treated.len(),
            events.len()
        );
        took.push(ms);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "threshold crossed → OFREP serves the control, {} trials: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        took.len(),
        at(0.5),
        at(0.99),
        took.last().copied().unwrap_or_default()
    );
    Ok(())
}
