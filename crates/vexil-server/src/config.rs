//! The server's configuration: one typed struct, from flags or `VEXIL_*` variables.

use std::net::SocketAddr;

use clap::Args;
use secrecy::SecretString;

/// Settings read from the environment only (secrets never go on a command line, where
/// any user of the machine can read them), listed under `vexil serve --help`.
pub const SECRETS_HELP: &str = "\
Secrets (environment only):
  VEXIL_BOOTSTRAP_TOKEN      An instance admin token to create at start (idempotently), for
                             automation; at least 32 characters (e.g. `openssl rand -hex 32`)
  VEXIL_OIDC_CLIENT_SECRET   The OIDC client secret, with --oidc-issuer and --oidc-client-id
  VEXIL_METRICS_TOKEN        When set, GET /metrics needs `Authorization: Bearer <it>`";

/// The shortest accepted `VEXIL_BOOTSTRAP_TOKEN`: it is an owner everywhere.
pub(crate) const MIN_BOOTSTRAP_TOKEN_LEN: usize = 32;

/// Options of `vexil serve` (and the database options of `vexil migrate`).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "VEXIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// An admin API token to create (idempotently) at start, for automation; at least
    /// 32 characters. Read from the environment only, so that it
    /// never shows in a process list.
    #[arg(skip = std::env::var("VEXIL_BOOTSTRAP_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from))]
    pub bootstrap_token: Option<SecretString>,
    /// Evaluation requests per second allowed per API key (bursts of twice that); 0: no limit.
    #[arg(long, env = "VEXIL_KEY_RATE_LIMIT", default_value_t = 10_000)]
    pub key_rate_limit: u32,
    /// A browser session ends after this many seconds without a request.
    #[arg(long, env = "VEXIL_SESSION_IDLE_TIMEOUT", default_value_t = 8 * 3600)]
    pub session_idle_timeout: u64,
    /// A browser session ends this many seconds after login, however active.
    #[arg(long, env = "VEXIL_SESSION_LIFETIME", default_value_t = 7 * 24 * 3600)]
    pub session_lifetime: u64,
    /// Mark the session cookie `Secure` (serve over HTTPS, e.g. behind a TLS proxy).
    #[arg(long, env = "VEXIL_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Email of the admin user created on first start (when no VEXIL_BOOTSTRAP_TOKEN is set).
    #[arg(long, env = "VEXIL_ADMIN_EMAIL", default_value = "admin@localhost")]
    pub admin_email: String,
    /// OpenID Connect issuer URL for single sign-on (e.g. https://login.example.com/realms/x);
    /// with `--oidc-client-id` and VEXIL_OIDC_CLIENT_SECRET it enables `/api/v1/auth/oidc/login`.
    #[arg(long, env = "VEXIL_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id registered with the OIDC provider.
    #[arg(long, env = "VEXIL_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret (environment only, never on the command line).
    #[arg(skip = std::env::var("VEXIL_OIDC_CLIENT_SECRET").ok().filter(|t| !t.is_empty()).map(SecretString::from))]
    pub oidc_client_secret: Option<SecretString>,
    /// The callback URL registered with the provider (default: this server's
    /// `/api/v1/auth/oidc/callback` at the request's Host, over http unless --secure-cookies).
    #[arg(long, env = "VEXIL_OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
    /// Key of the organization that users new to Vexil join on their first sign-on.
    #[arg(long, env = "VEXIL_OIDC_ORGANIZATION")]
    pub oidc_organization: Option<String>,
    /// Their role there.
    #[arg(long, env = "VEXIL_OIDC_ROLE", default_value = "viewer")]
    pub oidc_role: String,
    /// Reverse proxies whose X-Forwarded-For is believed, e.g. `10.0.0.0/8,127.0.0.1`; the
    /// client address (login limits, audit entries) is otherwise the TCP peer.
    #[arg(long, env = "VEXIL_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (environment only).
    #[arg(skip = std::env::var("VEXIL_METRICS_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from))]
    pub metrics_token: Option<SecretString>,
    /// Most simultaneous connections (SSE subscribers included); further ones wait to be
    /// accepted. 0: derived from the process's open-file limit, less room for the database
    /// pool and files.
    #[arg(long, env = "VEXIL_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers before it is closed.
    #[arg(long, env = "VEXIL_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Also serve flagd's evaluation protocol over gRPC (plain HTTP/2) on this address, for
    /// flagd's OpenFeature providers in RPC mode; off by default.
    #[arg(long, env = "VEXIL_GRPC_LISTEN", value_name = "ADDR")]
    pub grpc_listen: Option<SocketAddr>,
    /// The API key of gRPC callers that send no `authorization` metadata (flagd's providers
    /// send none by default): they evaluate in its environment, with its kind. Checked at
    /// every call, so revoking the key stops them. Prefer the environment variable: a
    /// command line is visible to every user of the machine.
    #[arg(long, env = "VEXIL_GRPC_DEFAULT_KEY", value_name = "KEY", hide_env_values = true,
        value_parser = secret)]
    pub grpc_default_key: Option<SecretString>,
    /// Do not count the evaluations this server serves (insights then show only what SDKs
    /// report); for measuring what counting costs.
    #[arg(long, env = "VEXIL_NO_EVALUATION_COUNTS")]
    pub no_evaluation_counts: bool,
    /// Days hour-resolution insights are kept (minute resolution is kept 48 hours).
    #[arg(long, env = "VEXIL_INSIGHTS_RETENTION_DAYS", default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub insights_retention_days: u32,
    /// Milliseconds between writes of counted evaluations and tracked events.
    #[arg(long, env = "VEXIL_INSIGHTS_FLUSH_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub insights_flush_ms: u64,
    /// A flag evaluated in no environment for this many days is stale.
    #[arg(long, env = "VEXIL_STALE_UNUSED_DAYS", default_value_t = 30)]
    pub stale_unused_days: u32,
    /// A flag that served one variation to every evaluation in every environment for this
    /// many days is stale.
    #[arg(long, env = "VEXIL_STALE_SINGLE_VARIATION_DAYS", default_value_t = 14)]
    pub stale_single_variation_days: u32,
    /// Milliseconds between two checks of the release guard (advancing release plans and
    /// rolling them back on errors); one node of a cluster checks at a time.
    #[arg(long, env = "VEXIL_RELEASE_GUARD_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(100..=10_000))]
    pub release_guard_ms: u64,
    /// The console's address as people reach it (`https://flags.example.com`), for the
    /// links in webhook messages; default `http://` and the listen address.
    #[arg(long, env = "VEXIL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let webhooks reach loopback, private and link-local addresses (refused by default,
    /// so that a webhook cannot be used to probe the server's own network).
    #[arg(long, env = "VEXIL_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Milliseconds before a failed webhook delivery is first retried; each retry waits
    /// twice as long as the last (at most an hour).
    #[arg(long, env = "VEXIL_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub webhook_retry_base_ms: u64,
    /// Seconds a webhook delivery is retried before the webhook is disabled (24 h).
    #[arg(long, env = "VEXIL_WEBHOOK_RETRY_FOR_SECS", default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub webhook_retry_for_secs: u64,
    /// Local development without a database: serve the evaluation plane from this file (an
    /// export document in YAML or JSON, or a ruleset JSON) for any API key, watching it for
    /// changes. The management API and the console are off.
    #[arg(long, env = "VEXIL_OFFLINE", value_name = "FILE")]
    pub offline: Option<std::path::PathBuf>,
    /// With `--offline`: the environment every key evaluates in.
    #[arg(long, env = "VEXIL_OFFLINE_ENVIRONMENT", default_value = "production")]
    pub offline_environment: String,
    /// A `temporary` flag older than this many days is stale.
    #[arg(long, env = "VEXIL_STALE_TEMPORARY_DAYS", default_value_t = 40)]
    pub stale_temporary_days: u32,
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

