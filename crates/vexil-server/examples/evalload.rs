//! Evaluation-plane load test: OFREP single-flag throughput, OFREP bulk
//! evaluation of 200 flags, SSE fan-out latency to 1,000 subscribers, and (PostgreSQL only)
//! propagation from one cluster node to another's stream subscribers. Starts a server on
//! a fresh database (SQLite file or a new PostgreSQL database) — by default in a separate OS
//! process (this program re-executed with a hidden `--serve`), so that server and load
//! generator do not share one tokio runtime — seeds it over the management API, drives it
//! over loopback only, prints figures and cleans up. Every phase is bounded in time; the
//! program stops by itself (and the server process stops when this one goes away).
//!
//! ```sh
//! ulimit -n 4096   # the SSE scenario holds ~1,000 sockets on each side
//! cargo run --release -p vexil-server --example evalload -- --backend sqlite
//! cargo run --release -p vexil-server --example evalload -- --backend postgres \
//!     --admin-url postgres://postgres@127.0.0.1:5432/postgres
//! cargo run --release -p vexil-server --example evalload -- --scenario ofrep --in-process
//! cargo run --release -p vexil-server --example evalload -- --backend postgres --scenario cluster
//! cargo run --release -p vexil-server --example evalload -- --scenario counting
//! cargo run --release -p vexil-server --example evalload -- --scenario track
//! cargo run --release -p vexil-server --example evalload -- --scenario grpc
//! ```
//!
//! `--scenario grpc` compares flagd's gRPC evaluation (`ResolveBoolean` of
//! `flagd.evaluation.v1`, the server started with `--grpc-listen`) with OFREP single-flag
//! evaluation over HTTP on the same server, same flag, same contexts and the same number of
//! connections (one call in flight on each; a tonic channel per connection), in alternating
//! rounds (three each).
//!
//! `--scenario counting` measures what insights counting costs: a second server that does not
//! count evaluations (`--no-evaluation-counts`) on a database of its own, seeded alike, and
//! OFREP single-flag rounds alternating between the two (three each), so that both see the
//! same machine.
//!
//! OFREP requests go through a minimal HTTP/1.1 keep-alive client written here (one request
//! in flight per connection, pre-serialized requests, responses framed by `Content-Length`),
//! so that the load generator takes as little of the shared CPU as possible. CPU seconds of
//! both processes are read from `/proc` (Linux; assumes 100 clock ticks per second).
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::{ChildServer, TOKEN, find, loadavg, open_file_limit};

/// The allocator of the `vexil` binary, so that the server measured here allocates as
/// `vexil serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use vexil_server::{App, Config};

/// The 5-rule boolean flag of the OFREP scenario.
const HOT_FLAG: &str = "checkout-v2";
/// The flag the SSE scenario toggles.
const SSE_FLAG: &str = "sse-toggle";
/// Flags in the environment (the hot flag, the SSE flag and fillers).
const FLAGS: usize = 200;
/// Distinct evaluation contexts cycled through by the OFREP scenarios.
const CONTEXTS: usize = 64;
/// The event the hot flag watches (the track scenario sends it).
const TRACKED_EVENT: &str = "checkout_error";
/// Events per `POST /api/v1/track` in the track scenario.
const EVENTS_PER_REQUEST: usize = 100;
/// Spacing of the SSE scenario's flag changes.
const CHANGE_SPACING: Duration = Duration::from_millis(200);

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Seconds per scenario (the SSE scenario makes 5 changes per second).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections of the OFREP scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent SSE subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// `all` (ofrep, bulk, sse, cluster), `ofrep`, `bulk`, `sse`, `cluster`, `counting`
    /// (OFREP single with insights counting on and off, alternating, in one run), or `track`
    /// (tracked-event ingestion), or `grpc` (flagd gRPC next to OFREP single, alternating).
    #[arg(long, default_value = "all", value_parser = ["all", "ofrep", "bulk", "sse", "cluster", "counting", "track", "grpc"])]
    scenario: String,
    /// Run the server inside this process (sharing the load generator's runtime) instead of
    /// in a child process.
    #[arg(long)]
    in_process: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Install the server's JSON request log (as `vexil serve` does), written to /dev/null,
    /// to include its cost (child-process mode only).
    #[arg(long)]
    server_log: bool,
    /// Internal: serve this database URL, print the address, run until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.serve {
        return support::serve(url, args.server_log);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?
        .block_on(async {
            let (url, cleanup) =
                support::scratch_database(&args.backend, &args.admin_url, "evalload").await?;
            let result = run(&args, &url).await;
            cleanup.run().await;
            result
        })
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let server = Server::start(args, url).await?;
    let result = scenarios(args, &server, url).await;
    server.stop().await;
    result
}

