//! The store: every SQL query lives under this module. One query text serves SQLite and
//! PostgreSQL (sqlx's `Any` driver; `$N` parameters work on both), with the few dialect
//! differences isolated in `sqlite.rs` and `postgres.rs`.
//!
//! Writes go through [`Store::write`], which serializes them (the audit hash chain needs a
//! total order) and opens a transaction: a mutation, its audit entry and its revision
//! commit together or not at all.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod environments;
pub(crate) mod flags;
pub(crate) mod insights;
pub(crate) mod organizations;
pub(crate) mod pending;
pub(crate) mod postgres;
pub(crate) mod projects;
mod record;
pub(crate) mod release;
pub(crate) mod scopes;
pub(crate) mod segments;
pub(crate) mod sessions;
mod sqlite;
pub(crate) mod templates;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the store, classified for the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A unique constraint failed (duplicate key).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// The database cannot be reached; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A stored document could not be decoded: data written by a newer or broken version.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Duplicate(db.message().to_owned())
            }
            // Connection-class, operator-intervention (shutdown, terminated) and
            // too-many-connections errors: the database is away, not the request wrong.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57P") || c == "53300"
                }) =>
            {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e),
            _ => StoreError::Other(e),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// A database connection, as the layers above the store name it (they never name sqlx).
pub(crate) type Conn = AnyConnection;
pub(crate) use record::Record;

/// What a committed write transaction may have changed beyond rulesets (which the change
/// log tells).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Committed {
    /// API keys were created, revoked or deleted (directly or with an environment).
    pub(crate) keys: bool,
}

/// Runs after every committed write transaction, before the writer's response is sent
/// (the evaluation plane uses it to bring snapshots up to date: read-your-writes).
pub(crate) trait CommitHook: Send + Sync + std::fmt::Debug {
    fn committed<'a>(
        &'a self,
        store: &'a Store,
        what: Committed,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The database handle shared by all requests.
#[derive(Debug)]
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serializes writers within this process. Held across `.await` (the whole write
    /// transaction), hence tokio's mutex rather than std's.
    write_lock: Mutex<()>,
    hook: OnceLock<Arc<dyn CommitHook>>,
    url: String,
    /// Whether the last attempt to get a connection failed: the circuit is open, and the
    /// next attempts give up sooner (every one still tries, so recovery is automatic).
    outage: AtomicBool,
}

/// How long a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(800);
/// The same while the last attempt failed (the database is most likely still away).
const OUTAGE_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(250);

/// A write transaction holding the process-wide write lock until commit or drop.
#[derive(Debug)]
pub(crate) struct WriteTx<'a> {
    tx: Transaction<'static, Any>,
    store: &'a Store,
    _guard: MutexGuard<'a, ()>,
    committed: Committed,
}