/// A secret option's value, which clap otherwise could not hold as a `SecretString`.
fn secret(value: &str) -> Result<SecretString, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value))
}

impl Config {
    /// A configuration for tests and embedding: given database, port 0, no bootstrap token,
    /// insights flushed and the release guard checked every 250 ms.
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
            session_idle_timeout: 8 * 3600,
            session_lifetime: 7 * 24 * 3600,
            secure_cookies: false,
            admin_email: "admin@localhost".into(),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_redirect_url: None,
            oidc_organization: None,
            oidc_role: "viewer".into(),
            trusted_proxies: None,
            metrics_token: None,
            max_connections: 0,
            header_read_timeout: 10,
            grpc_listen: None,
            grpc_default_key: None,
            no_evaluation_counts: false,
            insights_retention_days: 90,
            // Tests read insights soon after counting.
            insights_flush_ms: 250,
            // Tests watch release plans move.
            release_guard_ms: 250,
            stale_unused_days: 30,
            stale_single_variation_days: 14,
            stale_temporary_days: 40,
            public_url: None,
            offline: None,
            offline_environment: "production".into(),
            // Tests deliver to receivers on loopback.
            webhook_allow_private: true,
            webhook_retry_base_ms: 100,
            webhook_retry_for_secs: 86_400,
            log_format: "json".into(),
        }
    }
}
