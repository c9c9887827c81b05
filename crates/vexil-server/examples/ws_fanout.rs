//! Stream fan-out latency, WebSocket and SSE side by side: how long after a flag change is
//! sent to the management API every stream subscriber has its `patch`. Starts a server on a
//! fresh database (SQLite file or a new PostgreSQL database) in a separate OS process (this
//! program re-executed with a hidden `--serve`, with the `vexil` binary's allocator),
//! creates one flag and a server key, then, for each protocol of `--protocol` in turn
//! (`both`: WebSocket first, then SSE, each with the same load):
//!
//! 1. opens `--subscribers` streams (`/api/v1/sdk/ws` through a minimal RFC 6455 client
//!    written here, or `/api/v1/sdk/stream` through reqwest) and waits until each has its
//!    `put`;
//! 2. makes `--changes` changes one at a time, `--spacing-ms` apart: toggles the flag in
//!    production with `PATCH /api/v1/flags/{id}/environments/{env}/config`, waiting for
//!    every subscriber's `patch` (at most `--change-timeout` seconds) before the next;
//! 3. closes the streams.
//!
//! Each latency runs from just before the `PATCH` request is sent to the moment a
//! subscriber's task has parsed the matching `patch` (matched by its `id`, the new
//! environment version, and checked against the `enabled` it carries), so it includes the
//! load generator's own scheduling: with one client thread, the last subscriber's figure
//! includes the time to read every other subscriber's message first. Prints, per protocol:
//! p50/p99/max of the per-subscriber latencies (all changes pooled), p50/p99/max over the
//! changes of the time until the last subscriber had it, and the `PATCH` response time.
//!
//! The WebSocket client is a raw socket (the handshake, then frame headers; each text
//! message's JSON parsed once, as SSE's `data` is) rather than tokio-tungstenite: through
//! tokio-tungstenite the WebSocket latencies came out twice SSE's, and with this client
//! they match, so the difference was that client's cost on the load generator's thread.
//!
//! Bounded: the whole run stops by itself after `--time-limit` seconds (default 5 minutes);
//! subscribers that have not got their `put` after `--connect-deadline` seconds are counted
//! and left out. Loopback only. Not part of any test run.
//!
//! ```sh
//! ulimit -n 20000   # both processes hold one descriptor per subscriber (check `ulimit -Hn`)
//! cargo run --release -p vexil-server --example ws_fanout -- --subscribers 1000
//! cargo run --release -p vexil-server --example ws_fanout -- --subscribers 1000 --protocol ws
//! ```
#![allow(clippy::print_stdout)] // A command-line report is this program's output.

#[path = "support/mod.rs"]
mod support;

use support::{Api, ChildServer, loadavg, open_file_limit};

/// The allocator of the `vexil` binary, so that the server measured here allocates as
/// `vexil serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL URL used to create (and afterwards drop) a scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Streams per protocol.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Flag changes per protocol.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Pause after every subscriber has a change (or the timeout) before the next one.
    #[arg(long, default_value_t = 300)]
    spacing_ms: u64,
    /// `ws` (`/api/v1/sdk/ws`), `sse` (`/api/v1/sdk/stream`) or `both` (one after the other).
    #[arg(long, default_value = "both", value_parser = ["ws", "sse", "both"])]
    protocol: String,
    /// Seconds to wait for every subscriber's `put`.
    #[arg(long, default_value_t = 60)]
    connect_deadline: u64,
    /// Seconds to wait for every subscriber's `patch` of one change.
    #[arg(long, default_value_t = 10)]
    change_timeout: u64,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
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
    let database = (args.backend.as_str(), args.admin_url.as_str(), "wsfanout");
    support::bounded(
        database,
        args.client_threads,
        args.time_limit,
        |url| async move {
            let mut server = ChildServer::start(&url, false).await?;
            let result = run(args, &server).await;
            server.stop().await;
            result
        },
    )
}

/// What the run changes: the flag, its environment, and the key the streams use.
struct Target {
    api: Api,
    flag: String,
    env: String,
    key: String,
    /// The flag's `enabled` in production now.
    enabled: bool,
}

async fn run(args: &Args, server: &ChildServer) -> anyhow::Result<()> {
    let api = Api::new(server.addr, reqwest::Client::new());
    let (project, env) = api.production().await?;
    let flag = api
        .send(
            Method::POST,
            &format!("/api/v1/projects/{project}/feature-flags"),
            Some(json!({"key": "fanout"})),
        )
        .await?["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id in the flag creation response"))?
        .to_owned();
    let key = api
        .send(
            Method::POST,
            &format!("/api/v1/projects/{project}/api-keys"),
            Some(json!({"name": "fanout", "type": "server", "environment_id": env})),
        )
        .await?["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no key in the API key creation response"))?
        .to_owned();
    let mut target = Target {
        api,
        flag,
        env,
        key,
        enabled: false,
    };
    // A known state before anyone subscribes.
    toggle(&target, false).await?;
    println!(
        "server pid {} at {}; {} cores; open-file limit {}; loadavg {}",
        server.pid,
        server.addr,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        open_file_limit(),
        loadavg()
    );
    let protocols: &[Protocol] = match args.protocol.as_str() {
        "ws" => &[Protocol::Ws],
        "sse" => &[Protocol::Sse],
        _ => &[Protocol::Ws, Protocol::Sse],
    };
    let mut reports = Vec::new();
    for &protocol in protocols {
        reports.push(phase(args, server, &mut target, protocol).await?);
    }
    println!();
    println!(
        "SUMMARY {} subscribers, {} changes {} ms apart, {} client thread(s):",
        args.subscribers, args.changes, args.spacing_ms, args.client_threads
    );
    for report in &reports {
        println!("  {report}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Ws,
    Sse,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Ws => "ws ",
            Protocol::Sse => "sse",
        }
    }
}

