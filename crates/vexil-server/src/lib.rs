//! `vexil-server`: the Vexil service — storage (SQLite or PostgreSQL), the management API
//! with its audit trail, and operations endpoints. [`App::build`] binds the listener and
//! prepares the store; [`App::run`] serves until the shutdown future completes.

mod access;
mod audit;
mod bootstrap;
mod clock;
mod config;
pub mod credentials;
mod flag_metadata;
mod grpc;
pub mod http;
mod insights;
mod jobs;
mod keys;
mod login_limit;
mod manage;
mod metrics;
mod offline;
pub mod operator;
mod schemas;
mod snapshots;
pub mod store;
pub mod ui;
mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use access::Role;
pub use config::{Config, DatabaseConfig, SECRETS_HELP};
use http::AppState;
use store::Store;

/// How long the gRPC server may take to drain at shutdown before its connections are
/// dropped.
const GRPC_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A built application: database migrated and bootstrapped, listener bound.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    /// flagd's evaluation protocol over gRPC (`--grpc-listen`), bound at build.
    grpc: Option<(TcpListener, grpc::Grpc)>,
    limits: http::serve::Limits,
    guard_every: std::time::Duration,
    retry: manage::webhooks::Retry,
    /// Offline mode: the file, its environment, the default project and the scratch
    /// database file to remove at the end.
    offline: Option<Offline>,
    state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Connects to and migrates the store, runs first-start bootstrap, binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        // Offline: a scratch database of this process, with an instance token nobody knows
        // (so that no admin password is printed), filled from the file.
        let scratch = config.offline.as_ref().map(|_| {
            std::env::temp_dir().join(format!(
                "vexil-offline-{}.db",
                uuid::Uuid::new_v4().simple()
            ))
        });
        let database_url = match &scratch {
            Some(path) => format!("sqlite://{}", path.display()),
            None => config.database.database_url.clone(),
        };
        let store = Store::connect(&database_url).await?;
        store.migrate().await?;
        let bootstrap_token = match &scratch {
            Some(_) => Some(secrecy::SecretString::from(credentials::random_secret(
                "vx_pat_offline_",
            ))),
            None => config.bootstrap_token.clone(),
        };
        bootstrap::run(&store, bootstrap_token.as_ref(), &config.admin_email).await?;
        let offline = match (&config.offline, scratch) {
            (Some(file), Some(scratch)) => {
                let (organization_id, project_id, environment_id) =
                    offline_place(&store, &config.offline_environment).await?;
                let place = offline::Place {
                    organization_id,
                    project_id,
                };
                let loaded = offline::load(&store, &place, file, &config.offline_environment).await;
                let changes = match loaded {
                    Ok(changes) => changes,
                    Err(e) => {
                        // Nothing to keep: the scratch database goes with the failed start.
                        store.close().await;
                        remove_database_file(&scratch);
                        return Err(e);
                    }
                };
                tracing::info!(file = %file.display(), changes, environment = %config.offline_environment,
                    "offline: serving the file to any API key");
                Some(Offline {
                    file: file.clone(),
                    environment: config.offline_environment.clone(),
                    place,
                    environment_id,
                    scratch,
                })
            }
            _ => None,
        };
        let rate_limit = (config.key_rate_limit > 0).then(|| keys::RateLimit {
            per_second: f64::from(config.key_rate_limit),
        });
        let plane = Arc::new(EvalPlane {
            snapshots: Arc::new(snapshots::Snapshots::new(!config.no_evaluation_counts)),
            keys: Arc::new(keys::KeyRing::new(rate_limit)),
        });
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        plane
            .snapshots
            .sync(&store)
            .await
            .context("compiling the initial snapshots")?;
        plane.keys.sync(&store).await.context("loading API keys")?;
        if let Some(o) = &offline {
            plane.keys.open_to_any_key(&o.environment_id);
        }
        store.set_commit_hook(plane.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let bound = listener.local_addr()?;
        let grpc = match config.grpc_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen for gRPC on {address}"))?;
                let service = grpc::Grpc::new(
                    plane.snapshots.clone(),
                    plane.keys.clone(),
                    config.grpc_default_key.clone(),
                    shutdown.subscribe(),
                );
                Some((listener, service))
            }
            None => None,
        };
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() {
                format!("localhost:{}", bound.port())
            } else {
                bound.to_string()
            };
            format!("http://{host}")
        });
        let webhooks = Arc::new(
            webhook::Sender::new(config.webhook_allow_private, &public_url)
                .context("building the webhook client")?,
        );
        let state = AppState {
            store,
            webhooks,
            metrics: Arc::default(),
            snapshots: plane.snapshots.clone(),
            keys: plane.keys.clone(),
            insights: Arc::new(insights::Insights::new(insights::Settings::from_config(
                config,
            ))),
            shutdown: http::stream::ShutdownSignal::new(shutdown_rx),
            auth: Arc::new(http::auth::AuthSettings::from_config(config)?),
            trusted_proxies: http::extract::TrustedProxies::parse(
                config.trusted_proxies.as_deref().unwrap_or_default(),
            )?,
            offline: offline.is_some(),
        };
        Ok(App {
            listener,
            grpc,
            limits: http::serve::Limits::from_config(config),
            guard_every: std::time::Duration::from_millis(config.release_guard_ms),
            retry: manage::webhooks::Retry {
                base_ms: i64::try_from(config.webhook_retry_base_ms).unwrap_or(5_000),
                give_up_after_ms: i64::try_from(config.webhook_retry_for_secs)
                    .unwrap_or(86_400)
                    .saturating_mul(1000),
            },
            offline,
            state,
            shutdown,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The bound address of the gRPC listener, when `--grpc-listen` is set.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let mut all = jobs::upkeep(
            &store,
            &self.state.snapshots,
            &self.state.keys,
            self.state.auth.session_idle,
        );
        all.extend(jobs::release(
            &store,
            &self.state.snapshots,
            &self.state.insights,
            self.guard_every,
        ));
        all.extend(jobs::webhooks(&store, &self.state.webhooks, self.retry));
        all.extend(jobs::insights(
            &store,
            &self.state.snapshots,
            &self.state.insights,
        ));
        let mut jobs = jobs::Runner::start(all);
        let watcher = self.offline.as_ref().map(|o| {
            tokio::spawn(offline::watch(
                store.clone(),
                o.place.clone(),
                o.file.clone(),
                o.environment.clone(),
            ))
        });
        let listener = (store.backend() == store::Backend::Postgres).then(|| {
            let (store, snapshots, keys) = (
                store.clone(),
                self.state.snapshots.clone(),
                self.state.keys.clone(),
            );
            tokio::spawn(async move {
                let url = store.url().to_owned();
                store::postgres::listen_for_changes(&url, || async {
                    if let Err(e) = snapshots.sync(&store).await {
                        tracing::warn!(error = %e, "snapshot update after a cluster change failed");
                    }
                    if let Err(e) = keys.sync(&store).await {
                        tracing::warn!(error = %e, "key reload after a cluster change failed");
                    }
                })
                .await;
            })
        });
        let (snapshots, insights) = (self.state.snapshots.clone(), self.state.insights.clone());
        let sockets = self.state.shutdown.clone();
        let router = http::router(self.state);
        tracing::info!(address = %self.listener.local_addr()?, "vexil is listening");
        // Long-lived streams end when the signal flips, so that draining can finish.
        let signal = self.shutdown;
        let stopped = signal.subscribe();
        tokio::spawn(async move {
            shutdown.await;
            let _ = signal.send(true);
        });
        let grpc = self.grpc.map(|(listener, service)| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "gRPC (flagd evaluation) is listening");
            }
            tokio::spawn(grpc::serve(listener, service, self.limits))
        });
        http::serve::serve(self.listener, router, self.limits, stopped).await;
        // The same signal stopped the gRPC server: its calls drain before the store closes,
        // within a bound (a connection that never finishes its handshake or its request
        // would hold the drain forever), so that jobs still stop and insights flush.
        if let Some(mut grpc) = grpc {
            match tokio::time::timeout(GRPC_DRAIN, &mut grpc).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the gRPC server task failed"),
                Err(_) => {
                    tracing::warn!(
                        drain_s = GRPC_DRAIN.as_secs(),
                        "gRPC connections were still open after the drain; they are dropped"
                    );
                    grpc.abort();
                }
            }
        }
        // WebSocket subscribers got their close frame when the signal flipped.
        sockets
            .sockets_closed(std::time::Duration::from_secs(5))
            .await;
        jobs.stop();
        // What was counted since the last flush is written before the store closes.
        if let Err(e) = jobs::flush_insights(&store, &snapshots, &insights).await {
            tracing::warn!(error = format!("{e:#}"), "the last insights flush failed");
        }
        if let Some(listener) = listener {
            listener.abort();
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        store.close().await;
        if let Some(o) = &self.offline {
            remove_database_file(&o.scratch);
        }
        tracing::info!("vexil stopped");
        Ok(())
    }
}

