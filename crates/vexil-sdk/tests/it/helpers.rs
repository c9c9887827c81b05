//! `TestServer`: the real Vexil server spawned in process on a temporary SQLite file, with
//! the management calls the tests need; `fast_client`: an SDK client with test-sized
//! timeouts; `eventually`: polling with a deadline instead of fixed sleeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vexil_sdk::{Client, ClientBuilder};
use vexil_server::{App, Config};

/// The admin token the test servers are bootstrapped with.
pub(crate) const TOKEN: &str = "vx_pat_sdk-test-admin-token-0123456789";

/// Generous deadline for anything but the latency requirement (slow CI machines).
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub project: String,
    /// The `production` environment.
    pub env: String,
    http: reqwest::Client,
    sqlite_path: PathBuf,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn,vexil_sdk=debug")
            .try_init();
        let path = std::env::temp_dir().join(format!(
            "vexil-sdk-test-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let mut server = TestServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            project: String::new(),
            env: String::new(),
            http: reqwest::Client::new(),
            sqlite_path: path,
            running: None,
        };
        server.launch().await;
        let projects = server.get("/api/v1/projects").await;
        server.project = projects["items"][0]["id"]
            .as_str()
            .expect("default project")
            .to_owned();
        let envs = server
            .get(&format!("/api/v1/projects/{}/environments", server.project))
            .await;
        server.env = envs["items"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["key"] == "production"))
            .and_then(|e| e["id"].as_str())
            .expect("production environment")
            .to_owned();
        server
    }

    /// Starts the server on `self.addr` (port 0 the first time, then the same port).
    async fn launch(&mut self) {
        let mut config = Config::for_tests(format!("sqlite://{}", self.sqlite_path.display()));
        config.bootstrap_token = Some(SecretString::from(TOKEN));
        config.listen = self.addr;
        // The port was just released; rebinding may need a moment on a busy machine.
        let deadline = Instant::now() + DEADLINE;
        let app = loop {
            match App::build(&config).await {
                Ok(app) => break app,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "server not started yet; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("server does not start: {e:#}"),
            }
        };
        self.addr = app.local_addr().expect("bound address");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        self.running = Some((tx, handle));
    }

    /// Stops the server gracefully (its streams end); the database stays.
    pub(crate) async fn stop(&mut self) {
        if let Some((tx, handle)) = self.running.take() {
            let _ = tx.send(());
            let _ = handle.await;
        }
    }

    /// Starts the server again on the same address and database.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// A server API key for the production environment.
    pub(crate) async fn server_key(&self) -> String {
        self.api_key("server").await
    }

    pub(crate) async fn api_key(&self, kind: &str) -> String {
        let body =
            json!({"name": format!("sdk test {kind}"), "type": kind, "environment_id": self.env});
        let created = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{}/api-keys", self.project),
                Some(body),
            )
            .await;
        created["key"].as_str().expect("key secret").to_owned()
    }

    /// Creates a flag (`definition`: type, variations…; a boolean on/off when empty) and
    /// sets its production configuration; returns the flag id.
    pub(crate) async fn create_flag(&self, key: &str, definition: Value, config: Value) -> String {
        let mut body = json!({"key": key, "name": key});
        if let (Some(b), Value::Object(d)) = (body.as_object_mut(), definition) {
            b.extend(d);
        }
        let created = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{}/feature-flags", self.project),
                Some(body),
            )
            .await;
        let id = created["id"].as_str().expect("flag id").to_owned();
        if config.as_object().is_some_and(|c| !c.is_empty()) {
            self.configure(&id, config).await;
        }
        id
    }

    /// Changes a flag's production configuration (a merge patch).
    pub(crate) async fn configure(&self, flag_id: &str, patch: Value) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/v1/flags/{flag_id}/environments/{}/config", self.env),
            Some(patch),
        )
        .await;
    }

    /// Enables or disables several flags in production in one transaction (one update,
    /// so one group of stream events sharing an id).
    pub(crate) async fn bulk(&self, action: &str, flag_ids: &[&str]) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{}/feature-flags/bulk", self.project),
            Some(json!({"action": action, "flag_ids": flag_ids, "environment_id": self.env})),
        )
        .await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((tx, _)) = self.running.take() {
            let _ = tx.send(());
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.sqlite_path.display()));
        }
    }
}

/// A client builder with test-sized retry timings (tens of milliseconds, not seconds).
pub(crate) fn fast_client(url: &str, key: &str) -> ClientBuilder {
    Client::builder(url, key)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .backoff_reset_after(Duration::from_millis(200))
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .stream_read_timeout(Duration::from_secs(20))
}

/// Polls `check` every 5 ms until it holds; panics with `what` after [`DEADLINE`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An address nothing listens on.
pub(crate) fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