impl WriteTx<'_> {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Notes that this transaction changes API keys: the key ring reloads after commit.
    pub(crate) fn keys_changed(&mut self) {
        self.committed.keys = true;
    }

    /// Commits, releases the write lock, then runs the commit hook.
    pub(crate) async fn commit(self) -> StoreResult<()> {
        let WriteTx {
            mut tx,
            store,
            _guard,
            committed,
        } = self;
        if store.backend == Backend::Postgres {
            // Other nodes learn of the commit through LISTEN/NOTIFY.
            postgres::notify_change(&mut tx).await?;
        }
        tx.commit().await?;
        drop(_guard);
        if let Some(hook) = store.hook.get() {
            hook.committed(store, committed).await;
        }
        Ok(())
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`), creating a SQLite file if missing.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Arc<Store>> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL: expected sqlite://PATH or postgres://…");
        };
        let (url, max) = match backend {
            Backend::Sqlite => (sqlite::connect_url(url), 8),
            Backend::Postgres => (url.to_owned(), 16),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => sqlite::prepare_connection(conn).await,
                        Backend::Postgres => Ok(()),
                    }
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to the {backend:?} database"))?;
        Ok(Arc::new(Store {
            pool,
            backend,
            write_lock: Mutex::new(()),
            hook: OnceLock::new(),
            url: url.clone(),
            outage: AtomicBool::new(false),
        }))
    }

    /// Installs the commit hook (once; later calls are ignored).
    pub(crate) fn set_commit_hook(&self, hook: Arc<dyn CommitHook>) {
        let _ = self.hook.set(hook);
    }

    /// The URL the store was opened with (for the PostgreSQL change listener).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations of this backend.
    pub(crate) async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => sqlite::MIGRATOR.run(&self.pool).await,
            Backend::Postgres => postgres::MIGRATOR.run(&self.pool).await,
        }
        .context("applying database migrations")
    }

    /// A connection for reads.
    pub(crate) async fn read(&self) -> StoreResult<sqlx::pool::PoolConnection<Any>> {
        self.connected(self.pool.acquire()).await
    }

    /// Starts a serialized write transaction.
    pub(crate) async fn write(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let mut tx = match self.backend {
            // Take SQLite's write lock at the start: a deferred transaction that reads first
            // fails with SQLITE_BUSY_SNAPSHOT (which no busy timeout resolves) when a write
            // outside this lock (a token's `last_used_at`) commits between its first read
            // and its first write.
            Backend::Sqlite => {
                self.connected(self.pool.begin_with("BEGIN IMMEDIATE"))
                    .await?
            }
            Backend::Postgres => self.connected(self.pool.begin()).await?,
        };
        if self.backend == Backend::Postgres {
            // Other nodes of a cluster write too: serialize across processes as well.
            postgres::lock_writes(&mut tx).await?;
        }
        Ok(WriteTx {
            tx,
            store: self,
            _guard: guard,
            committed: Committed::default(),
        })
    }

    /// Getting a connection (`attempt`) within the time allowed: whatever stops it, the
    /// database is unavailable to us. Notes the outage (and its end) for the next attempts.
    async fn connected<T>(
        &self,
        attempt: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        // The pool gives up after ACQUIRE_TIMEOUT by itself; only a known outage needs a
        // shorter wait of its own.
        let was_out = self.outage.load(Ordering::Relaxed);
        let result = if was_out {
            tokio::time::timeout(OUTAGE_ACQUIRE_TIMEOUT, attempt)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        } else {
            attempt.await
        };
        // Written only when it changes: every request passes here.
        if result.is_err() != was_out {
            self.outage.store(result.is_err(), Ordering::Relaxed);
            match &result {
                Err(e) => tracing::warn!(error = %e, "the database is unavailable"),
                Ok(_) => tracing::info!("the database is available again"),
            }
        }
        result.map_err(StoreError::Unavailable)
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> bool {
        match self.read().await {
            Ok(mut conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
            Err(_) => false,
        }
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// A boolean column, stored as the integer 0 or 1 on both backends (the `Any` driver cannot
/// decode SQLite booleans). Rows read it with `#[sqlx(try_from = "DbBool")]`; binds use
/// `i64::from(b)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbBool(pub(crate) bool);

impl sqlx::Type<Any> for DbBool {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Any> for DbBool {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <i64 as sqlx::Decode<'r, Any>>::decode(value).map(|i| DbBool(i != 0))
    }
}

impl From<DbBool> for bool {
    fn from(b: DbBool) -> bool {
        b.0
    }
}

// The clock lives below every layer; the store stamps rows with it.
pub use crate::clock::now_ms;
pub(crate) use crate::clock::now_rfc3339;

/// `column IN ($first, …)` for `n` values (`n` > 0): constant text, values bound.
pub(crate) fn in_list(column: &str, first: usize, n: usize) -> String {
    let params: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("{column} IN ({})", params.join(", "))
}

/// At most one row of `sql`, with `params` bound to `$1…` in order (every query that
/// finds a record by id or key).
pub(crate) async fn fetch_opt<T>(
    conn: &mut AnyConnection,
    sql: String,
    params: &[&str],
) -> StoreResult<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql));
    for p in params {
        query = query.bind(*p);
    }
    Ok(query.fetch_optional(conn).await?)
}

/// Runs `sql` (a statement without rows) with `params` bound to `$1…` in order; returns
/// how many rows it touched.
pub(crate) async fn execute(
    conn: &mut AnyConnection,
    sql: &'static str,
    params: &[&str],
) -> StoreResult<u64> {
    let mut query = sqlx::query(sql);
    for p in params {
        query = query.bind(*p);
    }
    Ok(query.execute(conn).await?.rows_affected())
}

/// A page of `SELECT {columns} {from_where} ORDER BY {order}` and the count of all its
/// rows, with `params` bound to `$1…` (and the window after them).
pub(crate) async fn fetch_page<T>(
    conn: &mut AnyConnection,
    (columns, from_where, order): (&str, &str, &str),
    params: &[String],
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<T>, i64)>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let count_sql = format!("SELECT COUNT(*) {from_where}");
    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for p in params {
        count = count.bind(p);
    }
    let total = count.fetch_one(&mut *conn).await?;
    let n = params.len();
    let sql = format!(
        "SELECT {columns} {from_where} ORDER BY {order} LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql));
    for p in params {
        query = query.bind(p);
    }
    let items = query.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    Ok((items, total))
}

/// The WHERE clause restricting `column` to `ids` (`None`: no restriction; empty: nothing),
/// binds `$1…$n`.
pub(crate) fn restrict_to(column: &str, ids: Option<&[String]>) -> String {
    match ids {
        None => String::new(),
        Some([]) => "WHERE 1 = 0".to_owned(),
        Some(ids) => format!("WHERE {}", in_list(column, 1, ids.len())),
    }
}

/// A stored time plus `ms` milliseconds, as stored (`None` if `at` does not parse).
pub(crate) fn rfc3339_plus_ms(at: &str, ms: i64) -> Option<String> {
    vexil_core::time::parse_rfc3339(at)
        .map(|t| vexil_core::time::format_rfc3339(t.saturating_add(ms)))
}

/// A new time-ordered UUID (v7) as text.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
