//! What the load-test examples share: a scratch database (a fresh SQLite file, or a new
//! PostgreSQL database created through an admin URL) and its removal afterwards.

// Each example uses part of this module.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// Creates a scratch database for `backend` (`sqlite` or `postgres`); returns its URL and
/// what removes it. `label` names the files/databases (`vexil-<label>-…`).
pub(crate) async fn scratch_database(
    backend: &str,
    admin_url: &str,
    label: &str,
) -> anyhow::Result<(String, Cleanup)> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("vexil-{label}-{unique}.db"));
            Ok((
                format!("sqlite://{}", path.display()),
                Cleanup::Sqlite(path),
            ))
        }
        "postgres" => {
            let name = format!("vexil_{label}_{unique}");
            let mut conn = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            // Same server, the new database: replace the admin URL's path.
            let host_start = admin_url.find("://").map_or(0, |i| i + 3);
            let base = match admin_url[host_start..].find('/') {
                Some(i) => &admin_url[..host_start + i],
                None => admin_url,
            };
            Ok((
                format!("{base}/{name}"),
                Cleanup::Postgres(admin_url.to_owned(), name),
            ))
        }
        other => anyhow::bail!("unknown backend '{other}' (sqlite or postgres)"),
    }
}

/// The whole of a bounded load test: a runtime with `threads` workers, a scratch database
/// for `backend` (labelled `label`), `run` on its URL stopped after `limit_secs` (at least
/// 10), and the database removed whatever happened.
pub(crate) fn bounded<F, Fut>(
    (backend, admin_url, label): (&str, &str, &str),
    threads: usize,
    limit_secs: u64,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?
        .block_on(async {
            let (url, cleanup) = scratch_database(backend, admin_url, label).await?;
            let limit = Duration::from_secs(limit_secs.max(10));
            let result = match tokio::time::timeout(limit, run(url)).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "stopped after the time limit of {}s",
                    limit.as_secs()
                )),
            };
            cleanup.run().await;
            result
        })
}

/// Removes a scratch database.
pub(crate) enum Cleanup {
    Sqlite(std::path::PathBuf),
    Postgres(String, String),
}

impl Cleanup {
    pub(crate) async fn run(self) {
        match self {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres(admin, name) => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            }
        }
    }
}

/// Set on a `--serve` child that must not count evaluations.
const NO_COUNTS: &str = "VEXIL_LOADTEST_NO_COUNTS";

/// The instance token the load tests' servers are started with.
pub(crate) const TOKEN: &str = "vx_pat_load-test-token-0123456789abcdef";

/// The hidden `--serve` mode: the server alone in this process, on its own runtime (as
/// many workers as cores, like `vexil serve`), with flagd's gRPC evaluation on a port of its
/// own. Prints the bound addresses (HTTP, then gRPC) on one line of stdout and stops
/// gracefully when stdin reaches end of file (the parent closed it, or died).
pub(crate) fn serve(url: &str, log: bool) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    if log {
        vexil_server::init_logging("json");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut config = vexil_server::Config::for_tests(url);
            config.bootstrap_token = Some(secrecy::SecretString::from(TOKEN));
            // As `vexil serve` by default: insights flushed every 10 s, the release guard
            // checked every 5 s; counting switched off when the parent asks (the counting
            // benchmark's second server).
            config.insights_flush_ms = 10_000;
            config.release_guard_ms = 5_000;
            config.no_evaluation_counts = std::env::var_os(NO_COUNTS).is_some();
            config.grpc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            let app = vexil_server::App::build(&config).await?;
            let mut out = std::io::stdout();
            let grpc = app.grpc_addr().map_or(String::new(), |a| a.to_string());
            writeln!(out, "{} {grpc}", app.local_addr()?)?;
            out.flush()?;
            app.run(async {
                let _ = tokio::task::spawn_blocking(|| {
                    let mut sink = Vec::new();
                    let _ = std::io::stdin().read_to_end(&mut sink);
                })
                .await;
            })
            .await
        })
}

/// Where `needle` first stands in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The machine's load averages (1, 5, 15 minutes).
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// This process's soft limit on open files.
pub(crate) fn open_file_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A server started as a child process of the load test (`--serve` mode); killed if
/// dropped without a graceful stop.
pub(crate) struct ChildServer {
    pub(crate) addr: SocketAddr,
    /// flagd's gRPC evaluation.
    pub(crate) grpc: Option<SocketAddr>,
    pub(crate) pid: u32,
    /// Just before the process was spawned (cold-start timings count from here).
    pub(crate) spawned: Instant,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ChildServer {
    /// Starts this example again in `--serve` mode on `url` (`--server-log` with `log`)
    /// and waits for the address it prints.
    pub(crate) async fn start(url: &str, log: bool) -> anyhow::Result<ChildServer> {
        ChildServer::start_counting(url, log, true).await
    }

    /// As `start`; `counting: false` starts a server that does not count evaluations.
    pub(crate) async fn start_counting(
        url: &str,
        log: bool,
        counting: bool,
    ) -> anyhow::Result<ChildServer> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("--serve").arg(url);
        if counting {
            command.env_remove(NO_COUNTS);
        } else {
            command.env(NO_COUNTS, "1");
        }
        if log {
            command.arg("--server-log").stderr(Stdio::null());
        }
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        let mut server = ChildServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: None,
            pid,
            spawned,
            child,
            stdin,
        };
        // The first line is the address; an early exit gives end of file instead.
        let line = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                if let Some(out) = stdout {
                    let _ = std::io::BufReader::new(out).read_line(&mut line);
                }
                line
            }),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the server process did not start within 60 s"))??;
        let mut addresses = line.split_whitespace();
        server.grpc = addresses.nth(1).and_then(|a| a.parse().ok());
        server.addr = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| anyhow::anyhow!("the server process failed to start ({line:?})"))?;
        anyhow::ensure!(
            server.addr.ip().is_loopback(),
            "not a loopback address: {}",
            server.addr
        );
        Ok(server)
    }

    /// Graceful stop, bounded: a child that has not exited after 10 s is killed.
    pub(crate) async fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client of the management API with the instance token [`TOKEN`]: JSON in, JSON out,
/// anything but a success an error naming the path. Cloning shares the connection pool.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl Api {
    /// Through `client` (its redirect and timeout policy) to the server at `addr`.
    pub(crate) fn new(addr: SocketAddr, client: reqwest::Client) -> Api {
        Api {
            client,
            base: format!("http://{addr}"),
        }
    }

    /// The bootstrapped project and its production environment: `(project id, env id)`.
    pub(crate) async fn production(&self) -> anyhow::Result<(String, String)> {
        let project = self.get("/api/v1/projects").await?["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let envs = self
            .get(&format!("/api/v1/projects/{project}/environments"))
            .await?;
        let env = envs["items"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["key"] == "production"))
            .and_then(|e| e["id"].as_str())
            .ok_or_else(|| anyhow::anyhow!("no production environment"))?
            .to_owned();
        Ok((project, env))
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
        Ok(if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}
