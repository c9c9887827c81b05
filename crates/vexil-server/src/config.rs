//! The server's configuration: one typed struct, from flags or `VEXIL_*` variables.

use std::net::SocketAddr;

use clap::Args;
use secrecy::SecretString;

/// Options of `vexil serve` (and the database options of `vexil migrate`).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "VEXIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// An admin API token to create (idempotently) at start, for automation.
    /// Read from the environment only, so that it never shows in a process list.
    #[arg(skip = std::env::var("VEXIL_BOOTSTRAP_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from))]
    pub bootstrap_token: Option<SecretString>,
    /// Evaluation requests per second allowed per API key (bursts of twice that); 0: no limit.
    #[arg(long, env = "VEXIL_KEY_RATE_LIMIT", default_value_t = 10_000)]
    pub key_rate_limit: u32,
    /// Log format: `json` (one object per line) or `pretty`.
    #[arg(long, env = "VEXIL_LOG_FORMAT", default_value = "json", value_parser = ["json", "pretty"])]
    pub log_format: String,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://…`.
    #[arg(long, env = "VEXIL_DATABASE_URL", default_value = "sqlite://vexil.db")]
    pub database_url: String,
}

impl Config {
    /// A configuration for tests and embedding: given database, port 0, no bootstrap token.
    pub fn for_tests(database_url: impl Into<String>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig {
                database_url: database_url.into(),
            },
            // Tests and load tests measure the server, not the limiter; tests of the
            // limiter set it explicitly.
            key_rate_limit: 0,
            bootstrap_token: None,
            log_format: "json".into(),
        }
    }
}
