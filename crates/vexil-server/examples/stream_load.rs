//! SSE memory load test: how much resident memory one server node needs to hold many stream
//! subscribers of a large ruleset. Starts a server on a fresh database (SQLite file or a new
//! PostgreSQL database) in a separate OS process (this program re-executed with a hidden
//! `--serve`, with the `vexil` binary's allocator), seeds `--flags` flags (about 600 bytes
//! of ruleset each: 10,000 make a ~6 MB `put`), then opens `--subscribers` streams at once
//! over loopback and reads them — as fast as it can, or at `--slow-rate` bytes per second
//! per subscriber — while sampling the server's `VmRSS`/`VmHWM` from `/proc/<pid>/status`.
//! It holds the streams for `--hold` seconds, closes them, and prints the figures.
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
//! ```
//!
//! Subscribers speak HTTP/1.1 over raw sockets (chunked decoding and SSE framing written
//! here, the payload only scanned for frame ends) so that the load generator stays cheap
//! next to a server that sends gigabytes.
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::{Api, ChildServer, find, loadavg, open_file_limit};

/// The allocator of the `vexil` binary, so that the server measured here allocates as
/// `vexil serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
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
    /// `sdk` (`/api/v1/sdk/stream` with a server key: a `put` of the whole ruleset) or
    /// `ofrep` (`/ofrep/v1/event-stream`: notifications only).
    #[arg(long, default_value = "sdk", value_parser = ["sdk", "ofrep"])]
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
    if !args.keep_seeding_process {
        // A node as it runs in production: started on an existing database.
        server.stop().await;
        server = ChildServer::start(url, false).await?;
    }
    let result = measure(args, &server, &seeded).await;
    server.stop().await;
    result
}

async fn measure(args: &Args, server: &ChildServer, seeded: &Seeded) -> anyhow::Result<()> {
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
    let (path, key) = match args.endpoint.as_str() {
        "ofrep" => (ofrep_uri(&api, &seeded.client_key).await?, None),
        _ => (
            "/api/v1/sdk/stream".to_owned(),
            Some(seeded.server_key.clone()),
        ),
    };
    let request = Arc::new(stream_request(server.addr, &path, key.as_deref()));
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
    for _ in 0..args.subscribers {
        tasks.push(tokio::spawn(subscribe(
            server.addr,
            request.clone(),
            args.endpoint == "ofrep",
            args.slow_rate,
            counters.clone(),
            stop_rx.clone(),
        )));
    }
    println!(
        "{} subscribers to {} ({}), connecting at once…",
        args.subscribers,
        if args.endpoint == "ofrep" {
            "/ofrep/v1/event-stream"
        } else {
            "/api/v1/sdk/stream"
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
            counters.ready.load(Ordering::Relaxed)
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
        "after {:.1}s: {} connected, {} {ready}, {} failed to connect, {:.2} GB received; {at_settle}",
        settle.as_secs_f64(),
        counters.connected.load(Ordering::Relaxed),
        counters.ready.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / 1e9
    );

    let hold_until = Instant::now() + Duration::from_secs(args.hold);
    while Instant::now() < hold_until && !counters.abort.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_hold = Memory::of(server.pid);
    println!(
        "held {}s more: {} streams still open ({} ended by the server), {} {ready}, {:.2} GB received; {at_hold}",
        args.hold,
        counters.open.load(Ordering::Relaxed),
        counters.ended.load(Ordering::Relaxed),
        counters.ready.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / 1e9
    );
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
        "SUMMARY endpoint={} subscribers={} ruleset={:.2}MB: RSS before {} MiB, peak sampled {} MiB, VmHWM {} MiB, at hold end {} MiB, after close {} MiB",
        args.endpoint,
        args.subscribers,
        config.0 as f64 / 1e6,
        baseline.rss_kib / 1024,
        rss.peak_kib.load(Ordering::Relaxed) / 1024,
        after.hwm_kib / 1024,
        at_hold.rss_kib / 1024,
        after.rss_kib / 1024
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
    bytes: AtomicU64,
    /// Set when the server's RSS passed the bound: every subscriber closes.
    abort: AtomicBool,
}

fn stream_request(addr: SocketAddr, path: &str, key: Option<&str>) -> Vec<u8> {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: text/event-stream\r\n\r\n")
        .into_bytes()
}

/// One subscriber: connects, reads the stream (counting bytes, noticing the `put`) until
/// told to stop, the server ends it, or the run is aborted.
async fn subscribe(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    ofrep: bool,
    slow_rate: Option<u64>,
    counters: Arc<Counters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let connect = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&request).await?;
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
    let mut reader = StreamReader::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let ended_by_server = loop {
        if counters.abort.load(Ordering::Relaxed) {
            break false;
        }
        let limit = match step {
            Some(step) if reader.in_body => {
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
        match reader.feed(&buf[..n]) {
            Ok(Seen::Headers) => {
                counters.connected.fetch_add(1, Ordering::Relaxed);
                if ofrep {
                    counters.ready.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Seen::Put) => {
                counters.ready.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Seen::Nothing) => {}
            // A refusal, or the stream's last chunk.
            Err(()) => break true,
        }
    };
    counters.open.fetch_sub(1, Ordering::Relaxed);
    // (Streams closed here, on stop or abort, count as neither.)
    match (ended_by_server, reader.in_body) {
        (true, true) => counters.ended.fetch_add(1, Ordering::Relaxed),
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
