//! `sqlite://PATH`: one SQLite file, the embedded default.
//!
//! # Design
//!
//! - **WAL journal**, so readers never block the writer nor each other. Reads
//!   go through a pool of connections (`read_pool_size`, default 4); each
//!   read is one SQL statement, hence one consistent snapshot.
//! - **One writer, group commit.** Every write is a job sent to a single
//!   writer task that owns one connection. The writer takes every job
//!   waiting (up to `write_batch_max`, default 256), runs them in one
//!   `BEGIN IMMEDIATE … COMMIT` transaction and then answers each caller. So
//!   writers in this process never contend for SQLite's lock ("database is
//!   locked" cannot happen between them), and under load one commit carries
//!   many writes. A job that is refused (`NotFound`, `Conflict`, …) is
//!   refused before it writes anything, so it does not disturb the others;
//!   if SQLite itself fails mid-batch, the batch is rolled back and each job
//!   is re-run in a transaction of its own, so one failure cannot fail its
//!   neighbours. Other processes on the same file wait up to `busy_timeout`.
//! - **Commit order = seq order** follows: `seq` is allocated by bumping the
//!   session row's `last_seq` inside the writer's transaction.
//! - **Migrations** are embedded and applied on open, recorded in
//!   `mss_migrations` (separate from any `_sqlx_migrations` of the
//!   application sharing the file).
//!
//! # Options (URL query parameters)
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `synchronous` | `normal` | `normal`: a commit survives a crash of the process, and the last commits may be lost on power failure (WAL + `synchronous=NORMAL`); `full`: every commit is fsynced before it is acknowledged |
//! | `busy_timeout` | `5s` | how long to wait for another process holding the write lock |
//! | `read_pool_size` | `4` | reader connections |
//! | `write_batch_max` | `256` | most writes in one group commit |
//!
//! # Layout
//!
//! `config` parses the options above; `connect` opens the file, migrates it
//! (`migrations/`) and maps driver errors; `writer` runs the group commit,
//! handing appends and state writes to `fast` (one multi-statement call per
//! batch) and the other writes to `apply`. Reads run here, on the pool.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, BackendInfo, Expected, check_cursor};
use crate::backends::common::{closed, corrupt, session_from_row};
use crate::error::{Error, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;

/// The columns of a session row, in the order
/// [`session_from_row`] reads them.
macro_rules! session_cols {
    () => {
        "id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq"
    };
}

mod apply;
mod config;
mod connect;
mod fast;
#[cfg(test)]
mod tests;
mod writer;

use apply::CLEANUP_BATCH;
use config::SqliteConfig;
use connect::map_err;
use writer::{Job, Op, Reply, unexpected, writer_loop};

/// The SQLite backend.
pub struct SqliteBackend {
    path: PathBuf,
    read: SqlitePool,
    writer: mpsc::Sender<Job>,
    closed: AtomicBool,
    limits: Limits,
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `url.location`, applying
    /// migrations, and start the writer.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<SqliteBackend> {
        Self::open_with(SqliteConfig::from_url(url)?, limits).await
    }

    /// Open the database `config` describes, applying migrations, and start
    /// the writer.
    pub(crate) async fn open_with(config: SqliteConfig, limits: Limits) -> Result<SqliteBackend> {
        let runtime = crate::runtime::current_runtime()?;
        let (conn, read) = connect::connect(&config).await?;
        let (tx, rx) = mpsc::channel(4096);
        runtime.spawn(writer_loop(conn, rx, limits, config.write_batch_max));
        Ok(SqliteBackend {
            path: PathBuf::from(config.path),
            read,
            writer: tx,
            closed: AtomicBool::new(false),
            limits,
        })
    }

    async fn submit(&self, op: Op) -> Result<Reply> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed("SQLite"));
        }
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| closed("SQLite"))?;
        rx.await.map_err(|_| closed("SQLite"))?
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("sqlite", true)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        match self.submit(Op::Create(req)).await? {
            Reply::Session(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM mss_sessions WHERE id = ?1 AND expires_at > ?2"
        ))
        .bind(id)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await
        .map_err(map_err)?;
        row.map(|row| session_from_row(&row, map_err)).transpose()
    }

    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        match self.submit(Op::Update(id.to_string(), patch)).await? {
            Reply::Session(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        match self.submit(Op::Touch(id.to_string())).await? {
            Reply::Session(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        match self.submit(Op::Delete(id.to_string())).await? {
            Reply::Flag(f) => Ok(f),
            _ => Err(unexpected()),
        }
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM mss_sessions WHERE expires_at > ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))
        .bind(now_ms())
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|row| session_from_row(row, map_err))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |s| s.id.clone()))
    }

    async fn count_sessions(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mss_sessions WHERE expires_at > ?1")
            .bind(now_ms())
            .fetch_one(&self.read)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        let row = sqlx::query(
            "SELECT st.value, st.version FROM mss_sessions s LEFT JOIN mss_state st \
             ON st.session_id = s.id AND st.key = ?2 WHERE s.id = ?1 AND s.expires_at > ?3",
        )
        .bind(id)
        .bind(key)
        .bind(now_ms())
        .fetch_optional(&self.read)
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
        let op = Op::SetState {
            id: id.to_string(),
            key: key.to_string(),
            value,
            expected,
        };
        match self.submit(op).await? {
            Reply::Version(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        match self
            .submit(Op::DeleteState(id.to_string(), key.to_string()))
            .await?
        {
            Reply::Flag(f) => Ok(f),
            _ => Err(unexpected()),
        }
    }

    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT st.key FROM mss_sessions s LEFT JOIN mss_state st \
             ON st.session_id = s.id WHERE s.id = ?1 AND s.expires_at > ?2 ORDER BY st.key",
        )
        .bind(id)
        .bind(now_ms())
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        if rows.is_empty() {
            return Err(Error::session_not_found(id));
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(key) = row.try_get::<Option<String>, _>(0).map_err(map_err)? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        let rows = sqlx::query(
            "SELECT st.key, st.value, st.version FROM mss_sessions s LEFT JOIN mss_state st \
             ON st.session_id = s.id WHERE s.id = ?1 AND s.expires_at > ?2 ORDER BY st.key",
        )
        .bind(id)
        .bind(now_ms())
        .fetch_all(&self.read)
        .await
        .map_err(map_err)?;
        if rows.is_empty() {
            return Err(Error::session_not_found(id));
        }
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
        match self.submit(Op::Append(id.to_string(), event)).await? {
            Reply::Event(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        // One statement, so the session's counters and the events come from
        // one snapshot: trimming cannot slip in between the check and the
        // read. The events come back as one JSON array in one row, so a page
        // costs one hand-over from SQLite's thread rather than one per event.
        let row = sqlx::query(
            "SELECT s.last_seq, s.trimmed_through, \
             (SELECT json_group_array(json_array(e.seq, e.data, e.event_type, e.retry_ms, e.created_at) ORDER BY e.seq) \
              FROM (SELECT seq, data, event_type, retry_ms, created_at FROM mss_events \
                    WHERE session_id = ?1 AND seq > ?3 AND stream_id = ?2 ORDER BY seq LIMIT ?5) e) \
             FROM mss_sessions s WHERE s.id = ?1 AND s.expires_at > ?4",
        )
        .bind(id)
        .bind(&cursor.stream_id)
        .bind(i64::try_from(cursor.seq).unwrap_or(i64::MAX))
        .bind(now_ms())
        .bind(limit as i64 + 1)
        .fetch_optional(&self.read)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Err(Error::session_not_found(id));
        };
        let last_seq: i64 = row.try_get(0).map_err(map_err)?;
        let trimmed_through: i64 = row.try_get(1).map_err(map_err)?;
        check_cursor(cursor, last_seq as u64, trimmed_through as u64)?;
        let events: String = row.try_get(2).map_err(map_err)?;
        type Stored = (u64, Option<String>, Option<String>, Option<u32>, i64);
        let stored: Vec<Stored> = serde_json::from_str(&events)
            .map_err(|e| corrupt(format!("stored events could not be read: {e}")))?;
        let items: Vec<Event> = stored
            .into_iter()
            .map(|(seq, data, event_type, retry_ms, created_at)| Event {
                session_id: id.to_string(),
                seq,
                stream_id: cursor.stream_id.clone(),
                data: data.map(Json::from_stored),
                event_type,
                retry_ms,
                created_at,
            })
            .collect();
        Ok(Page::from_overfetch(items, limit, Event::wire_id))
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        let mut total = CleanupStats::default();
        loop {
            let batch = match self.submit(Op::CleanupBatch).await? {
                Reply::Cleanup(stats) => stats,
                _ => return Err(unexpected()),
            };
            total.add(batch);
            if batch.sessions < CLEANUP_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        if self
            .writer
            .send(Job {
                op: Op::Close,
                reply,
            })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        self.read.close().await;
        Ok(())
    }
}