async fn scenarios(args: &Args, server: &Server, url: &str) -> anyhow::Result<()> {
    let addr = server.addr;
    println!(
        "backend {}, server {}, load generator: {} tokio worker thread(s), {} cores, loadavg {}",
        args.backend,
        server.describe(),
        args.client_threads.max(1),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };
    let seeded = seed(&api).await?;
    println!(
        "seeded {FLAGS} flags, 1 segment, a server API key (production environment); loadavg {}",
        loadavg()
    );
    let duration = Duration::from_secs(args.seconds.max(1));
    let warmup = Duration::from_secs(1);
    let want = |s: &str| args.scenario == "all" || args.scenario == s;

    if want("ofrep") {
        let requests: Vec<Vec<u8>> = contexts()
            .iter()
            .map(|c| {
                http_post(
                    addr,
                    &format!("/ofrep/v1/evaluate/flags/{HOT_FLAG}"),
                    &seeded.key,
                    c,
                )
            })
            .collect();
        let reasons = check_single(&api, &seeded.key).await?;
        println!(
            "OFREP single: {CONTEXTS} contexts on a 5-rule flag, outcomes {reasons}; {} connections for {}s (+{}s warm-up)…",
            args.connections,
            duration.as_secs(),
            warmup.as_secs()
        );
        let cpu = CpuMeter::start(server.pid);
        let stats = drive(addr, Arc::new(requests), args.connections, warmup, duration).await;
        stats.print("OFREP single evaluation", &cpu.stop());
    }

    if want("bulk") {
        let requests: Vec<Vec<u8>> = contexts()
            .iter()
            .map(|c| http_post(addr, "/ofrep/v1/evaluate/flags", &seeded.key, c))
            .collect();
        let n = check_bulk(&api, &seeded.key).await?;
        println!(
            "OFREP bulk: {n} flags per answer, {} connections for {}s (+{}s warm-up)…",
            args.connections,
            duration.as_secs(),
            warmup.as_secs()
        );
        let cpu = CpuMeter::start(server.pid);
        let stats = drive(addr, Arc::new(requests), args.connections, warmup, duration).await;
        stats.print(&format!("OFREP bulk evaluation ({n} flags)"), &cpu.stop());
    }

    if want("sse") {
        let subscribers = args.subscribers.max(1);
        sse(
            args,
            &api,
            &seeded,
            server.pid,
            &api.base,
            subscribers,
            "SSE fan-out",
        )
        .await?;
    }

    if args.scenario == "track" {
        // Batches of events from the same users, each attributed by the watching hot flag.
        let requests: Vec<Vec<u8>> = contexts()
            .chunks(8)
            .map(|users| {
                let events: Vec<Value> = (0..EVENTS_PER_REQUEST)
                    .map(|i| json!({"key": TRACKED_EVENT, "context": users[i % users.len()]["context"], "value": 1}))
                    .collect();
                http_post(addr, "/api/v1/track", &seeded.key, &json!({"events": events}))
            })
            .collect();
        println!(
            "track: {EVENTS_PER_REQUEST} events per request, attributed by a 5-rule flag; {} connections for {}s (+{}s warm-up)…",
            args.connections,
            duration.as_secs(),
            warmup.as_secs()
        );
        let cpu = CpuMeter::start(server.pid);
        let stats = drive(addr, Arc::new(requests), args.connections, warmup, duration).await;
        let rate = stats.latencies.len() as f64 / stats.elapsed.as_secs_f64();
        stats.print("track requests", &cpu.stop());
        println!(
            "track: {:.0} events/s ingested",
            rate * EVENTS_PER_REQUEST as f64
        );
    }

    if args.scenario == "counting" {
        counting(args, server, &seeded, addr).await?;
    }

    if args.scenario == "grpc" {
        grpc(args, server, &seeded).await?;
    }

    // Two nodes on one PostgreSQL: changes through node A, subscribers on node B.
    if args.backend == "postgres" && want("cluster") {
        let mut config = Config::for_tests(url);
        config.bootstrap_token = Some(SecretString::from(TOKEN));
        let node_b = App::build(&config).await?;
        let base_b = format!("http://{}", node_b.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node_b.run(async {
            let _ = stopped.await;
        }));
        let label = "cluster (change via node A → subscriber on node B)";
        let result = sse(args, &api, &seeded, server.pid, &base_b, 10, label).await;
        let _ = stop.send(());
        let _ = task.await;
        result?;
    }
    Ok(())
}

