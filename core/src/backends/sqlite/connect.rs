//! Connecting to the database file: the writer's connection and the reader
//! pool, the embedded migrations, and the mapping of driver errors.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};

use super::config::SqliteConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::time::now_ms;

/// Embedded migrations: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial schema",
    include_str!("migrations/0001_initial.sql"),
)];

/// Open (creating if needed) the database file, apply the migrations on the
/// writer's connection, then open the reader pool.
pub(super) async fn connect(config: &SqliteConfig) -> Result<(SqliteConnection, SqlitePool)> {
    let path = &config.path;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(config.synchronous)
        .busy_timeout(config.busy_timeout)
        .foreign_keys(false)
        .statement_cache_capacity(512);
    let mut conn = options.connect().await.map_err(|e| open_err(path, e))?;
    migrate(&mut conn).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(config.read_pool_size)
        .min_connections(0)
        // A local file needs no liveness ping before each read.
        .test_before_acquire(false)
        .acquire_timeout(config.busy_timeout.max(Duration::from_secs(5)))
        .connect_with(options.create_if_missing(false))
        .await
        .map_err(|e| open_err(path, e))?;
    Ok((conn, read))
}

fn open_err(path: &str, e: sqlx::Error) -> Error {
    let inner = map_err(e);
    Error::new(
        ErrorKind::Unavailable,
        format!("cannot open SQLite database {path:?}: {}", inner.message()),
    )
}

/// Map a driver error onto the taxonomy; the driver type stays private.
pub(super) fn map_err(e: sqlx::Error) -> Error {
    let (kind, message) = match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0) & 0xff;
            let kind = match code {
                // SQLITE_BUSY, SQLITE_LOCKED: another process held the lock
                // past busy_timeout.
                5 | 6 => ErrorKind::Timeout,
                // SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_READONLY
                14 | 10 | 8 => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            };
            (kind, format!("SQLite error {code}: {}", db.message()))
        }
        sqlx::Error::Io(io) => (ErrorKind::Unavailable, format!("SQLite I/O error: {io}")),
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Timeout,
            "timed out waiting for a SQLite reader connection".to_string(),
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => (
            ErrorKind::Unavailable,
            "the SQLite store is closed".to_string(),
        ),
        other => (ErrorKind::Backend, format!("SQLite: {other}")),
    };
    Error::new(kind, message).with_source(e)
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS mss_migrations (
             version INTEGER PRIMARY KEY,
             description TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let result = async {
        let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM mss_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > latest {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "the database schema is at version {current}, newer than this library's {latest}: upgrade mcp-session-store"
                ),
            ));
        }
        for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            sqlx::raw_sql(*sql).execute(&mut *conn).await.map_err(map_err)?;
            sqlx::query("INSERT INTO mss_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)")
                .bind(version)
                .bind(description)
                .bind(now_ms())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::raw_sql(end)
        .execute(&mut *conn)
        .await
        .map_err(map_err);
    result.and(ended.map(drop))
}
