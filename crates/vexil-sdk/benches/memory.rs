//! Memory held by a client with 10,000 flags, measured with a counting global allocator
//! (bytes allocated and not yet freed): an offline client bootstrapped from the ruleset, and
//! an online client that fetched it from a minimal local server and holds an open stream.
//! Run with `cargo bench -p vexil-sdk --bench memory`.
#![allow(unsafe_code)] // A GlobalAlloc implementation is unsafe by definition.
#![allow(clippy::print_stdout)] // A report is this program's output.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vexil_sdk::Client;

#[path = "../../vexil-core/benches/fixtures/mod.rs"]
mod fixtures;

static HELD: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// plain atomic, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn held() -> isize {
    HELD.load(Ordering::Relaxed)
}

fn mib(bytes: isize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A server that answers `/api/v1/sdk/config` with `ruleset` and keeps `/api/v1/sdk/stream`
/// open with nothing to say: just enough for a client to load and stay connected.
async fn serve(ruleset: Arc<[u8]>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let ruleset = ruleset.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let Ok(n) = socket.read(&mut head).await else {
                    return;
                };
                if head[..n].starts_with(b"GET /api/v1/sdk/stream") {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
                        .await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } else {
                    let header = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\netag: \"1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        ruleset.len()
                    );
                    let _ = socket.write_all(header.as_bytes()).await;
                    let _ = socket.write_all(&ruleset).await;
                }
            });
        }
    });
    addr
}

fn main() {
    const FLAGS: usize = 10_000;
    let json = fixtures::ruleset_value(FLAGS - fixtures::BASE_FLAGS).to_string();
    println!(
        "ruleset: {FLAGS} flags (the core benchmark mix: no rules, 5 rules, 50/50 rollout, 3 targets), {} of JSON",
        mib(json.len() as isize)
    );

    // A first compile, not counted: lazily initialised state of the engine's dependencies
    // (e.g. regex caches) is not part of any one snapshot.
    drop(fixtures::snapshot(FLAGS - fixtures::BASE_FLAGS));
    let before = held();
    let snapshot = fixtures::snapshot(FLAGS - fixtures::BASE_FLAGS);
    let engine = held() - before;
    println!(
        "vexil-core snapshot alone:         {} ({} bytes/flag)",
        mib(engine),
        engine / FLAGS as isize
    );
    drop(snapshot);

    let before = held();
    let client = Client::offline_builder()
        .bootstrap_json(json.clone())
        .build()
        .expect("valid ruleset");
    let offline = held() - before;
    assert_eq!(client.flag_keys().len(), FLAGS);
    println!(
        "offline client:                    {} ({} bytes/flag)",
        mib(offline),
        offline / FLAGS as isize
    );
    drop(client);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let body: Arc<[u8]> = Arc::from(json.as_bytes());
        let addr = serve(body).await;
        // Let the runtime and the server settle, then count only what the client adds.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = held();
        let client = Client::builder(format!("http://{addr}"), "vx_srv_memory")
            .build()
            .expect("client");
        client
            .wait_for_initialization(Duration::from_secs(30))
            .await
            .expect("initialized");
        // Wait until the stream is open, and any fetch buffers are gone.
        while client.status().reason != "streaming" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let online = held() - before;
        println!(
            "online client (fetched, streaming): {} ({} bytes/flag)",
            mib(online),
            online / FLAGS as isize
        );
        client.close().await;
    });
}
