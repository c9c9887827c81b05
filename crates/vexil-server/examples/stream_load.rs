//! Stream memory load test (SSE and WebSocket): how much resident memory one server node
//! needs to hold many stream subscribers of a large ruleset. Starts a server on a fresh
//! database (SQLite file or a new PostgreSQL database) in a separate OS process (this
//! program re-executed with a hidden `--serve`, with the `vexil` binary's allocator), seeds
//! `--flags` flags (about 600 bytes of ruleset each: 10,000 make a ~6 MB `put`), stops that
//! server and starts a fresh one on the seeded database (timing its cold start: from
//! spawning the process to the first `200` of `/ready` and of `/api/v1/sdk/config`), then
//! opens `--subscribers` streams at once over loopback and reads them — as fast as it can,
//! or at `--slow-rate` bytes per second per subscriber — while sampling the server's
//! `VmRSS`/`VmHWM` from `/proc/<pid>/status`. It holds the streams for `--hold` seconds,
//! closes them, and prints the figures.
//!
//! `--endpoint`: `sdk` (`/api/v1/sdk/stream`, SSE, server key: a `put` of the whole
//! ruleset), `ofrep` (`/ofrep/v1/event-stream`: notifications only), `ws`
//! (`/api/v1/sdk/ws`, WebSocket, server key: the same `put` as one text message), or
//! `mixed` (every other subscriber `sdk`, the rest `ws`).
//!
//! Bounded: the whole run stops by itself after `--time-limit` seconds at most (default 15
//! minutes, seeding included), subscribers that have not got their `put` after
//! `--connect-deadline` seconds are counted and left, and the run is cut short (streams
//! closed) if the server's RSS passes `--max-server-rss-mib`. Loopback only. Linux only
//! (`/proc`). Not part of any test run.
//!
//! ```sh
//! ulimit -n 20000   # both processes hold one descriptor per subscriber (check `ulimit -Hn`)
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 1000
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 10000
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 2000 --slow-rate 16384
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 10000 --endpoint ofrep
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 10000 --endpoint ws --hold 20
//! cargo run --release -p vexil-server --example stream_load -- --subscribers 10000 --endpoint mixed --hold 20
//! ```
//!
//! Subscribers speak HTTP/1.1 over raw sockets (chunked decoding and SSE framing written
//! here, the payload only scanned for frame ends) so that the load generator stays cheap
//! next to a server that sends gigabytes. WebSocket subscribers likewise: the RFC 6455
//! handshake (its `Sec-WebSocket-Accept` checked), then only frame headers and the first
//! bytes of each message are looked at (enough to recognise the `put`); the payload is
//! skipped without being buffered. Server pings are answered with masked pongs, so that
//! subscribers held past the server's 15 s of quiet are not dropped; a close frame from the
//! server ends the subscriber and is counted by code and reason. At the end the subscribers
//! drop their sockets without a close handshake.
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::{Api, ChildServer, find, loadavg, open_file_limit};

/// The allocator of the `vexil` binary, so that the server measured here allocates as
/// `vexil serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Parser;
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Flags to seed (each about 600 bytes of ruleset JSON).
    #[arg(long, default_value_t = 10_000)]
    flags: usize,
    /// Streams to open at once.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// `sdk` (`/api/v1/sdk/stream` with a server key: a `put` of the whole ruleset),
    /// `ofrep` (`/ofrep/v1/event-stream`: notifications only), `ws` (`/api/v1/sdk/ws` with
    /// a server key: the `put` as one WebSocket message) or `mixed` (half `sdk`, half `ws`).
    #[arg(long, default_value = "sdk", value_parser = ["sdk", "ofrep", "ws", "mixed"])]
    endpoint: String,
    /// Read each stream at most this many bytes per second (slow subscribers); default: as
    /// fast as possible.
    #[arg(long)]
    slow_rate: Option<u64>,
    /// Seconds to wait for every subscriber's `put` (fast readers) before holding.
    #[arg(long, default_value_t = 300)]
    connect_deadline: u64,
    /// Seconds to keep the streams open afterwards (RSS is sampled throughout).
    #[arg(long, default_value_t = 30)]
    hold: u64,
    /// Close every stream early if the server's RSS passes this many MiB.
    #[arg(long, default_value_t = 12_288)]
    max_server_rss_mib: u64,
    /// Measure the server process that did the seeding instead of a fresh one started on
    /// the seeded database (its memory then includes the churn of 10,000 writes).
    #[arg(long)]
    keep_seeding_process: bool,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 900)]
    time_limit: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
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
    let database = (args.backend.as_str(), args.admin_url.as_str(), "streamload");
    support::bounded(
        database,
        args.client_threads,
        args.time_limit,
        |url| async move { run(args, &url).await },
    )
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut server = ChildServer::start(url, false).await?;
    let seeding = Instant::now();
    let seeded = seed(&Api::new(server.addr, reqwest::Client::new()), args.flags).await;
    let seeded = match seeded {
        Ok(seeded) => seeded,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    println!(
        "seeded {} flags in {:.0}s",
        args.flags,
        seeding.elapsed().as_secs_f64()
    );
    let mut cold_start = None;
    if !args.keep_seeding_process {
        // A node as it runs in production: started on an existing database.
        server.stop().await;
        server = ChildServer::start(url, false).await?;
        cold_start = match time_cold_start(&server, &seeded.server_key, args.flags).await {
            Ok(figures) => Some(figures),
            Err(e) => {
                server.stop().await;
                return Err(e);
            }
        };
    }
    let result = measure(args, &server, &seeded, cold_start).await;
    server.stop().await;
    result
}

