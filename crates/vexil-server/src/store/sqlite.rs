//! SQLite specifics: URL defaults and per-connection pragmas.

use sqlx::AnyConnection;
use sqlx::migrate::Migrator;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Adds `mode=rwc` (create the file if missing) unless the URL sets a mode.
pub(super) fn connect_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// WAL for concurrent readers, foreign keys enforced, and a busy timeout so that a reader
/// never fails just because a write is in progress.
pub(super) async fn prepare_connection(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA synchronous = NORMAL",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}
