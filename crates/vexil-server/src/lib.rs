//! `vexil-server`: the Vexil service — storage (SQLite or PostgreSQL), the management API
//! with its audit trail, and operations endpoints. [`App::build`] binds the listener and
//! prepares the store; [`App::run`] serves until the shutdown future completes.

pub mod audit;
pub mod bootstrap;
pub mod config;
pub mod http;
pub mod metrics;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use config::{Config, DatabaseConfig};
use http::AppState;
use store::Store;

/// A built application: database migrated and bootstrapped, listener bound.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to and migrates the store, runs first-start bootstrap, binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let store = Store::connect(&config.database.database_url).await?;
        store.migrate().await?;
        bootstrap::run(&store, config.bootstrap_token.as_ref()).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let state = AppState {
            store,
            metrics: Arc::default(),
        };
        Ok(App { listener, state })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn store(&self) -> Arc<Store> {
        self.state.store.clone()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let router = http::router(self.state);
        tracing::info!(address = %self.listener.local_addr()?, "vexil is listening");
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
        store.close().await;
        tracing::info!("vexil stopped");
        Ok(())
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
