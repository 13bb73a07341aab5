//! `postgres://…` (or `postgresql://…`): PostgreSQL, shared by any number
//! of processes.
//!
//! # Design
//!
//! - **Tables** `mss_sessions`, `mss_state` (one row per key, with its
//!   version) and `mss_events` (primary key `(session_id, seq)`) live in the
//!   schema named by the `schema` option. Migrations are embedded, applied on
//!   open under an advisory lock (so concurrent opens are safe) and recorded
//!   in the schema's own `mss_migrations` table.
//! - **Commit order = seq order.** An append is one statement: it bumps
//!   `last_seq` on the session row and inserts the event with that number.
//!   The row lock taken by the bump is held until commit, so the next append
//!   to the session waits for this one to commit before it takes `seq + 1`:
//!   a reader tailing with `events_after` can never see `seq` N+1 while N is
//!   still uncommitted (which a sequence or `BIGSERIAL` would allow).
//! - **One round trip per write.** Appends are one statement; state writes,
//!   creates and deletes are one call of a PL/pgSQL function (created by the
//!   migration) that locks the session row first, so compare-and-set reads
//!   the state its previous writer committed, and every writer of a session
//!   takes locks in the same order.
//! - **Appends commit together under load.** A store hands its appends to
//!   one worker per pooled connection (`pool_size`). An append that finds a
//!   worker idle goes at once, alone, with the single-append statement. When
//!   more appends arrive than there are connections, the next free worker
//!   takes every append waiting, up to 64, and stores them with one
//!   statement, so one commit: it locks their sessions' rows in id order
//!   (two batches never deadlock), raises each `last_seq` by the session's
//!   count and numbers the events in arrival order. Commit order stays seq
//!   order: a session's row lock is held until the commit. The workers run
//!   on the tokio runtime that opened the store; once it shuts down, appends
//!   are `Unavailable`.
//! - **Reads** are one statement each, so one snapshot: a replay reads the
//!   session's counters and its events together.
//! - **Expiry** is the indexed `expires_at` column, checked by every read.
//!   `cleanup_expired` deletes in batches of 500 sessions, skipping rows that
//!   a writer holds (`FOR UPDATE SKIP LOCKED`), so it never blocks appends.
//! - **Live delivery across processes:** a store with subscribers `LISTEN`s
//!   on the channel `<schema>_mss_events` and keeps a row in
//!   `mss_listeners` fresh (every 10 s, valid 30 s). While any such row is
//!   live, each append also sends `NOTIFY` with the session id. A notifying
//!   commit holds a database-wide lock until it is flushed, which
//!   serializes commits, so appends only notify while someone listens (and
//!   never with `notify=false`). A missed notification delays an event by at
//!   most the subscriber's `poll_interval`; it is never lost.
//!
//! # Options (URL query parameters)
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `schema` | `public` | schema of the tables (created if missing): a lower-case SQL identifier of at most 48 bytes |
//! | `pool_size` | `10` | most connections |
//! | `connect_timeout` | `5s` | how long to wait for a connection (an unreachable server is `Unavailable` after it) |
//! | `statement_timeout` | `30s` | server-side limit per statement (`Timeout` past it); `0s` disables it |
//! | `notify` | `true` | send `NOTIFY` on append while a store listens, so subscribers in other processes wake at once; with `false` they poll |
//!
//! The connection parameters `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `host`, `hostaddr`, `port`, `dbname`, `user`, `password`,
//! `application_name` and `options` are passed to the driver as in libpq
//! (TLS is rustls: `sslmode=require` encrypts, `verify-full` also checks
//! the certificate against `sslrootcert`).
//!
//! # Layout
//!
//! `config` parses the options above; `connect` opens the pool, migrates
//! the schema (`migrations/`) and maps driver errors; `sql` holds every
//! statement; `writer` batches appends; `listen` runs `LISTEN`/`NOTIFY`;
//! `purge` is the cleanup. The other operations run here, one statement
//! each.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::mpsc;

use crate::backend::{
    AppendListener, Backend, BackendInfo, Expected, check_cursor, check_expected,
};
use crate::backends::common::{closed, parse_metadata, session_from_row};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;
use crate::validate;

mod config;
mod connect;
mod listen;
mod purge;
mod sql;
mod writer;

