//! Webhook latency: the time from a change's commit (its audit entry's time, stamped in
//! the committing transaction) to a loopback receiver holding the signed delivery, with
//! `vexil serve`'s delivery job (each node looks for work every 100 ms). Starts a server in
//! a child process on a fresh database (SQLite file or a new PostgreSQL database), creates
//! a webhook to a receiver in this process, and toggles a flag `--trials` times, each at a
//! different point of the job's cycle, waiting for each delivery; then sends a burst of
//! `--burst` changes back to back and measures each one's latency too. Loopback only;
//! bounded in time; cleans up.
//!
//! ```sh
//! cargo run --release -p vexil-server --example webhookload -- --trials 200
//! cargo run --release -p vexil-server --example webhookload -- --backend postgres --trials 200
//! ```
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use clap::Parser;
use serde_json::{Value, json};
use support::{Api, ChildServer, loadavg};

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Changes made one at a time, each waiting for its delivery.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Changes made back to back afterwards.
    #[arg(long, default_value_t = 100)]
    burst: usize,
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
    let limit = 60 + (args.trials + args.burst) as u64;
    let a = &args;
    support::bounded(
        (&args.backend, &args.admin_url, "webhookload"),
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

/// Each delivery's audit sequence number and latency in ms (receipt − the entry's time).
type Inbox = Arc<Mutex<Vec<(i64, f64)>>>;

async fn receive(State(inbox): State<Inbox>, body: String) -> &'static str {
    let now = vexil_server::store::now_ms() as f64;
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let at = v["data"]["at"]
        .as_str()
        .and_then(vexil_core::time::parse_rfc3339)
        .unwrap_or_default();
    let seq = v["data"]["seq"].as_i64().unwrap_or_default();
    inbox
        .lock()
        .map(|mut i| i.push((seq, now - at as f64)))
        .ok();
    "ok"
}

async fn trials(args: &Args, server: &ChildServer) -> anyhow::Result<()> {
    println!(
        "backend {}, delivery job every 100 ms, {} cores, loadavg {}",
        args.backend,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let inbox: Inbox = Arc::default();
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let api = Api::new(server.addr, reqwest::Client::new());
    let (project, env) = api.production().await?;
    api.send(
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/webhooks"),
        Some(json!({"name": "latency", "url": hook_url, "events": ["config.updated"]})),
    )
    .await?;
    let flag = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/feature-flags"),
            Some(json!({"key": "latency"})),
        )
        .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let config = format!("/api/v1/flags/{flag}/environments/{env}/config");
    let count = || inbox.lock().map(|i| i.len()).unwrap_or_default();
    let wait_for = |n: usize| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while count() < n {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} deliveries after 30 s",
                count()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        anyhow::Ok(())
    };
    for trial in 0..args.trials {
        // A different point of the job's 100 ms cycle each time.
        tokio::time::sleep(Duration::from_millis((trial as u64 * 37) % 100)).await;
        api.send(
            reqwest::Method::PATCH,
            &config,
            Some(json!({"enabled": trial.is_multiple_of(2)})),
        )
        .await?;
        wait_for(trial + 1).await?;
    }
    let one_at_a_time: Vec<f64> = inbox
        .lock()
        .map(|i| i.iter().map(|(_, ms)| *ms).collect())
        .unwrap_or_default();
    report("one at a time", one_at_a_time);
    for i in 0..args.burst {
        api.send(
            reqwest::Method::PATCH,
            &config,
            Some(json!({"enabled": (args.trials + i).is_multiple_of(2)})),
        )
        .await?;
    }
    wait_for(args.trials + args.burst).await?;
    let all = inbox.lock().map(|i| i.clone()).unwrap_or_default();
    let in_order = all.windows(2).all(|w| w[0].0 < w[1].0);
    report(
        &format!("burst of {} (in order: {in_order})", args.burst),
        all[args.trials..].iter().map(|(_, ms)| *ms).collect(),
    );
    Ok(())
}

fn report(what: &str, mut took: Vec<f64>) {
    if took.is_empty() {
        return;
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "commit → delivered, {what}, {} deliveries: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        took.len(),
        at(0.5),
        at(0.99),
        took.last().copied().unwrap_or_default()
    );
}
