//! `TestApp`: a spawned server with a fresh database, an authenticated HTTP client, and
//! `both_backends!`, which runs a test body once per backend.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;

use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::Connection as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vexil_server::{App, Config};

/// The admin token every test server is bootstrapped with.
pub(crate) const TOKEN: &str = "vx_pat_test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) struct TestApp {
    pub addr: SocketAddr,
    /// The gRPC listener's address, when the configuration sets `grpc_listen`.
    pub grpc_addr: Option<SocketAddr>,
    /// Given to the next (re)start as `--grpc-default-key`.
    pub grpc_default_key: Option<String>,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub database_url: String,
    sqlite_path: Option<PathBuf>,
    postgres: Option<(String, String)>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    configure: fn(&mut Config),
}

fn skip_notice(reason: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Written past libtest's output capture so that the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** PostgreSQL tests SKIPPED: {reason} ***\n"
        );
    });
}

impl TestApp {
    /// A server on `backend`, or `None` when PostgreSQL is not configured (and not required).
    pub(crate) async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// As `spawn`, with `configure` adjusting the server's configuration.
    pub(crate) async fn spawn_with(
        backend: Backend,
        configure: fn(&mut Config),
    ) -> Option<TestApp> {
        // Server logs go through libtest's capture: shown only for failing tests.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn,vexil_server=info")
            .try_init();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let (database_url, sqlite_path, postgres) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("vexil-test-{unique}.db"));
                (format!("sqlite://{}", path.display()), Some(path), None)
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("VEXIL_TEST_DATABASE_URL") else {
                    if std::env::var("VEXIL_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                        panic!("VEXIL_REQUIRE_POSTGRES=1 but VEXIL_TEST_DATABASE_URL is not set");
                    }
                    skip_notice(
                        "set VEXIL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run them",
                    );
                    return None;
                };
                let name = format!("vexil_test_{unique}");
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to VEXIL_TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                // Same server, our database: replace the path of the admin URL.
                let host_start = admin_url.find("://").map_or(0, |i| i + 3);
                let base = match admin_url[host_start..].find('/') {
                    Some(i) => &admin_url[..host_start + i],
                    None => admin_url.as_str(),
                };
                let url = format!("{base}/{name}");
                (url, None, Some((admin_url, name)))
            }
        };
        let mut app = TestApp {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: None,
            grpc_default_key: None,
            client: reqwest::Client::new(),
            backend,
            database_url,
            sqlite_path,
            postgres,
            server: None,
            configure,
        };
        app.start().await;
        Some(app)
    }

    async fn start(&mut self) {
        let mut config = Config::for_tests(self.database_url.clone());
        config.bootstrap_token = Some(SecretString::from(TOKEN));
        (self.configure)(&mut config);
        config.grpc_default_key = self.grpc_default_key.clone().map(SecretString::from);
        let app = App::build(&config).await.expect("server builds");
        self.addr = app.local_addr().expect("bound address");
        self.grpc_addr = app.grpc_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        self.server = Some((tx, handle));
    }

    /// A second server on the same database (a cluster node); dropping it leaves the
    /// database to the first.
    pub(crate) async fn sibling(&self) -> TestApp {
        let mut node = TestApp {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: None,
            grpc_default_key: None,
            client: reqwest::Client::new(),
            backend: self.backend,
            database_url: self.database_url.clone(),
            sqlite_path: None,
            postgres: None,
            server: None,
            configure: self.configure,
        };
        node.start().await;
        node
    }

    /// PostgreSQL only: terminates every LISTEN connection (the nodes' change listeners).
    pub(crate) async fn kill_listeners(&self) {
        let (admin_url, name) = self.postgres.as_ref().expect("a PostgreSQL test app");
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("admin connection");
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND query ILIKE 'LISTEN%'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("terminate listeners");
    }

    /// Stops the server (gracefully) and starts a new one on the same database.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub(crate) async fn stop(&mut self) {
        if let Some((tx, handle)) = self.server.take() {
            let _ = tx.send(());
            let _ = handle.await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request without credentials.
    pub(crate) fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the admin token.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.anonymous(method, path).bearer_auth(TOKEN)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Response {
        self.request(Method::PUT, path)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("request sent")
    }

    /// The id of the bootstrapped `default` project.
    pub(crate) async fn default_project(&self) -> String {
        let page = json_ok(self.get("/api/v1/projects").await).await;
        page["items"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["key"] == "default"))
            .expect("default project")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// The id of environment `key` of a project.
    pub(crate) async fn environment(&self, project_id: &str, key: &str) -> String {
        let page = json_ok(
            self.get(&format!("/api/v1/projects/{project_id}/environments"))
                .await,
        )
        .await;
        page["items"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["key"] == key))
            .expect("environment")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Creates a boolean flag `key` in a project and returns its id.
    pub(crate) async fn create_flag(&self, project_id: &str, key: &str) -> String {
        let created = json_status(
            self.post(
                &format!("/api/v1/projects/{project_id}/feature-flags"),
                serde_json::json!({"key": key}),
            )
            .await,
            201,
        )
        .await;
        created["id"].as_str().expect("id").to_owned()
    }

    /// What an SDK with server key `key` sends: a metrics report of `flags` (`{"<flag>":
    /// {"<variation>": n}}`) ending now, then the tracked `events` in batches of 1000.
    pub(crate) async fn report_and_track(
        &self,
        key: &str,
        flags: serde_json::Value,
        events: &[serde_json::Value],
    ) {
        let now = utc_in(0);
        let report = serde_json::json!({"start": now, "end": now, "flags": flags});
        let r = self
            .anonymous(Method::POST, "/api/v1/sdk/metrics")
            .bearer_auth(key)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "the metrics report");
        for batch in events.chunks(1000) {
            let r = self
                .anonymous(Method::POST, "/api/v1/track")
                .bearer_auth(key)
                .json(&serde_json::json!({"events": batch}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "the tracked events");
        }
    }

    /// Creates an API key of `kind` (`server`, `client`, `mobile`) for an environment and
    /// returns its secret.
    pub(crate) async fn api_key(
        &self,
        project_id: &str,
        environment_id: &str,
        kind: &str,
    ) -> String {
        let body = serde_json::json!({"name": format!("{kind} key"), "type": kind, "environment_id": environment_id});
        let created = json_status(
            self.post(&format!("/api/v1/projects/{project_id}/api-keys"), body)
                .await,
            201,
        )
        .await;
        created["key"]
            .as_str()
            .expect("the secret is returned on creation")
            .to_owned()
    }

    /// PostgreSQL only: lets the server reach its database, or cuts it off (existing
    /// connections are terminated and new ones refused).
    pub(crate) async fn set_database_reachable(&self, reachable: bool) {
        let (admin_url, name) = self.postgres.as_ref().expect("a PostgreSQL test app");
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("admin connection");
        let allow = if reachable { "true" } else { "false" };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"
        )))
        .execute(&mut conn)
        .await
        .expect("alter database");
        if !reachable {
            let sql = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("terminate connections");
        }
    }

    /// Runs SQL directly against the test database (for tamper tests).
    pub(crate) async fn raw_sql(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let url = if self.backend == Backend::Sqlite {
            format!("{}?mode=rw", self.database_url)
        } else {
            self.database_url.clone()
        };
        let mut conn = sqlx::AnyConnection::connect(&url)
            .await
            .expect("raw connection");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect("raw sql runs");
        let _ = conn.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((tx, _)) = self.server.take() {
            let _ = tx.send(());
        }
        if let Some(path) = &self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside async context: use a thread with its own small runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Asserts a status and returns the JSON body.
pub(crate) async fn json_status(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    }
}

pub(crate) async fn json_ok(response: Response) -> Value {
    json_status(response, 200).await
}

/// Asserts the API's error shape with the given status and code; returns the error object.
pub(crate) async fn error_of(response: Response, status: u16, code: &str) -> Value {
    let body = json_status(response, status).await;
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    assert!(body["error"]["message"].is_string(), "error body: {body}");
    body["error"].clone()
}

/// An RFC 3339 UTC time `ms` milliseconds from now (negative: ago).
pub(crate) fn utc_in(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis();
    vexil_core::time::format_rfc3339(i64::try_from(now).expect("a clock before 2262") + ms)
}

/// Runs each test body once on SQLite and once on PostgreSQL, with `$app` a fresh `TestApp`.
#[macro_export]
macro_rules! both_backends {
    ($( $(#[$meta:meta])* async fn $name:ident($app:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    #[allow(unused_mut)]
                    let Some(mut $app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await else { return };
                    $body
                }

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    #[allow(unused_mut)]
                    let Some(mut $app) = $crate::TestApp::spawn($crate::Backend::Postgres).await else { return };
                    $body
                }
            }
        )*
    };
}
