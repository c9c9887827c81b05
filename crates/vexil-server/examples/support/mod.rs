//! What the load-test examples share: a scratch database (a fresh SQLite file, or a new
//! PostgreSQL database created through an admin URL) and its removal afterwards.

use sqlx::Connection as _;

/// Creates a scratch database for `backend` (`sqlite` or `postgres`); returns its URL and
/// what removes it. `label` names the files/databases (`vexil-<label>-…`).
pub(crate) async fn scratch_database(
    backend: &str,
    admin_url: &str,
    label: &str,
) -> anyhow::Result<(String, Cleanup)> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("vexil-{label}-{unique}.db"));
            Ok((
                format!("sqlite://{}", path.display()),
                Cleanup::Sqlite(path),
            ))
        }
        "postgres" => {
            let name = format!("vexil_{label}_{unique}");
            let mut conn = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            // Same server, the new database: replace the admin URL's path.
            let host_start = admin_url.find("://").map_or(0, |i| i + 3);
            let base = match admin_url[host_start..].find('/') {
                Some(i) => &admin_url[..host_start + i],
                None => admin_url,
            };
            Ok((
                format!("{base}/{name}"),
                Cleanup::Postgres(admin_url.to_owned(), name),
            ))
        }
        other => anyhow::bail!("unknown backend '{other}' (sqlite or postgres)"),
    }
}

/// Removes a scratch database.
pub(crate) enum Cleanup {
    Sqlite(std::path::PathBuf),
    Postgres(String, String),
}

impl Cleanup {
    pub(crate) async fn run(self) {
        match self {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres(admin, name) => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            }
        }
    }
}