/// OFREP single-flag throughput with counting on (`server`) and off (a second server),
/// alternating rounds.
async fn counting(
    args: &Args,
    server: &Server,
    seeded: &Seeded,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    anyhow::ensure!(!args.in_process, "--scenario counting runs child processes");
    let (url_off, cleanup) =
        support::scratch_database(&args.backend, &args.admin_url, "evalload_nocount").await?;
    let result = async {
        let mut off = ChildServer::start_counting(&url_off, args.server_log, false).await?;
        let api_off = Api {
            client: reqwest::Client::new(),
            base: format!("http://{}", off.addr),
        };
        let seeded_off = seed(&api_off).await?;
        let requests = |addr: SocketAddr, key: &str| -> Arc<Vec<Vec<u8>>> {
            Arc::new(
                contexts()
                    .iter()
                    .map(|c| http_post(addr, &format!("/ofrep/v1/evaluate/flags/{HOT_FLAG}"), key, c))
                    .collect(),
            )
        };
        let (on_requests, off_requests) = (requests(addr, &seeded.key), requests(off.addr, &seeded_off.key));
        let duration = Duration::from_secs(args.seconds.max(1));
        let warmup = Duration::from_secs(1);
        let (mut on_rates, mut off_rates) = (Vec::new(), Vec::new());
        println!(
            "OFREP single, counting on (pid {}) and off (pid {}): 3 rounds each, alternating, {} connections, {}s each…",
            server.pid.unwrap_or(0),
            off.pid,
            args.connections,
            duration.as_secs()
        );
        for round in 1..=3 {
            for on in [true, false] {
                let (target, reqs, pid) = if on {
                    (addr, on_requests.clone(), server.pid)
                } else {
                    (off.addr, off_requests.clone(), Some(off.pid))
                };
                let cpu = CpuMeter::start(pid);
                let stats = drive(target, reqs, args.connections, warmup, duration).await;
                let rate = stats.latencies.len() as f64 / stats.elapsed.as_secs_f64();
                if on { on_rates.push(rate) } else { off_rates.push(rate) }
                stats.print(
                    &format!("round {round}, counting {}", if on { "on " } else { "off" }),
                    &cpu.stop(),
                );
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (on, off_rate) = (mean(&on_rates), mean(&off_rates));
        println!(
            "counting on: {on:.0} req/s, off: {off_rate:.0} req/s (means of 3 rounds): on is {:+.1} % of off",
            (on / off_rate - 1.0) * 100.0
        );
        off.stop().await;
        anyhow::Ok(())
    }
    .await;
    cleanup.run().await;
    result
}

// ---------------------------------------------------------------------------------------
// flagd's gRPC evaluation next to OFREP.

#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod flagd {
    include!(concat!(env!("OUT_DIR"), "/client/flagd.evaluation.v1.rs"));
}

/// gRPC `ResolveBoolean` and OFREP single-flag evaluation of the hot flag, alternating.
async fn grpc(args: &Args, server: &Server, seeded: &Seeded) -> anyhow::Result<()> {
    let grpc_addr = server
        .grpc
        .ok_or_else(|| anyhow::anyhow!("the server has no gRPC listener"))?;
    let ofrep_requests: Arc<Vec<Vec<u8>>> = Arc::new(
        contexts()
            .iter()
            .map(|c| {
                http_post(
                    server.addr,
                    &format!("/ofrep/v1/evaluate/flags/{HOT_FLAG}"),
                    &seeded.key,
                    c,
                )
            })
            .collect(),
    );
    let grpc_requests: Arc<Vec<flagd::ResolveBooleanRequest>> = Arc::new(
        contexts()
            .iter()
            .map(|c| flagd::ResolveBooleanRequest {
                flag_key: HOT_FLAG.to_owned(),
                context: Some(to_struct(&c["context"])),
            })
            .collect(),
    );
    // The same answers both ways, before anything is timed.
    let mut client = grpc_client(grpc_addr).await?;
    let mut agree = 0;
    for (i, body) in contexts().iter().enumerate() {
        let ofrep = Api {
            client: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
        }
        .eval(
            &format!("/ofrep/v1/evaluate/flags/{HOT_FLAG}"),
            &seeded.key,
            body,
        )
        .await?;
        let answer = client
            .resolve_boolean(grpc_request(&grpc_requests[i], &seeded.key))
            .await?
            .into_inner();
        anyhow::ensure!(
            ofrep["value"] == json!(answer.value) && ofrep["reason"] == json!(answer.reason),
            "gRPC and OFREP disagree on context {i}: {ofrep} vs {answer:?}"
        );
        agree += 1;
    }
    let duration = Duration::from_secs(args.seconds.max(1));
    let warmup = Duration::from_secs(1);
    println!(
        "gRPC (flagd.evaluation.v1 ResolveBoolean at {grpc_addr}) and OFREP single (HTTP/1.1) on the 5-rule flag: answers agree on all {agree} contexts; 3 rounds each, alternating, {} connections, {}s each…",
        args.connections,
        duration.as_secs()
    );
    let (mut grpc_rates, mut ofrep_rates) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let cpu = CpuMeter::start(server.pid);
        let stats = drive(
            server.addr,
            ofrep_requests.clone(),
            args.connections,
            warmup,
            duration,
        )
        .await;
        ofrep_rates.push(stats.latencies.len() as f64 / stats.elapsed.as_secs_f64());
        stats.print(&format!("round {round}, OFREP"), &cpu.stop());
        let cpu = CpuMeter::start(server.pid);
        let stats = drive_grpc(
            grpc_addr,
            grpc_requests.clone(),
            &seeded.key,
            args.connections,
            warmup,
            duration,
        )
        .await?;
        grpc_rates.push(stats.latencies.len() as f64 / stats.elapsed.as_secs_f64());
        stats.print(&format!("round {round}, gRPC "), &cpu.stop());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (grpc_rate, ofrep_rate) = (mean(&grpc_rates), mean(&ofrep_rates));
    println!(
        "gRPC: {grpc_rate:.0} req/s, OFREP: {ofrep_rate:.0} req/s (means of 3 rounds): gRPC is {:+.1} % of OFREP",
        (grpc_rate / ofrep_rate - 1.0) * 100.0
    );
    Ok(())
}

type FlagdClient = flagd::service_client::ServiceClient<tonic::transport::Channel>;

/// A client on a connection of its own.
async fn grpc_client(addr: SocketAddr) -> anyhow::Result<FlagdClient> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(flagd::service_client::ServiceClient::new(channel))
}