/// Sets the flag's `enabled` in production through the management API.
async fn toggle(target: &Target, enabled: bool) -> anyhow::Result<()> {
    target
        .api
        .send(
            Method::PATCH,
            &format!(
                "/api/v1/flags/{}/environments/{}/config",
                target.flag, target.env
            ),
            Some(json!({"enabled": enabled})),
        )
        .await?;
    Ok(())
}

/// A `patch` of the flag as one subscriber got it.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    id: u64,
    enabled: Option<bool>,
    at: Instant,
}

/// What the subscribers of one protocol share.
#[derive(Default)]
struct Shared {
    /// Got their `put`.
    ready: AtomicUsize,
    /// Could not connect, or were refused.
    failed: AtomicUsize,
    /// Ended by the server before being told to stop.
    ended: AtomicUsize,
    /// `patch` events received, all subscribers together.
    patches: AtomicUsize,
}

/// Opens the subscribers, makes the changes, closes them; returns the report line.
async fn phase(
    args: &Args,
    server: &ChildServer,
    target: &mut Target,
    protocol: Protocol,
) -> anyhow::Result<String> {
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        let (addr, key) = (server.addr, target.key.clone());
        tasks.push(match protocol {
            Protocol::Ws => tokio::spawn(subscribe_ws(addr, key, shared, stop)),
            Protocol::Sse => tokio::spawn(subscribe_sse(http.clone(), addr, key, shared, stop)),
        });
    }
    let deadline = started + Duration::from_secs(args.connect_deadline);
    loop {
        let settled = shared.ready.load(Ordering::Relaxed)
            + shared.failed.load(Ordering::Relaxed)
            + shared.ended.load(Ordering::Relaxed)
            >= args.subscribers;
        if settled || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let subscribed = shared.ready.load(Ordering::Relaxed);
    println!(
        "{}: {} of {} subscribers got their `put` in {:.2}s ({} failed); loadavg {}",
        protocol.name().trim(),
        subscribed,
        args.subscribers,
        started.elapsed().as_secs_f64(),
        shared.failed.load(Ordering::Relaxed),
        loadavg()
    );
    anyhow::ensure!(subscribed > 0, "no subscriber got its `put`");

    let mut sent = Vec::with_capacity(args.changes);
    let mut response_ms = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let enabled = !target.enabled;
        let expected = subscribed * (i + 1);
        let t0 = Instant::now();
        toggle(target, enabled).await?;
        response_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        target.enabled = enabled;
        sent.push((t0, enabled));
        let wait_until = t0 + Duration::from_secs(args.change_timeout);
        while shared.patches.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(args.spacing_ms)).await;
    }
    let _ = stop_tx.send(true);
    let mut receipts = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Ok(Some(got))) = tokio::time::timeout(Duration::from_secs(10), task).await {
            receipts.push(got);
        }
    }
    Ok(analyse(protocol, &sent, &receipts, &response_ms, &shared))
}

