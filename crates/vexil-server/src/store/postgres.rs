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