/// A fresh server's start on the seeded database, from spawning its process: (address
/// printed, first `200` of `/ready`, first `200` of `/api/v1/sdk/config`), in ms.
async fn time_cold_start(
    server: &ChildServer,
    server_key: &str,
    flags: usize,
) -> anyhow::Result<[u128; 3]> {
    let listening = server.spawned.elapsed();
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let give_up = Instant::now() + Duration::from_secs(120);
    // `/ready`: snapshots loaded and the database answering (http/ops.rs).
    let ready = loop {
        let answer = client
            .get(format!("{base}/ready"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            break server.spawned.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "the server was not ready within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The first SDK fetch, which also builds the ruleset JSON.
    let config = loop {
        let answer = client
            .get(format!("{base}/api/v1/sdk/config"))
            .bearer_auth(server_key)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        if let Ok(resp) = answer
            && resp.status().is_success()
            && resp.bytes().await.is_ok()
        {
            break server.spawned.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "/api/v1/sdk/config did not answer within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ms = [listening, ready, config].map(|d| d.as_millis());
    println!(
        "cold start to ready: {} ms (from spawning the process with {} flags in the database: \
         listening after {} ms, /ready 200 after {} ms, first /api/v1/sdk/config 200 with the \
         whole ruleset after {} ms)",
        ms[1], flags, ms[0], ms[1], ms[2]
    );
    Ok(ms)
}

async fn measure(
    args: &Args,
    server: &ChildServer,
    seeded: &Seeded,
    cold_start: Option<[u128; 3]>,
) -> anyhow::Result<()> {
    println!(
        "server pid {} at {} ({}); {} cores; open-file limit {}; loadavg {}",
        server.pid,
        server.addr,
        if args.keep_seeding_process {
            "the seeding process"
        } else {
            "started on the seeded database"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        open_file_limit(),
        loadavg()
    );
    let api = Api::new(server.addr, reqwest::Client::new());
    // Builds (and caches) the ruleset JSON, as the first SDK fetch would.
    let config = get_with_key(&api, "/api/v1/sdk/config", &seeded.server_key).await?;
    println!(
        "ruleset version {}, {:.2} MB of JSON",
        config.1["version"],
        config.0 as f64 / 1e6
    );
    let sse = match args.endpoint.as_str() {
        "ofrep" => {
            let path = ofrep_uri(&api, &seeded.client_key).await?;
            stream_request(server.addr, &path, None)
        }
        _ => stream_request(server.addr, "/api/v1/sdk/stream", Some(&seeded.server_key)),
    };
    let ws = WsHandshake::new(server.addr, &seeded.server_key);
    let requests = Arc::new(Requests { sse, ws });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = Memory::of(server.pid);
    println!("before subscribers: {baseline}");

    let counters = Arc::new(Counters::default());
    let rss = Arc::new(RssSampler::default());
    let sampler = tokio::spawn(sample_rss(
        server.pid,
        rss.clone(),
        counters.clone(),
        args.max_server_rss_mib * 1024,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let protocol = match args.endpoint.as_str() {
            "ofrep" => Protocol::Ofrep,
            "ws" => Protocol::Ws,
            "mixed" if i % 2 == 1 => Protocol::Ws,
            _ => Protocol::Sse,
        };
        tasks.push(tokio::spawn(subscribe(
            server.addr,
            requests.clone(),
            protocol,
            i as u32,
            args.slow_rate,
            counters.clone(),
            started,
            stop_rx.clone(),
        )));
    }
    println!(
        "{} subscribers to {} ({}), connecting at once…",
        args.subscribers,
        match args.endpoint.as_str() {
            "ofrep" => "/ofrep/v1/event-stream",
            "ws" => "/api/v1/sdk/ws",
            "mixed" => "/api/v1/sdk/stream (half) and /api/v1/sdk/ws (half)",
            _ => "/api/v1/sdk/stream",
        },
        match args.slow_rate {
            Some(rate) => format!("reading at most {rate} B/s each"),
            None => "reading as fast as possible".to_owned(),
        }
    );

    // Fast readers: until every one has its `put` (or the deadline); slow readers: until
    // every one is connected.
    let deadline = started + Duration::from_secs(args.connect_deadline);
    loop {
        let done = if args.slow_rate.is_some() || args.endpoint == "ofrep" {
            counters.connected.load(Ordering::Relaxed)
        } else {
            // (A stream the server ended before its `put` is neither ready nor failed.)
            counters.ready.load(Ordering::Relaxed)
                + counters.ended_before_put.load(Ordering::Relaxed)
        };
        let settled = done + counters.failed.load(Ordering::Relaxed) >= args.subscribers;
        if settled || Instant::now() >= deadline || counters.abort.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settle = started.elapsed();
    let ready = if args.endpoint == "ofrep" {
        "ready"
    } else {
        "got their whole `put`"
    };
    let at_settle = Memory::of(server.pid);
    println!(
        "after {:.1}s: {} connected, {} {ready} (the last after {:.1}s), {} failed to connect, {} ended by the server ({} before their `put`), {:.2} GB received; {at_settle}; loadavg {}",
        settle.as_secs_f64(),
        counters.connected.load(Ordering::Relaxed),
        counters.ready.load(Ordering::Relaxed),
        counters.last_ready_ms.load(Ordering::Relaxed) as f64 / 1e3,
        counters.failed.load(Ordering::Relaxed),
        counters.ended.load(Ordering::Relaxed),
        counters.ended_before_put.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / 1e9,
        loadavg()
    );
    let uses_ws = matches!(args.endpoint.as_str(), "ws" | "mixed");
    if uses_ws {
        println!("  of which WebSocket: {}", counters.ws_line());
    }

    let hold_until = Instant::now() + Duration::from_secs(args.hold);
    while Instant::now() < hold_until && !counters.abort.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_hold = Memory::of(server.pid);
    println!(
        "held {}s more: {} streams still open ({} ended by the server, {} of them before their `put`), {} {ready}, {:.2} GB received; {at_hold}; loadavg {}",
        args.hold,
        counters.open.load(Ordering::Relaxed),
        counters.ended.load(Ordering::Relaxed),
        counters.ended_before_put.load(Ordering::Relaxed),
        counters.ready.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / 1e9,
        loadavg()
    );
    if uses_ws {
        println!("  of which WebSocket: {}", counters.ws_line());
    }
    if counters.abort.load(Ordering::Relaxed) {
        println!(
            "RUN CUT SHORT: the server's RSS passed {} MiB",
            args.max_server_rss_mib
        );
    }

    let _ = stop_tx.send(true);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    for task in tasks {
        if tokio::time::timeout_at(give_up, task).await.is_err() {
            break; // the rest are dropped with the runtime
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    counters.abort.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), sampler).await;
    let after = Memory::of(server.pid);
    println!("3s after closing every stream: {after}");
    println!(
        "SUMMARY endpoint={} subscribers={} ruleset={:.2}MB: RSS before {} MiB, peak sampled {} MiB, VmHWM {} MiB, at hold end {} MiB, after close {} MiB; settled in {:.1}s (the last of {} of {} {ready} after {:.1}s; {} ended by the server, {} before their `put`); cold start to ready {}",
        args.endpoint,
        args.subscribers,
        config.0 as f64 / 1e6,
        baseline.rss_kib / 1024,
        rss.peak_kib.load(Ordering::Relaxed) / 1024,
        after.hwm_kib / 1024,
        at_hold.rss_kib / 1024,
        after.rss_kib / 1024,
        settle.as_secs_f64(),
        counters.ready.load(Ordering::Relaxed),
        args.subscribers,
        counters.last_ready_ms.load(Ordering::Relaxed) as f64 / 1e3,
        counters.ended.load(Ordering::Relaxed),
        counters.ended_before_put.load(Ordering::Relaxed),
        match cold_start {
            Some([_, ready, config]) => format!("{ready} ms (first sdk/config {config} ms)"),
            None => "not measured (--keep-seeding-process)".to_owned(),
        }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Seeding over the management API.

struct Seeded {
    server_key: String,
    client_key: String,
}

async fn seed(api: &Api, flags: usize) -> anyhow::Result<Seeded> {
    let (project, env) = api.production().await?;
    // A few writers at once; SQLite serializes them anyway.
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (api, next, project) = (api.clone(), next.clone(), project.clone());
        writers.push(tokio::spawn(async move {
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
    for writer in writers {
        writer.await??;
    }
    let key = |kind: &str| json!({"name": format!("streamload {kind}"), "type": kind, "environment_id": env});
    let path = format!("/api/v1/projects/{project}/api-keys");
    let server_key = api
        .send(reqwest::Method::POST, &path, Some(key("server")))
        .await?["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no key in the API key creation response"))?
        .to_owned();
    let client_key = api
        .send(reqwest::Method::POST, &path, Some(key("client")))
        .await?["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no key in the API key creation response"))?
        .to_owned();
    Ok(Seeded {
        server_key,
        client_key,
    })
}

/// `/ofrep/v1/event-stream?token=…` for a client key, from a bulk evaluation.
async fn ofrep_uri(api: &Api, client_key: &str) -> anyhow::Result<String> {
    let bulk = api
        .client
        .post(format!("{}/ofrep/v1/evaluate/flags", api.base))
        .bearer_auth(client_key)
        .json(&json!({"context": {"targetingKey": "u1"}}))
        .timeout(Duration::from_secs(60))
        .send()
        .await?
        .json::<Value>()
        .await?;
    Ok(bulk["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no eventStreams in the OFREP bulk answer"))?
        .to_owned())
}

/// A string flag with four ~80-character variations: about 600 bytes of ruleset JSON.
fn flag(i: usize) -> Value {
    let variations: Vec<Value> = ["red", "green", "blue", "amber"]
        .iter()
        .map(|v| {
            json!({"key": v, "value": format!(
                "https://assets.example.com/themes/{v}/banner-{i:05}.svg?campaign=spring-sale-2025"
            )})
        })
        .collect();
    json!({"key": format!("load-flag-{i:05}"), "type": "string", "variations": variations})
}

// ---------------------------------------------------------------------------------------
// Subscribers.

#[derive(Default)]
struct Counters {
    /// Got a `200` and the response headers.
    connected: AtomicUsize,
    /// Got their whole `put`.
    ready: AtomicUsize,
    /// Could not connect or were refused.
    failed: AtomicUsize,
    /// Streams open now.
    open: AtomicUsize,
    /// Streams the server ended (end of file or reset) before this program closed them.
    ended: AtomicUsize,
    /// Of those, the ones that had not got their whole `put`.
    ended_before_put: AtomicUsize,
    /// When the last `put` (or OFREP connection) completed, in ms from the start.
    last_ready_ms: AtomicU64,
    bytes: AtomicU64,
    /// Set when the server's RSS passed the bound: every subscriber closes.
    abort: AtomicBool,
    /// WebSocket subscribers (also counted above): got the `101`.
    ws_connected: AtomicUsize,
    /// WebSocket subscribers that got their whole `put` message.
    ws_ready: AtomicUsize,
    /// WebSocket subscribers the server ended (close frame, end of file or reset).
    ws_ended: AtomicUsize,
    /// Pings answered with a pong.
    ws_pongs: AtomicUsize,
    /// Close frames from the server, by code and reason.
    ws_closes: Mutex<BTreeMap<String, usize>>,
}

impl Counters {
    /// The WebSocket subscribers' figures, for the report.
    fn ws_line(&self) -> String {
        let closes = self.ws_closes.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "{} upgraded, {} got their whole `put`, {} ended by the server (close frames {:?}), {} pings answered",
            self.ws_connected.load(Ordering::Relaxed),
            self.ws_ready.load(Ordering::Relaxed),
            self.ws_ended.load(Ordering::Relaxed),
            *closes,
            self.ws_pongs.load(Ordering::Relaxed)
        )
    }
}

fn stream_request(addr: SocketAddr, path: &str, key: Option<&str>) -> Vec<u8> {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: text/event-stream\r\n\r\n")
        .into_bytes()
}

/// How a subscriber subscribes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `/api/v1/sdk/stream`.
    Sse,
    /// `/ofrep/v1/event-stream`.
    Ofrep,
    /// `/api/v1/sdk/ws`.
    Ws,
}

/// The requests subscribers send: the SSE one (SDK or OFREP) and the WebSocket handshake.
struct Requests {
    sse: Vec<u8>,
    ws: WsHandshake,
}

/// The WebSocket opening handshake (one key for the run) and the accept value it expects.
struct WsHandshake {
    request: Vec<u8>,
    /// `Sec-WebSocket-Accept` expected, lowercased (response headers are compared so).
    accept: String,
}

impl WsHandshake {
    fn new(addr: SocketAddr, server_key: &str) -> WsHandshake {
        let key = BASE64.encode(uuid::Uuid::new_v4().as_bytes());
        let request = format!(
            "GET /api/v1/sdk/ws HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {server_key}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: {key}\r\n\r\n"
        )
        .into_bytes();
        let digest = Sha1::new()
            .chain_update(key.as_bytes())
            .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
            .finalize();
        WsHandshake {
            request,
            accept: BASE64.encode(digest).to_ascii_lowercase(),
        }
    }
}

/// A subscriber's parser: SSE over chunked HTTP, or WebSocket frames.
enum Reader {
    Sse(StreamReader),
    Ws(WsReader),
}

impl Reader {
    fn feed(&mut self, input: &[u8]) -> Result<Seen, ()> {
        match self {
            Reader::Sse(r) => r.feed(input),
            Reader::Ws(r) => r.feed(input),
        }
    }

    /// Whole `put`s read so far.
    fn puts(&self) -> usize {
        match self {
            Reader::Sse(r) => r.puts,
            Reader::Ws(r) => r.puts,
        }
    }

    /// Past the response headers (the `200`, or the `101` of a WebSocket).
    fn in_body(&self) -> bool {
        match self {
            Reader::Sse(r) => r.in_body,
            Reader::Ws(r) => r.upgraded,
        }
    }
}

/// One subscriber: connects, reads the stream (counting bytes, noticing the `put`,
/// answering WebSocket pings) until told to stop, the server ends it, or the run is
/// aborted.
#[allow(clippy::too_many_arguments)] // One task's whole setup, passed once at spawn.
async fn subscribe(
    addr: SocketAddr,
    requests: Arc<Requests>,
    protocol: Protocol,
    index: u32,
    slow_rate: Option<u64>,
    counters: Arc<Counters>,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let ws = protocol == Protocol::Ws;
    let mark_ready = || {
        counters.ready.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_millis() as u64;
        counters.last_ready_ms.fetch_max(ms, Ordering::Relaxed);
    };
    let request = if ws {
        &requests.ws.request
    } else {
        &requests.sse
    };
    let connect = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        anyhow::Ok(stream)
    };
    let mut stream = tokio::select! {
        s = connect => match s {
            Ok(s) => s,
            Err(_) => { counters.failed.fetch_add(1, Ordering::Relaxed); return; }
        },
        _ = stop.wait_for(|s| *s) => return,
    };
    counters.open.fetch_add(1, Ordering::Relaxed);
    // A slow reader takes a tenth of its rate every 100 ms, once it has the headers.
    let step = slow_rate.map(|r| (r / 10).clamp(1, 32 * 1024) as usize);
    let mut buf = vec![0u8; 32 * 1024];
    let mut reader = if ws {
        Reader::Ws(WsReader::new(
            requests.ws.accept.clone(),
            index.wrapping_mul(0x9E37_79B9) | 1,
        ))
    } else {
        Reader::Sse(StreamReader::default())
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut got_put = false;
    let ended_by_server = loop {
        if counters.abort.load(Ordering::Relaxed) {
            break false;
        }
        let limit = match step {
            Some(step) if reader.in_body() => {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break false,
                }
                step
            }
            _ => buf.len(),
        };
        let n = tokio::select! {
            r = stream.read(&mut buf[..limit]) => match r { Ok(0) | Err(_) => break true, Ok(n) => n },
            _ = stop.wait_for(|s| *s) => break false,
        };
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let (was_in_body, puts_before) = (reader.in_body(), reader.puts());
        let seen = reader.feed(&buf[..n]);
        // (A `put` completed by a read that also ends the stream counts as well.)
        if reader.puts() > puts_before && !got_put {
            got_put = true;
            mark_ready();
            if ws {
                counters.ws_ready.fetch_add(1, Ordering::Relaxed);
            }
        }
        // (The headers and the whole `put` may come in one read.)
        if !was_in_body && reader.in_body() {
            counters.connected.fetch_add(1, Ordering::Relaxed);
            if ws {
                counters.ws_connected.fetch_add(1, Ordering::Relaxed);
            }
            if protocol == Protocol::Ofrep {
                mark_ready();
            }
        }
        if let Reader::Ws(r) = &mut reader {
            if !r.replies.is_empty() {
                if stream.write_all(&r.replies).await.is_err() {
                    break true;
                }
                counters
                    .ws_pongs
                    .fetch_add(std::mem::take(&mut r.pongs), Ordering::Relaxed);
                r.replies.clear();
            }
            if let Some(close) = r.close.take() {
                *counters
                    .ws_closes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(close)
                    .or_default() += 1;
            }
        }
        match seen {
            // (Headers and `put`s are counted above.)
            Ok(Seen::Put | Seen::Headers | Seen::Nothing) => {}
            // A refusal, the stream's last chunk, or a close frame.
            Err(()) => break true,
        }
    };
    counters.open.fetch_sub(1, Ordering::Relaxed);
    // (Streams closed here, on stop or abort, count as neither.)
    match (ended_by_server, reader.in_body()) {
        (true, true) => {
            if ws {
                counters.ws_ended.fetch_add(1, Ordering::Relaxed);
            }
            if !got_put {
                counters.ended_before_put.fetch_add(1, Ordering::Relaxed);
            }
            counters.ended.fetch_add(1, Ordering::Relaxed)
        }
        (true, false) => counters.failed.fetch_add(1, Ordering::Relaxed),
        (false, _) => 0,
    };
}

/// What one read completed.
enum Seen {
    Nothing,
    Headers,
    Put,
}

/// Response headers, then chunked transfer decoding, then SSE frames; only the first bytes
/// of each frame are kept.
#[derive(Default)]
struct StreamReader {
    headers: Vec<u8>,
    in_body: bool,
    chunk: Chunk,
    /// The current frame's first bytes (enough to recognise `event: put`).
    frame_start: Vec<u8>,
    last_was_newline: bool,
    puts: usize,
}

#[derive(Default)]
enum Chunk {
    /// Reading the hexadecimal size line (value so far).
    #[default]
    Size,
    SizeValue(usize),
    /// After the size line's `\r`.
    SizeEnd(usize),
    Data(usize),
    /// The `\r\n` after a chunk's data (bytes left).
    Crlf(usize),
}

impl StreamReader {
    fn feed(&mut self, mut input: &[u8]) -> Result<Seen, ()> {
        let mut seen = Seen::Nothing;
        if !self.in_body {
            self.headers.extend_from_slice(input);
            let Some(end) = find(&self.headers, b"\r\n\r\n") else {
                return if self.headers.len() > 16 * 1024 {
                    Err(())
                } else {
                    Ok(seen)
                };
            };
            let head = String::from_utf8_lossy(&self.headers[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
                return Err(());
            }
            let rest = self.headers.split_off(end + 4);
            self.in_body = true;
            seen = Seen::Headers;
            self.headers = Vec::new();
            let before = self.puts;
            self.body(&rest)?;
            if self.puts > before {
                seen = Seen::Put;
            }
            return Ok(seen);
        }
        let before = self.puts;
        while !input.is_empty() {
            let used = self.body_step(input)?;
            input = &input[used..];
        }
        if self.puts > before {
            seen = Seen::Put;
        }
        Ok(seen)
    }

    fn body(&mut self, mut input: &[u8]) -> Result<(), ()> {
        while !input.is_empty() {
            let used = self.body_step(input)?;
            input = &input[used..];
        }
        Ok(())
    }

    /// Consumes some of `input` (at least one byte); returns how much.
    fn body_step(&mut self, input: &[u8]) -> Result<usize, ()> {
        let b = input[0];
        match self.chunk {
            Chunk::Size | Chunk::SizeValue(_) => {
                let value = match self.chunk {
                    Chunk::SizeValue(v) => v,
                    _ => 0,
                };
                self.chunk = match b {
                    b'\r' => Chunk::SizeEnd(value),
                    _ => {
                        let digit = (b as char).to_digit(16).ok_or(())? as usize;
                        Chunk::SizeValue(value.checked_mul(16).ok_or(())? + digit)
                    }
                };
                Ok(1)
            }
            Chunk::SizeEnd(0) => Err(()), // the last chunk: the stream ended
            Chunk::SizeEnd(n) if b == b'\n' => {
                self.chunk = Chunk::Data(n);
                Ok(1)
            }
            Chunk::SizeEnd(_) => Err(()),
            Chunk::Data(left) => {
                let take = left.min(input.len());
                self.payload(&input[..take]);
                self.chunk = if take == left {
                    Chunk::Crlf(2)
                } else {
                    Chunk::Data(left - take)
                };
                Ok(take)
            }
            Chunk::Crlf(left) => {
                self.chunk = if left == 1 {
                    Chunk::Size
                } else {
                    Chunk::Crlf(left - 1)
                };
                Ok(1)
            }
        }
    }

    /// SSE framing: a frame ends at an empty line (`\n\n`).
    fn payload(&mut self, data: &[u8]) {
        // Most of a `put` is one JSON line: skip it without looking at every byte.
        if !data.contains(&b'\n') {
            self.keep_start(data);
            self.last_was_newline = false;
            return;
        }
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                if self.last_was_newline {
                    if self.frame_start.starts_with(b"event: put")
                        || self.frame_start.starts_with(b"event:put")
                    {
                        self.puts += 1;
                    }
                    self.frame_start.clear();
                    self.last_was_newline = false;
                    continue;
                }
                self.last_was_newline = true;
            } else {
                self.last_was_newline = false;
            }
            if self.frame_start.len() < 16 {
                self.keep_start(&data[i..=i]);
            }
        }
    }

    fn keep_start(&mut self, data: &[u8]) {
        let room = 16usize.saturating_sub(self.frame_start.len());
        self.frame_start
            .extend_from_slice(&data[..room.min(data.len())]);
    }
}

/// The start of a `put` message as the server writes it (`{"event":"put","id":…}`).
const WS_PUT: &[u8] = br#"{"event":"put""#;

/// The `101` response headers, then server frames (RFC 6455 §5.2): only the frame headers,
/// the first bytes of each message and control frames' payloads (at most 125 bytes) are
/// kept; message payloads are skipped as they arrive.
struct WsReader {
    headers: Vec<u8>,
    upgraded: bool,
    /// The `Sec-WebSocket-Accept` the handshake must carry (lowercased).
    accept: String,
    /// The current frame's header so far (server frames are unmasked: at most 10 bytes).
    head: [u8; 10],
    head_len: usize,
    /// In a frame's payload, with this many bytes left.
    payload_left: Option<u64>,
    /// The current frame's opcode and FIN bit.
    opcode: u8,
    fin: bool,
    /// The current message's first bytes (enough to recognise a `put`).
    message_start: Vec<u8>,
    /// The current control frame's payload.
    control: Vec<u8>,
    /// Pongs to send (masked frames), and how many.
    replies: Vec<u8>,
    pongs: usize,
    /// Masking keys (xorshift): client frames must be masked.
    mask_state: u32,
    /// The code and reason of a close frame from the server, until counted.
    close: Option<String>,
    puts: usize,
}

impl WsReader {
    fn new(accept: String, seed: u32) -> WsReader {
        WsReader {
            headers: Vec::new(),
            upgraded: false,
            accept,
            head: [0; 10],
            head_len: 0,
            payload_left: None,
            opcode: 0,
            fin: false,
            message_start: Vec::new(),
            control: Vec::new(),
            replies: Vec::new(),
            pongs: 0,
            mask_state: seed.max(1),
            close: None,
            puts: 0,
        }
    }

    fn feed(&mut self, mut input: &[u8]) -> Result<Seen, ()> {
        let mut seen = Seen::Nothing;
        if !self.upgraded {
            self.headers.extend_from_slice(input);
            let Some(end) = find(&self.headers, b"\r\n\r\n") else {
                return if self.headers.len() > 16 * 1024 {
                    Err(())
                } else {
                    Ok(seen)
                };
            };
            let head = String::from_utf8_lossy(&self.headers[..end]).to_ascii_lowercase();
            let accepted = head
                .lines()
                .filter_map(|l| l.strip_prefix("sec-websocket-accept:"))
                .any(|v| v.trim() == self.accept);
            if !head.starts_with("http/1.1 101") || !accepted {
                return Err(());
            }
            let rest = self.headers.split_off(end + 4);
            self.headers = Vec::new();
            self.upgraded = true;
            seen = Seen::Headers;
            let before = self.puts;
            self.frames(&rest)?;
            if self.puts > before {
                seen = Seen::Put;
            }
            return Ok(seen);
        }
        let before = self.puts;
        while !input.is_empty() {
            let used = self.frame_step(input)?;
            input = &input[used..];
        }
        if self.puts > before {
            seen = Seen::Put;
        }
        Ok(seen)
    }

    fn frames(&mut self, mut input: &[u8]) -> Result<(), ()> {
        while !input.is_empty() {
            let used = self.frame_step(input)?;
            input = &input[used..];
        }
        Ok(())
    }

    /// Consumes some of `input` (at least one byte); returns how much.
    fn frame_step(&mut self, input: &[u8]) -> Result<usize, ()> {
        if let Some(left) = self.payload_left {
            let take = left.min(input.len() as u64) as usize;
            let data = &input[..take];
            if self.opcode & 0x8 != 0 {
                self.control.extend_from_slice(data);
            } else {
                let room = 16usize.saturating_sub(self.message_start.len());
                self.message_start
                    .extend_from_slice(&data[..room.min(data.len())]);
            }
            if take as u64 == left {
                self.frame_end()?;
            } else {
                self.payload_left = Some(left - take as u64);
            }
            return Ok(take);
        }
        // The header: 2 bytes, then a 16- or 64-bit length.
        let needed = |head: &[u8; 10], len: usize| {
            if len < 2 {
                2
            } else {
                match head[1] & 0x7F {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                }
            }
        };
        let mut used = 0;
        while used < input.len() && self.head_len < needed(&self.head, self.head_len) {
            self.head[self.head_len] = input[used];
            self.head_len += 1;
            used += 1;
        }
        if self.head_len < needed(&self.head, self.head_len) {
            return Ok(used);
        }
        let (b0, b1) = (self.head[0], self.head[1]);
        if b1 & 0x80 != 0 || b0 & 0x70 != 0 {
            return Err(()); // server frames are unmasked, no extensions were agreed
        }
        let len = match b1 & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => u64::from_be_bytes(self.head[2..10].try_into().map_err(drop)?),
            n => u64::from(n),
        };
        self.head_len = 0;
        self.fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        if opcode & 0x8 != 0 {
            if len > 125 || !self.fin {
                return Err(());
            }
            self.control.clear();
        }
        self.opcode = opcode;
        if len == 0 {
            self.frame_end()?;
        } else {
            self.payload_left = Some(len);
        }
        Ok(used)
    }

    /// A whole frame has been read.
    fn frame_end(&mut self) -> Result<(), ()> {
        self.payload_left = None;
        match self.opcode {
            // Text, binary, continuation: a message ends with its FIN frame.
            0x0..=0x2 => {
                if self.fin {
                    if self.message_start.starts_with(WS_PUT) {
                        self.puts += 1;
                    }
                    self.message_start.clear();
                }
                Ok(())
            }
            0x8 => {
                self.close = Some(match self.control[..] {
                    [hi, lo, ref reason @ ..] => format!(
                        "{} {}",
                        u16::from_be_bytes([hi, lo]),
                        String::from_utf8_lossy(reason)
                    ),
                    _ => "1005 (no code)".to_owned(),
                });
                Err(())
            }
            0x9 => {
                self.pong();
                Ok(())
            }
            0xA => Ok(()),
            _ => Err(()),
        }
    }

    /// Queues a masked pong carrying the ping's payload.
    fn pong(&mut self) {
        let mut state = self.mask_state;
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        self.mask_state = state;
        let mask = state.to_be_bytes();
        self.replies.push(0x80 | 0xA);
        self.replies.push(0x80 | self.control.len() as u8);
        self.replies.extend_from_slice(&mask);
        self.replies.extend(
            self.control
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        self.pongs += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Memory figures (Linux `/proc`).

#[derive(Default)]
struct RssSampler {
    peak_kib: AtomicU64,
}

/// Samples the server's RSS every 100 ms until the run is over; sets `abort` past `max_kib`.
async fn sample_rss(pid: u32, rss: Arc<RssSampler>, counters: Arc<Counters>, max_kib: u64) {
    while !counters.abort.load(Ordering::Relaxed) || counters.open.load(Ordering::Relaxed) > 0 {
        let now = Memory::of(pid).rss_kib;
        rss.peak_kib.fetch_max(now, Ordering::Relaxed);
        if now > max_kib {
            counters.abort.store(true, Ordering::Relaxed);
        }
        if counters.abort.load(Ordering::Relaxed) && counters.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB, and its open file descriptors (connections,
/// as the server sees them).
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server VmRSS {} MiB, VmHWM {} MiB, {} open descriptors",
            self.rss_kib / 1024,
            self.hwm_kib / 1024,
            self.fds
        )
    }
}

/// A GET with an API key: (body length, parsed body).
async fn get_with_key(api: &Api, path: &str, key: &str) -> anyhow::Result<(usize, Value)> {
    let resp = api
        .client
        .get(format!("{}{path}", api.base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{path}: {status}");
    Ok((text.len(), serde_json::from_str(&text)?))
}
