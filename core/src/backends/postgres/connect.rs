//! Connecting: the pool, the first connection (which applies the embedded
//! migrations), and the mapping of driver errors.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use super::config::PostgresConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::time::now_ms;

/// Embedded migrations: (version, description, SQL with `{schema}`).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        include_str!("migrations/0001_initial.sql"),
    ),
    (
        2,
        "listeners",
        include_str!("migrations/0002_listeners.sql"),
    ),
];

/// A pool for the server `config` names; its first connection creates the
/// schema and applies the migrations if needed.
pub(super) async fn connect(config: &PostgresConfig) -> Result<PgPool> {
    let mut options = config.connect.clone();
    if !config.statement_timeout.is_zero() {
        options = options.options([(
            "statement_timeout",
            format!("{}ms", config.statement_timeout.as_millis()),
        )]);
    }
    options = options.disable_statement_logging();
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );

    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size)
        .min_connections(0)
        .acquire_timeout(config.connect_timeout)
        .connect_lazy_with(options);
    // The first connection: the pool retries a refused connect until
    // connect_timeout, then gives up.
    let mut conn = pool.acquire().await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot connect to PostgreSQL at {target} within {}ms: {}",
                config.connect_timeout.as_millis(),
                map_err(e).message()
            ),
        )
    })?;
    let migrated = migrate(&mut conn, &config.schema).await;
    drop(conn);
    if let Err(e) = migrated {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// Map a driver error onto the taxonomy; the driver type stays private.
pub(super) fn map_err(e: sqlx::Error) -> Error {
    let (kind, message) = match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let kind = match code.as_str() {
                // query_canceled (statement_timeout), lock_not_available
                "57014" | "55P03" => ErrorKind::Timeout,
                // serialization_failure, deadlock_detected: safe to retry
                "40001" | "40P01" => ErrorKind::Conflict,
                // admin/crash shutdown, cannot connect now, too many
                // connections, unknown database, bad credentials
                "57P01" | "57P02" | "57P03" | "53300" | "3D000" => ErrorKind::Unavailable,
                c if c.starts_with("08") || c.starts_with("28") => ErrorKind::Unavailable,
                // program_limit_exceeded (a row or index entry too large)
                "54000" => ErrorKind::LimitExceeded,
                _ => ErrorKind::Backend,
            };
            (kind, format!("PostgreSQL error {code}: {}", db.message()))
        }
        sqlx::Error::Io(io) => (ErrorKind::Unavailable, format!("PostgreSQL I/O error: {io}")),
        sqlx::Error::Tls(tls) => (ErrorKind::Unavailable, format!("PostgreSQL TLS error: {tls}")),
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Unavailable,
            "no PostgreSQL connection within connect_timeout: the server is unreachable or every pooled connection is busy"
                .to_string(),
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => (
            ErrorKind::Unavailable,
            "the PostgreSQL store is closed".to_string(),
        ),
        sqlx::Error::Configuration(c) => (
            ErrorKind::InvalidInput,
            format!("PostgreSQL configuration: {c}"),
        ),
        other => (ErrorKind::Backend, format!("PostgreSQL: {other}")),
    };
    Error::new(kind, message).with_source(e)
}

async fn migrate(conn: &mut sqlx::PgConnection, schema: &str) -> Result<()> {
    let mut tx = conn.begin().await.map_err(map_err)?;
    // Opens of one schema migrate one at a time.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("mss_migrate:{schema}"))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    tx.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.mss_migrations (\
           version bigint PRIMARY KEY, description text NOT NULL, applied_at bigint NOT NULL)"
    )))
    .await
    .map_err(map_err)?;
    let current: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(version), 0) FROM {schema}.mss_migrations"
    )))
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(Error::new(
            ErrorKind::Backend,
            format!(
                "schema {schema} is at version {current}, newer than this library's {latest}: upgrade mcp-session-store"
            ),
        ));
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute(AssertSqlSafe(sql.replace("{schema}", schema)))
            .await
            .map_err(map_err)?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.mss_migrations (version, description, applied_at) VALUES ($1, $2, $3)"
        )))
        .bind(version)
        .bind(description)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}