use config::PostgresConfig;
use connect::map_err;
use sql::Sql;
use writer::AppendRequest;

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pool: PgPool,
    /// Appends waiting for an append worker.
    appends: mpsc::Sender<AppendRequest>,
    schema: String,
    channel: Option<String>,
    sql: Sql,
    limits: Limits,
    closed: AtomicBool,
    /// This store's row in `mss_listeners` while it listens.
    listener_id: String,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.schema)
            .field("notify", &self.channel.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connect, create the schema and apply migrations if needed.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<PostgresBackend> {
        Self::open_with(PostgresConfig::from_url(url)?, limits).await
    }

    /// Connect to the server `config` names, create the schema and apply
    /// migrations if needed, and start the append workers.
    pub(crate) async fn open_with(
        config: PostgresConfig,
        limits: Limits,
    ) -> Result<PostgresBackend> {
        let pool = connect::connect(&config).await?;
        let schema = config.schema;
        let channel = config.notify.then(|| format!("{schema}_mss_events"));
        let sql = Sql::new(&schema, channel.as_deref());
        let runtime = crate::runtime::current_runtime()?;
        let appends = writer::spawn_workers(
            &runtime,
            &pool,
            config.pool_size,
            &sql,
            to_i64(limits.max_events_per_session),
        );
        Ok(PostgresBackend {
            sql,
            appends,
            pool,
            schema,
            channel,
            limits,
            closed: AtomicBool::new(false),
            listener_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// The rows of a per-session query (`$1` the id, `$2` now) that yields at
    /// least one row for a live session; none is `NotFound`.
    async fn session_rows(&self, sql: &str, id: &str) -> Result<Vec<PgRow>> {
        self.check_open()?;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        if rows.is_empty() {
            return Err(Error::session_not_found(id));
        }
        Ok(rows)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(closed("PostgreSQL"))
        } else {
            Ok(())
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Backend for PostgresBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("postgres", true)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        self.check_open()?;
        let now = now_ms();
        let metadata =
            serde_json::to_string(&req.metadata).map_err(|e| Error::invalid(e.to_string()))?;
        let status: i32 = sqlx::query_scalar(AssertSqlSafe(self.sql.create_session.as_str()))
            .bind(&req.id)
            .bind(now)
            .bind(to_i64(req.ttl_ms))
            .bind(&metadata)
            .bind(self.limits.max_sessions.map(to_i64))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        match status {
            0 => Ok(Session {
                id: req.id,
                created_at: now,
                last_activity: now,
                expires_at: now.saturating_add(to_i64(req.ttl_ms)),
                ttl_ms: req.ttl_ms,
                metadata: req.metadata,
                version: 1,
                last_seq: 0,
            }),
            1 => Err(Error::session_exists(&req.id)),
            2 => Err(Error::session_limit(self.limits.max_sessions.unwrap_or(0))),
            other => Err(Error::new(
                ErrorKind::Internal,
                format!("mss_create_session answered {other}"),
            )),
        }
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.check_open()?;
        let row = sqlx::query(AssertSqlSafe(self.sql.get_session.as_str()))
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|row| session_from_row(&row, map_err)).transpose()
    }

    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        self.check_open()?;
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let current: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.update_lock.as_str()))
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some(current) = current else {
            return Err(Error::session_not_found(id));
        };
        let mut merged = parse_metadata(&current)?;
        merged.extend(patch);
        validate::metadata(&merged, self.limits.max_payload_bytes)?;
        let text = serde_json::to_string(&merged).map_err(|e| Error::invalid(e.to_string()))?;
        let row = sqlx::query(AssertSqlSafe(self.sql.update_write.as_str()))
            .bind(text)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let session = session_from_row(&row, map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(session)
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        self.check_open()?;
        let row = sqlx::query(AssertSqlSafe(self.sql.touch.as_str()))
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => session_from_row(&row, map_err),
            None => Err(Error::session_not_found(id)),
        }
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        self.check_open()?;
        let now = now_ms();
        let expires_at: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.delete_session.as_str()))
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(expires_at.is_some_and(|exp| exp > now))
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        self.check_open()?;
        let rows = sqlx::query(AssertSqlSafe(self.sql.list_sessions.as_str()))
            .bind(now_ms())
            .bind(after.unwrap_or(""))
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|row| session_from_row(row, map_err))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |s| s.id.clone()))
    }

    async fn count_sessions(&self) -> Result<u64> {
        self.check_open()?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(self.sql.count_sessions.as_str()))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        self.check_open()?;
        let row = sqlx::query(AssertSqlSafe(self.sql.get_state.as_str()))
            .bind(id)
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Err(Error::session_not_found(id));
        };
        let value: Option<String> = row.try_get(0).map_err(map_err)?;
        let version: Option<i64> = row.try_get(1).map_err(map_err)?;
        Ok(value
            .zip(version)
            .map(|(v, ver)| StateEntry::new(key.to_string(), Json::from_stored(v), ver as u64)))
    }

    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64> {
        self.check_open()?;
        let (mode, version) = match expected {
            Expected::Any => (0, None),
            Expected::Absent => (1, None),
            Expected::Version(v) => (2, Some(to_i64(v))),
        };
        let row = sqlx::query(AssertSqlSafe(self.sql.set_state.as_str()))
            .bind(id)
            .bind(key)
            .bind(value.as_str())
            .bind(mode)
            .bind(version)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let status: i32 = row.try_get(0).map_err(map_err)?;
        let version: Option<i64> = row.try_get(1).map_err(map_err)?;
        match (status, version) {
            (0, Some(v)) => Ok(v as u64),
            (1, _) => Err(Error::session_not_found(id)),
            (2, current) => check_expected(key, expected, current.map(|v| v as u64)).and(Err(
                Error::new(ErrorKind::Internal, "state write refused without cause"),
            )),
            (other, _) => Err(Error::new(
                ErrorKind::Internal,
                format!("mss_set_state answered {other}"),
            )),
        }
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        self.check_open()?;
        let status: i32 = sqlx::query_scalar(AssertSqlSafe(self.sql.delete_state.as_str()))
            .bind(id)
            .bind(key)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        match status {
            -1 => Err(Error::session_not_found(id)),
            n => Ok(n == 1),
        }
    }

    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        let rows = self.session_rows(&self.sql.state_keys, id).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(key) = row.try_get::<Option<String>, _>(0).map_err(map_err)? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        let rows = self.session_rows(&self.sql.state_all, id).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: Option<String> = row.try_get(0).map_err(map_err)?;
            let value: Option<String> = row.try_get(1).map_err(map_err)?;
            let version: Option<i64> = row.try_get(2).map_err(map_err)?;
            if let (Some(key), Some(value), Some(version)) = (key, value, version) {
                entries.push(StateEntry::new(
                    key,
                    Json::from_stored(value),
                    version as u64,
                ));
            }
        }
        Ok(entries)
    }

    async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
        self.check_open()?;
        writer::append(&self.appends, id, event).await
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        self.check_open()?;
        let rows = sqlx::query(AssertSqlSafe(self.sql.events_after.as_str()))
            .bind(id)
            .bind(&cursor.stream_id)
            .bind(to_i64(cursor.seq))
            .bind(now_ms())
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(first) = rows.first() else {
            return Err(Error::session_not_found(id));
        };
        let last_seq: i64 = first.try_get(0).map_err(map_err)?;
        let trimmed_through: i64 = first.try_get(1).map_err(map_err)?;
        check_cursor(cursor, last_seq as u64, trimmed_through as u64)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(seq) = row.try_get::<Option<i64>, _>(2).map_err(map_err)? else {
                continue;
            };
            items.push(Event {
                session_id: id.to_string(),
                seq: seq as u64,
                stream_id: cursor.stream_id.clone(),
                data: row
                    .try_get::<Option<String>, _>(3)
                    .map_err(map_err)?
                    .map(Json::from_stored),
                event_type: row.try_get(4).map_err(map_err)?,
                retry_ms: row
                    .try_get::<Option<i64>, _>(5)
                    .map_err(map_err)?
                    .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
                created_at: row.try_get(6).map_err(map_err)?,
            });
        }
        Ok(Page::from_overfetch(items, limit, Event::wire_id))
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        self.check_open()?;
        purge::cleanup_expired(&self.pool, &self.schema, &self.sql).await
    }

    fn watch_appends(&self, listener: AppendListener) -> Result<bool> {
        let Some(channel) = self.channel.clone() else {
            return Ok(false);
        };
        self.check_open()?;
        let runtime = crate::runtime::current_runtime()?;
        runtime.spawn(listen::listen(
            self.pool.clone(),
            self.schema.clone(),
            self.listener_id.clone(),
            channel,
            listener,
        ));
        Ok(true)
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if self.channel.is_some() {
            // Appends stop notifying for this store at once, not only when
            // its row expires.
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {}.mss_listeners WHERE id = $1",
                self.schema
            )))
            .bind(&self.listener_id)
            .execute(&self.pool)
            .await;
        }
        self.pool.close().await;
        Ok(())
    }
}