/// What offline mode serves.
#[derive(Debug)]
struct Offline {
    file: std::path::PathBuf,
    environment: String,
    place: offline::Place,
    environment_id: String,
    scratch: std::path::PathBuf,
}

/// Removes a SQLite database file and its write-ahead log (offline mode's scratch database).
fn remove_database_file(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The default organization, project and environment `key`, where offline mode serves.
async fn offline_place(store: &Store, key: &str) -> anyhow::Result<(String, String, String)> {
    let found = manage::projects::default_environment(store, key).await?;
    found
        .with_context(|| format!("offline: no environment '{key}' (use development or production)"))
}

/// The evaluation plane's in-memory state, kept current after every committed write.
#[derive(Debug, Default)]
struct EvalPlane {
    snapshots: Arc<snapshots::Snapshots>,
    keys: Arc<keys::KeyRing>,
}

impl store::CommitHook for EvalPlane {
    fn committed<'a>(
        &'a self,
        store: &'a Store,
        what: store::Committed,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Err(e) = self.snapshots.sync(store).await {
                tracing::warn!(error = %e, "snapshot update after commit failed; the poll will retry");
            }
            // Only writes that changed keys reload the ring (the poll catches the rest).
            if what.keys
                && let Err(e) = self.keys.sync(store).await
            {
                tracing::warn!(error = %e, "API key reload after commit failed; the poll will retry");
            }
        })
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; draining");
}

/// Installs the JSON (or human-readable) log subscriber; `RUST_LOG` filters (default info).
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "pretty" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
