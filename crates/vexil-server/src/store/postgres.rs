//! PostgreSQL specifics.

use sqlx::AnyConnection;
use sqlx::migrate::Migrator;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Arbitrary, fixed key of the advisory lock that serializes writers across cluster nodes.
const WRITE_LOCK_KEY: i64 = 0x5645_5849_4c00; // "VEXIL\0"

/// Takes the transaction-scoped write lock (released at commit or rollback).
pub(super) async fn lock_writes(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // Selecting a constant keeps the void result out of the Any driver's row decoding.
    sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// The channel every node listens on; a write transaction notifies it (delivered at commit).
pub(crate) const CHANGES_CHANNEL: &str = "vexil_changes";

/// Queues a notification to other nodes, sent by PostgreSQL when the transaction commits.
pub(super) async fn notify_change(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM pg_notify('vexil_changes', '')")
        .execute(conn)
        .await?;
    Ok(())
}

/// Listens for other nodes' commits and calls `on_change` for each (and once after every
/// reconnection, since notifications sent while disconnected are lost). Runs until the
/// task is dropped; connection errors are retried with a pause.
pub(crate) async fn listen_for_changes<F, Fut>(url: &str, on_change: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cluster changes; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        // Changes may have happened before LISTEN took effect: catch up once.
        on_change().await;
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => on_change().await,
                // The connection dropped (the listener reconnects on the next call): anything
                // sent meanwhile is lost, so resynchronise.
                Ok(None) => on_change().await,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster change listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