fn grpc_request(
    request: &flagd::ResolveBooleanRequest,
    key: &str,
) -> tonic::Request<flagd::ResolveBooleanRequest> {
    let mut request = tonic::Request::new(request.clone());
    if let Ok(value) = format!("Bearer {key}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// As `drive`, over gRPC: `connections` channels, one call in flight on each.
async fn drive_grpc(
    addr: SocketAddr,
    requests: Arc<Vec<flagd::ResolveBooleanRequest>>,
    key: &str,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let mut clients = Vec::new();
    for _ in 0..connections.max(1) {
        clients.push(grpc_client(addr).await?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for (c, mut client) in clients.into_iter().enumerate() {
        let (requests, key) = (requests.clone(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut i = c;
            while Instant::now() < end {
                i = (i + 1) % requests.len();
                let request = grpc_request(&requests[i], &key);
                let t = Instant::now();
                let result = client.resolve_boolean(request).await;
                let measured = t >= measure_from;
                match result {
                    Ok(_) if measured => latencies.push(t.elapsed()),
                    Ok(_) => {}
                    Err(_) => errors += u64::from(measured),
                }
            }
            (latencies, errors)
        }));
    }
    Ok(gather(tasks, measure_from, end).await)
}

/// A JSON object as a `google.protobuf.Struct`.
fn to_struct(value: &Value) -> prost_types::Struct {
    fn convert(value: &Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match value {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.iter().map(convert).collect(),
            }),
            Value::Object(_) => Kind::StructValue(to_struct(value)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    prost_types::Struct {
        fields: value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// The server: a child process (default) or a task of this runtime.

struct Server {
    addr: SocketAddr,
    /// The gRPC listener (flagd's evaluation protocol).
    grpc: Option<SocketAddr>,
    pid: Option<u32>,
    kind: ServerKind,
}

enum ServerKind {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
    Process(ChildServer),
}

impl Server {
    async fn start(args: &Args, url: &str) -> anyhow::Result<Server> {
        if args.in_process {
            let mut config = Config::for_tests(url);
            config.bootstrap_token = Some(SecretString::from(TOKEN));
            config.insights_flush_ms = 10_000;
            config.grpc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            let app = App::build(&config).await?;
            let addr = app.local_addr()?;
            let grpc = app.grpc_addr();
            let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(app.run(async {
                let _ = stop_rx.await;
            }));
            return Ok(Server {
                addr,
                grpc,
                pid: None,
                kind: ServerKind::InProcess { stop, task },
            });
        }
        let child = ChildServer::start(url, args.server_log).await?;
        Ok(Server {
            addr: child.addr,
            grpc: child.grpc,
            pid: Some(child.pid),
            kind: ServerKind::Process(child),
        })
    }

    fn describe(&self) -> String {
        match self.pid {
            Some(pid) => format!("in a separate process (pid {pid}) at {}", self.addr),
            None => format!("in-process at {}", self.addr),
        }
    }

    /// Graceful stop, bounded: a child that has not exited after 10 s is killed.
    async fn stop(self) {
        match self.kind {
            ServerKind::InProcess { stop, task } => {
                let _ = stop.send(());
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
            ServerKind::Process(mut child) => child.stop().await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeding over the management API.

struct Seeded {
    env: String,
    key: String,
    sse_flag_id: String,
}

async fn seed(api: &Api) -> anyhow::Result<Seeded> {
    let project = api.get("/api/v1/projects").await?["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let envs = api
        .get(&format!("/api/v1/projects/{project}/environments"))
        .await?;
    let env = envs["items"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["key"] == "production"))
        .and_then(|e| e["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no production environment"))?
        .to_owned();
    api.send(
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/segments"),
        Some(json!({"key": "beta-testers", "included": ["user-7"],
            "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@beta.example"]}]}]})),
    )
    .await?;
    let mut sse_flag_id = String::new();
    for i in 0..FLAGS {
        let key = match i {
            0 => HOT_FLAG.to_owned(),
            1 => SSE_FLAG.to_owned(),
            _ => format!("flag-{i:03}"),
        };
        let flag = api
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/feature-flags"),
                Some(json!({"key": key})),
            )
            .await?;
        let id = flag["id"].as_str().unwrap_or_default().to_owned();
        let config = match i {
            0 => hot_flag_config(),
            1 => {
                sse_flag_id = id.clone();
                continue; // starts disabled; the SSE scenario toggles it
            }
            _ if i % 5 == 0 => json!({"enabled": true, "fallthrough": {"rollout": {
                "bucket_by": "targetingKey",
                "variations": [{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
            _ if i % 3 == 0 => json!({"enabled": true, "rules": [{"clauses": [
                {"attribute": "plan", "op": "in", "values": ["pro", "enterprise"]}],
                "serve": {"variation": "on"}}], "fallthrough": {"variation": "off"}}),
            _ => json!({"enabled": i % 2 == 0}),
        };
        api.send(
            reqwest::Method::PATCH,
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            Some(config),
        )
        .await?;
    }
    let key = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/api-keys"),
            Some(json!({"name": "evalload", "type": "server", "environment_id": env})),
        )
        .await?["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no key in the API key creation response"))?
        .to_owned();
    Ok(Seeded {
        env,
        key,
        sse_flag_id,
    })
}

/// Five rules of mixed operators (ends_with + in, a dotted attribute, semver_gte + in,
/// gte, in_segment); contexts that match none fall through to `off`.
fn hot_flag_config() -> Value {
    json!({"enabled": true, "fallthrough": {"variation": "off"}, "rules": [
        {"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]},
                     {"attribute": "plan", "op": "in", "values": ["enterprise"]}],
         "serve": {"variation": "on"}},
        {"clauses": [{"attribute": "account.tier", "op": "in", "values": ["gold", "platinum"]}],
         "serve": {"variation": "on"}},
        {"clauses": [{"attribute": "app_version", "op": "semver_gte", "values": ["3.4.0"]},
                     {"attribute": "country", "op": "in", "values": ["NL", "BE", "DE"]}],
         "serve": {"variation": "on"}},
        {"clauses": [{"attribute": "requests", "op": "gte", "values": [2000]}],
         "serve": {"variation": "off"}},
        {"clauses": [{"op": "in_segment", "values": ["beta-testers"]}],
         "serve": {"rollout": {"bucket_by": "targetingKey", "variations": [
             {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}
    ], "watch_events": [TRACKED_EVENT]})
}

/// The request bodies: `CONTEXTS` different users hitting different rules.
fn contexts() -> Vec<Value> {
    (0..CONTEXTS)
        .map(|i| {
            let email = match i % 8 {
                0 | 4 => format!("u{i}@acme.com"),
                5 => format!("u{i}@beta.example"),
                _ => format!("u{i}@example.org"),
            };
            let plan = ["free", "pro", "enterprise"][i % 3];
            let tier = ["bronze", "silver", "gold", "bronze", "silver"][i % 5];
            let country = ["NL", "US", "DE", "FR", "GB"][i % 5];
            json!({"context": {
                "targetingKey": format!("user-{i}"),
                "email": email,
                "plan": plan,
                "account": {"tier": tier, "seats": i},
                "app_version": format!("3.{}.{}", i % 6, i % 4),
                "country": country,
                "requests": i * 37,
            }})
        })
        .collect()
}

/// Evaluates the hot flag once per context through reqwest; returns a reason summary.
async fn check_single(api: &Api, key: &str) -> anyhow::Result<String> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for body in contexts() {
        let v = api
            .eval(&format!("/ofrep/v1/evaluate/flags/{HOT_FLAG}"), key, &body)
            .await?;
        let rule = v["metadata"]["ruleIndex"]
            .as_u64()
            .map_or(String::new(), |i| format!(" rule {i}"));
        let label = format!(
            "{}{rule} → {}",
            v["reason"].as_str().unwrap_or("?"),
            v["value"]
        );
        *counts.entry(label).or_default() += 1;
    }
    Ok(counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// One bulk evaluation through reqwest; returns how many flags it answered.
async fn check_bulk(api: &Api, key: &str) -> anyhow::Result<usize> {
    let v = api
        .eval("/ofrep/v1/evaluate/flags", key, &contexts()[0])
        .await?;
    Ok(v["flags"].as_array().map_or(0, Vec::len))
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
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
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(path, req).await
    }

    async fn eval(&self, path: &str, key: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body);
        Self::answer(path, req).await
    }

    async fn answer(path: &str, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.timeout(Duration::from_secs(30)).send().await?;
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

// ---------------------------------------------------------------------------------------
// The HTTP/1.1 load generator.

/// A complete pre-serialized request.
fn http_post(addr: SocketAddr, path: &str, key: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One keep-alive connection with one request in flight.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends `request`, reads the whole response; returns its status.
    async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (head_end, length) = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break (end + 4, content_length(&self.buf[..end])?);
            }
            self.fill().await?;
        };
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        let status = std::str::from_utf8(self.buf.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data("no status line"))?;
        Ok(status)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

fn bad_data(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// The `Content-Length` of a response head (these endpoints never answer chunked).
fn content_length(head: &[u8]) -> std::io::Result<usize> {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| bad_data("no Content-Length"))
}

/// Drives `connections` keep-alive connections cycling through `requests` for `warmup`
/// (not measured) plus `duration`. A request still unanswered 5 s after the end is given up.
async fn drive(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..connections.max(1) {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut conn = None;
            let mut i = c;
            while Instant::now() < end {
                let Some(open) = conn.as_mut() else {
                    match Conn::open(addr).await {
                        Ok(open) => conn = Some(open),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    continue;
                };
                i = (i + 1) % requests.len();
                let t = Instant::now();
                let result = open.round_trip(&requests[i]).await;
                let measured = t >= measure_from;
                match result {
                    Ok(200 | 202) if measured => latencies.push(t.elapsed()),
                    Ok(200 | 202) => {}
                    Ok(_) => errors += u64::from(measured),
                    Err(_) => {
                        errors += u64::from(measured);
                        conn = None;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    gather(tasks, measure_from, end).await
}

/// The latencies and errors of the load tasks; a task still running 5 s after `end` counts
/// as stuck.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, u64)>>,
    measure_from: Instant,
    end: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let give_up = tokio::time::Instant::from_std(end + Duration::from_secs(5));
    for task in tasks {
        match tokio::time::timeout_at(give_up, task).await {
            Ok(Ok((latencies, errors))) => {
                stats.latencies.extend(latencies);
                stats.errors += errors;
            }
            _ => stats.stuck += 1,
        }
    }
    stats.elapsed = measure_from.elapsed();
    stats
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: u64,
    /// Connections whose last request was not answered in time.
    stuck: u64,
    elapsed: Duration,
}

impl Stats {
    fn print(mut self, name: &str, cpu: &str) {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        println!(
            "{name}: {n} requests in {:.1}s = {:.0} req/s, errors {}{}, p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms; {cpu}",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64(),
            self.errors,
            if self.stuck > 0 {
                format!(" (+{} stuck connections)", self.stuck)
            } else {
                String::new()
            },
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
            percentile(&self.latencies, 1.0),
        );
    }
}

/// The `p` quantile of sorted durations, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------
// SSE fan-out.

/// Subscribes `subscribers` streams at `stream_base`, changes the SSE flag through `api`
/// every 200 ms, and reports the delivery delays under `label`.
async fn sse(
    args: &Args,
    api: &Api,
    seeded: &Seeded,
    server_pid: Option<u32>,
    stream_base: &str,
    subscribers: usize,
    label: &str,
) -> anyhow::Result<()> {
    let changes = (args.seconds.max(1) * 5) as usize;
    println!(
        "{label}: connecting {subscribers} subscribers (ulimit -n is {})…",
        open_file_limit()
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let url = format!("{stream_base}/api/v1/sdk/stream");
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // At most 64 connections between connect and their `put`, to spread the initial load.
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        tasks.push(tokio::spawn(subscribe(
            client.clone(),
            url.clone(),
            seeded.key.clone(),
            ready.clone(),
            connecting.clone(),
            stop_rx.clone(),
        )));
    }
    let connect_start = Instant::now();
    let connect_deadline = connect_start + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < subscribers && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = ready.load(Ordering::Relaxed);
    println!(
        "{connected} subscribers got their `put` in {:.2}s; {changes} changes of `{SSE_FLAG}`, {} ms apart…",
        connect_start.elapsed().as_secs_f64(),
        CHANGE_SPACING.as_millis()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cpu = CpuMeter::start(server_pid);
    let path = format!(
        "/api/v1/flags/{}/environments/{}/config",
        seeded.sse_flag_id, seeded.env
    );
    // Flag configuration version → (request start, response received).
    let mut sent: HashMap<u64, (Instant, Instant)> = HashMap::new();
    let mut patch_ms = Vec::with_capacity(changes);
    let mut failures = 0;
    for n in 0..changes {
        let started = Instant::now();
        let body = json!({"enabled": n % 2 == 0, "comment": format!("evalload change {n}")});
        match api.send(reqwest::Method::PATCH, &path, Some(body)).await {
            Ok(config) => {
                let answered = Instant::now();
                patch_ms.push(answered - started);
                if let Some(v) = config["version"].as_u64() {
                    sent.insert(v, (started, answered));
                }
            }
            Err(_) => failures += 1,
        }
        tokio::time::sleep_until((started + CHANGE_SPACING).into()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu.stop();
    let _ = stop_tx.send(true);

    let mut from_request = Vec::new();
    let mut from_response = Vec::new();
    let mut early = 0usize;
    let mut before_response = 0usize;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    for task in tasks {
        let Ok(Ok(sub)) = tokio::time::timeout_at(give_up, task).await else {
            continue;
        };
        early += usize::from(sub.ended_early);
        for (version, at) in sub.patches {
            if let Some(&(started, answered)) = sent.get(&version) {
                from_request.push(at.saturating_duration_since(started));
                match at.checked_duration_since(answered) {
                    Some(d) => from_response.push(d),
                    None => {
                        before_response += 1;
                        from_response.push(Duration::ZERO);
                    }
                }
            }
        }
    }
    from_request.sort_unstable();
    from_response.sort_unstable();
    patch_ms.sort_unstable();
    let expected = connected * sent.len();
    println!(
        "{label}: {} of {expected} deliveries ({connected} subscribers × {} changes, {failures} failed PATCHes, {early} streams ended early)",
        from_request.len(),
        sent.len()
    );
    println!(
        "  change → subscriber, from PATCH request start: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&from_request, 0.5),
        percentile(&from_request, 0.99),
        percentile(&from_request, 1.0)
    );
    println!(
        "  change → subscriber, from PATCH response: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({before_response} arrived before the response, counted as 0)",
        percentile(&from_response, 0.5),
        percentile(&from_response, 0.99),
        percentile(&from_response, 1.0)
    );
    println!(
        "  PATCH latency: p50 {:.2} ms, max {:.2} ms; {cpu}",
        percentile(&patch_ms, 0.5),
        percentile(&patch_ms, 1.0)
    );
    Ok(())
}

struct Subscription {
    /// (flag configuration version, arrival) of every `patch` event of the SSE flag.
    patches: Vec<(u64, Instant)>,
    ended_early: bool,
}

async fn subscribe(
    client: reqwest::Client,
    url: String,
    key: String,
    ready: Arc<AtomicUsize>,
    connecting: Arc<tokio::sync::Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Subscription {
    let mut sub = Subscription {
        patches: Vec::new(),
        ended_early: false,
    };
    let mut permit = connecting.acquire_owned().await.ok();
    let request = client.get(url).bearer_auth(key).send();
    let mut resp = tokio::select! {
        r = request => match r {
            Ok(r) if r.status().is_success() => r,
            _ => { sub.ended_early = true; return sub; }
        },
        _ = stop.wait_for(|s| *s) => return sub,
    };
    let mut buf = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        let at = Instant::now();
        match chunk {
            Ok(Some(bytes)) => buf.extend_from_slice(&bytes),
            _ => {
                sub.ended_early = true;
                break;
            }
        }
        while let Some(end) = find(&buf, b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let (mut event, mut data) = ("message", String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            match event {
                "put" if permit.is_some() => {
                    permit = None;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                "patch" => {
                    let v: Value = serde_json::from_str(&data).unwrap_or_default();
                    if v["key"] == SSE_FLAG
                        && let Some(version) = v["value"]["version"].as_u64()
                    {
                        sub.patches.push((version, at));
                    }
                }
                _ => {}
            }
        }
    }
    sub
}

// ---------------------------------------------------------------------------------------
// Machine figures (Linux `/proc`; blank elsewhere).

/// CPU seconds used by the server process and this one over a scenario.
struct CpuMeter {
    server: Option<u32>,
    wall: Instant,
    server_start: Option<f64>,
    own_start: Option<f64>,
}

impl CpuMeter {
    fn start(server: Option<u32>) -> CpuMeter {
        CpuMeter {
            server,
            wall: Instant::now(),
            server_start: server.and_then(|p| cpu_seconds(&p.to_string())),
            own_start: cpu_seconds("self"),
        }
    }

    fn stop(self) -> String {
        let wall = self.wall.elapsed().as_secs_f64();
        let used = |start: Option<f64>, pid: &str| {
            cpu_seconds(pid)
                .zip(start)
                .map_or("?".to_owned(), |(now, then)| format!("{:.1}", now - then))
        };
        let own = used(self.own_start, "self");
        match self.server {
            Some(pid) => format!(
                "CPU over {wall:.1}s: server {} s, load generator {own} s; loadavg {}",
                used(self.server_start, &pid.to_string()),
                loadavg()
            ),
            None => format!(
                "CPU over {wall:.1}s: server + load generator {own} s; loadavg {}",
                loadavg()
            ),
        }
    }
}

/// User + system CPU seconds of a process (`self` or a pid).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