/// Matches receipts to changes by version and computes the figures.
fn analyse(
    protocol: Protocol,
    sent: &[(Instant, bool)],
    receipts: &[Vec<Receipt>],
    response_ms: &[f64],
    shared: &Shared,
) -> String {
    // Each change makes a new environment version, higher than the previous change's: the
    // change's id is the lowest id above the previous one whose patches carry its state.
    let all: BTreeSet<(u64, Option<bool>)> = receipts
        .iter()
        .flatten()
        .map(|r| (r.id, r.enabled))
        .collect();
    let mut ids = Vec::with_capacity(sent.len());
    let mut previous = 0;
    for &(_, enabled) in sent {
        let id = all
            .iter()
            .find(|(id, e)| *id > previous && *e == Some(enabled))
            .map(|(id, _)| *id);
        if let Some(id) = id {
            previous = id;
        }
        ids.push(id);
    }
    let mut latencies = Vec::new();
    let mut lasts = Vec::new();
    let mut missed = 0usize;
    let mismatched = all
        .iter()
        .filter(|(id, _)| !ids.contains(&Some(*id)))
        .count();
    for (i, &(t0, _)) in sent.iter().enumerate() {
        let mut last: Option<f64> = None;
        for subscriber in receipts {
            let got = ids[i].and_then(|id| subscriber.iter().find(|r| r.id == id));
            match got {
                Some(r) => {
                    let ms = r.at.saturating_duration_since(t0).as_secs_f64() * 1e3;
                    latencies.push(ms);
                    last = Some(last.map_or(ms, |l| l.max(ms)));
                }
                None => missed += 1,
            }
        }
        if let Some(last) = last {
            lasts.push(last);
        }
    }
    let per = Percentiles::of(&mut latencies);
    let last = Percentiles::of(&mut lasts);
    let response = Percentiles::of(&mut response_ms.to_vec());
    format!(
        "{}: {} subscribers x {} changes: per-subscriber latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         last subscriber p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; PATCH response p50 {:.1} ms, max {:.1} ms; \
         {} receipts missing, {} unmatched versions, {} streams ended by the server",
        protocol.name(),
        receipts.len(),
        sent.len(),
        per.p50,
        per.p99,
        per.max,
        last.p50,
        last.p99,
        last.max,
        response.p50,
        response.max,
        missed,
        mismatched,
        shared.ended.load(Ordering::Relaxed)
    )
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(values: &mut [f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles {
                p50: f64::NAN,
                p99: f64::NAN,
                max: f64::NAN,
            };
        }
        values.sort_by(f64::total_cmp);
        let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            p50: pick(0.5),
            p99: pick(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// A stream event: its name, id and (parsed) data. Each protocol parses an event's JSON
/// once (the whole message on WebSocket, the `data` line on SSE), so that the load
/// generator's share of the latencies is alike.
fn record(shared: &Shared, receipts: &mut Vec<Receipt>, event: &str, id: u64, data: &Value) {
    let at = Instant::now();
    match event {
        "put" => {
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        "patch" => {
            receipts.push(Receipt {
                id,
                enabled: data["value"]["enabled"].as_bool(),
                at,
            });
            shared.patches.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// One WebSocket subscriber (a raw socket: the handshake, then server frames, which are
/// never masked; pings need no answer here, as the server drops nobody for a late pong):
/// its receipts, or `None` if it never connected.
async fn subscribe_ws(
    addr: std::net::SocketAddr,
    key: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Option<Vec<Receipt>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let handshake = format!(
        "GET /api/v1/sdk/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    let connected = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        tcp.write_all(handshake.as_bytes()).await?;
        std::io::Result::Ok(tcp)
    };
    let Ok(mut tcp) = connected.await else {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let mut buffer: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut upgraded = false;
    let mut receipts = Vec::new();
    loop {
        let read = tokio::select! {
            r = tcp.read(&mut chunk) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                shared.ended.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        if !upgraded {
            let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !buffer.starts_with(b"HTTP/1.1 101") {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            buffer.drain(..end + 4);
            upgraded = true;
        }
        // Every complete frame: (opcode, payload).
        let mut at = 0;
        while let Some((opcode, payload)) = next_frame(&buffer[at..]) {
            if opcode == 0x1
                && let Ok(event) = serde_json::from_slice::<Value>(payload)
            {
                let name = event["event"].as_str().unwrap_or_default();
                let id = event["id"].as_u64().unwrap_or(0);
                record(&shared, &mut receipts, name, id, &event["data"]);
            }
            if opcode == 0x8 {
                shared.ended.fetch_add(1, Ordering::Relaxed);
                return Some(receipts);
            }
            at += frame_len(&buffer[at..]).unwrap_or(buffer.len() - at);
        }
        buffer.drain(..at);
    }
    Some(receipts)
}

/// The first complete (unmasked, server) frame of `buf`: its opcode and payload.
fn next_frame(buf: &[u8]) -> Option<(u8, &[u8])> {
    let (len, at) = header(buf)?;
    Some((buf[0] & 0x0F, buf.get(at..at + len)?))
}

/// The whole length of the first complete frame of `buf`.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let (len, at) = header(buf)?;
    (buf.len() >= at + len).then_some(at + len)
}

/// A server frame's payload length and where its payload starts.
fn header(buf: &[u8]) -> Option<(usize, usize)> {
    let len = match *buf.get(1)? & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    Some(len)
}

/// One SSE subscriber (reqwest, SSE framing parsed here): its receipts, or `None` if it
/// never connected.
async fn subscribe_sse(
    http: reqwest::Client,
    addr: std::net::SocketAddr,
    key: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Option<Vec<Receipt>> {
    let response = http
        .get(format!("http://{addr}/api/v1/sdk/stream"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .send()
        .await;
    let response = match response {
        Ok(r) if r.status().is_success() => r,
        _ => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut receipts = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = body.next() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        match chunk {
            Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
            Some(Err(_)) | None => {
                shared.ended.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        // Complete frames end with a blank line.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let (mut event, mut id, mut data) = ("message", 0u64, "");
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().unwrap_or(0);
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = v.trim_start();
                }
            }
            let data = serde_json::from_str(data).unwrap_or(Value::Null);
            record(&shared, &mut receipts, event, id, &data);
        }
    }
    Some(receipts)
}
