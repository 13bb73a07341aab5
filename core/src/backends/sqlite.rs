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

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, BackendInfo, Expected, check_cursor, check_expected};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;
use crate::validate;

/// Embedded migrations: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial schema",
    include_str!("../../migrations/sqlite/0001_initial.sql"),
)];

/// Sessions removed per cleanup transaction, so appends interleave.
const CLEANUP_BATCH: i64 = 500;

macro_rules! session_cols {
    () => {
        "id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq"
    };
}

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

enum Op {
    Create(CreateSession),
    Update(String, Map<String, Value>),
    Touch(String),
    Delete(String),
    SetState {
        id: String,
        key: String,
        value: Json,
        expected: Expected,
    },
    DeleteState(String, String),
    Append(String, NewEvent),
    CleanupBatch,
    Close,
}

enum Reply {
    Session(Session),
    Flag(bool),
    Version(u64),
    Event(Event),
    Cleanup(CleanupStats),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
}

/// Why an operation did not complete.
enum Fail {
    /// Refused before writing anything: the transaction is still good.
    Refused(Error),
    /// SQLite failed: the transaction must be rolled back.
    Abort(Error),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Fail {
        Fail::Abort(map_err(e))
    }
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `url.location`, applying
    /// migrations, and start the writer.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<SqliteBackend> {
        let path = url.location.clone();
        if path.is_empty() {
            return Err(Error::invalid(
                "sqlite:// needs a file path, e.g. sqlite://sessions.db",
            ));
        }
        if path == ":memory:" || path.starts_with("file::memory:") {
            return Err(Error::invalid(
                "an in-memory SQLite database is not supported; use memory:// instead",
            ));
        }
        let synchronous = match url.take("synchronous").as_deref() {
            None | Some("normal") => SqliteSynchronous::Normal,
            Some("full") => SqliteSynchronous::Full,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "option synchronous: {other:?} is not normal or full"
                )));
            }
        };
        let busy_timeout = url
            .take_duration("busy_timeout")?
            .unwrap_or(Duration::from_secs(5));
        let read_pool_size: u32 = url.take_number("read_pool_size")?.unwrap_or(4);
        if !(1..=64).contains(&read_pool_size) {
            return Err(Error::invalid("option read_pool_size must be 1-64"));
        }
        let batch_max: usize = url.take_number("write_batch_max")?.unwrap_or(256);
        if !(1..=10_000).contains(&batch_max) {
            return Err(Error::invalid("option write_batch_max must be 1-10000"));
        }
        url.finish()?;
        let runtime = crate::runtime::current_runtime()?;

        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(busy_timeout)
            .foreign_keys(false)
            .statement_cache_capacity(512);
        let mut conn = options.connect().await.map_err(|e| open_err(&path, e))?;
        migrate(&mut conn).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(read_pool_size)
            .min_connections(0)
            // A local file needs no liveness ping before each read.
            .test_before_acquire(false)
            .acquire_timeout(busy_timeout.max(Duration::from_secs(5)))
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(|e| open_err(&path, e))?;
        let (tx, rx) = mpsc::channel(4096);
        runtime.spawn(writer_loop(conn, rx, limits, batch_max));
        Ok(SqliteBackend {
            path: PathBuf::from(path),
            read,
            writer: tx,
            closed: AtomicBool::new(false),
            limits,
        })
    }

    async fn submit(&self, op: Op) -> Result<Reply> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Unavailable, "the SQLite store is closed")
}

fn unexpected() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the SQLite writer answered with the wrong reply type",
    )
}

fn open_err(path: &str, e: sqlx::Error) -> Error {
    let inner = map_err(e);
    Error::new(
        ErrorKind::Unavailable,
        format!("cannot open SQLite database {path:?}: {}", inner.message()),
    )
}

/// Map a driver error onto the taxonomy; the driver type stays private.
fn map_err(e: sqlx::Error) -> Error {
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

// ---- the writer -----------------------------------------------------------

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    limits: Limits,
    batch_max: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    let mut closing = false;
    while !closing && rx.recv_many(&mut batch, batch_max).await > 0 {
        // A caller that gave up (dropped its future) before its write ran
        // does not get it applied.
        batch.retain(|job| !job.reply.is_closed());
        if let Some(pos) = batch.iter().position(|j| matches!(j.op, Op::Close)) {
            closing = true;
            let rest: Vec<Job> = batch.drain(pos..).collect();
            run_batch(&mut conn, &mut batch, &limits).await;
            for job in rest {
                let reply = match job.op {
                    Op::Close => Ok(Reply::Flag(true)),
                    _ => Err(closed()),
                };
                let _ = job.reply.send(reply);
            }
        } else {
            run_batch(&mut conn, &mut batch, &limits).await;
        }
        batch.clear();
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        let _ = job.reply.send(Err(closed()));
    }
    let _ = conn.close().await;
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

/// Run a batch of writes in one transaction and answer every caller. If
/// SQLite fails part-way, roll back and run each write in a transaction of
/// its own, so one failure cannot fail its neighbours.
async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<Job>, limits: &Limits) {
    if batch.is_empty() {
        return;
    }
    let now = now_ms();
    let jobs: Vec<&Job> = batch.iter().collect();
    match run_jobs(conn, &jobs, now, limits).await {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            // Busy past busy_timeout, or the file is unusable: running the
            // writes one by one would only wait again, per write.
            if batch.len() == 1 || matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable) {
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(Error::new(e.kind(), e.message().to_string())));
                }
                return;
            }
            for job in batch.drain(..) {
                let result = match run_jobs(conn, &[&job], now, limits).await {
                    Ok(mut results) => results.pop().unwrap_or_else(|| Err(unexpected())),
                    Err(e) => {
                        let _ = exec(conn, "ROLLBACK").await;
                        Err(e)
                    }
                };
                let _ = job.reply.send(result);
            }
        }
    }
}

/// One transaction over `jobs`. `Err` means SQLite failed and the
/// transaction may be open: the caller rolls back.
///
/// Appends and state writes (the hot writes) are compiled into one
/// multi-statement SQL call for the whole batch, so a batch costs one round
/// trip to SQLite's thread instead of one per statement; the rest run one by
/// one before them.
async fn run_jobs(
    conn: &mut SqliteConnection,
    jobs: &[&Job],
    now: i64,
    limits: &Limits,
) -> Result<Vec<Result<Reply>>> {
    let mut results: Vec<Option<Result<Reply>>> = jobs.iter().map(|_| None).collect();
    let (fast, slow): (Vec<usize>, Vec<usize>) =
        (0..jobs.len()).partition(|&i| is_fast(&jobs[i].op));
    // With only fast writes, BEGIN and COMMIT travel in the same call.
    let wrap = slow.is_empty();
    if !wrap {
        exec(conn, "BEGIN IMMEDIATE").await?;
        for &i in &slow {
            results[i] = Some(match apply(conn, &jobs[i].op, now, limits).await {
                Ok(reply) => Ok(reply),
                Err(Fail::Refused(e)) => Err(e),
                Err(Fail::Abort(e)) => return Err(e),
            });
        }
    }
    if !fast.is_empty() {
        let ops: Vec<(usize, &Op)> = fast.iter().map(|&i| (i, &jobs[i].op)).collect();
        for (i, result) in run_fast(conn, &ops, now, limits, wrap).await? {
            results[i] = Some(result);
        }
    }
    if !wrap {
        exec(conn, "COMMIT").await?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(unexpected())))
        .collect())
}

fn is_fast(op: &Op) -> bool {
    matches!(op, Op::Append(..) | Op::SetState { .. })
}

/// Row tags of the fast path's result rows: `(job, tag, a, b)`.
const ROW_APPENDED: i64 = 1;
const ROW_STATE_BEFORE: i64 = 2;
const ROW_STATE_WRITTEN: i64 = 3;

/// A value bound to one `?` of the fast path's SQL.
#[derive(Clone, Copy)]
enum Val<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// SQL text and its bind values, built side by side: `p` writes one `?` and
/// records its value. Only anonymous `?` placeholders are used, bound in
/// order of appearance across all statements of the call.
struct FastSql<'a> {
    sql: String,
    vals: Vec<Val<'a>>,
}

impl<'a> FastSql<'a> {
    fn s(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    fn p(&mut self, val: Val<'a>) -> &mut Self {
        self.sql.push('?');
        self.vals.push(val);
        self
    }

    /// A small integer literal (job index or row tag), never user input.
    fn n(&mut self, n: i64) -> &mut Self {
        self.sql.push_str(&n.to_string());
        self
    }
}

/// Appends and state writes as one multi-statement call. Every statement of
/// a job is guarded so that a refused job writes nothing: the `UPDATE` of the
/// session row only matches a live session (and, for a conditional state
/// write, only when the condition holds), and the following `INSERT` runs
/// only if that `UPDATE` changed a row (`changes() = 1`). The `RETURNING`
/// rows tell which jobs went through.
///
/// The SQL text only depends on the sequence of job kinds, so the prepared
/// statements are reused from the connection's statement cache.
async fn run_fast(
    conn: &mut SqliteConnection,
    ops: &[(usize, &Op)],
    now: i64,
    limits: &Limits,
    wrap: bool,
) -> Result<Vec<(usize, Result<Reply>)>> {
    use Val::{Int, OptInt, OptText, Text};
    let max = limits.max_events_per_session as i64;
    let mut q = FastSql {
        sql: String::with_capacity(ops.len() * 700 + 64),
        vals: Vec::with_capacity(ops.len() * 16),
    };
    if wrap {
        q.s("BEGIN IMMEDIATE;\n");
    }
    for (j, (_, op)) in ops.iter().enumerate() {
        let j = j as i64;
        match op {
            Op::Append(id, event) => {
                let id = Text(id.as_str());
                q.s("UPDATE mss_sessions SET last_seq = last_seq + 1, version = version + 1, last_activity = ")
                    .p(Int(now))
                    .s(", expires_at = ttl_ms + ")
                    .p(Int(now))
                    .s(", trimmed_through = MAX(trimmed_through, last_seq + 1 - ")
                    .p(Int(max))
                    .s(") WHERE id = ")
                    .p(id)
                    .s(" AND expires_at > ")
                    .p(Int(now))
                    .s(";\nINSERT INTO mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) SELECT id, last_seq, ")
                    .p(Text(event.stream_id.as_str()))
                    .s(", ")
                    .p(OptText(event.data.as_ref().map(Json::as_str)))
                    .s(", ")
                    .p(OptText(event.event_type.as_deref()))
                    .s(", ")
                    .p(OptInt(event.retry_ms.map(i64::from)))
                    .s(", ")
                    .p(Int(now))
                    .s(" FROM mss_sessions WHERE id = ")
                    .p(id)
                    .s(" AND changes() = 1 RETURNING ")
                    .n(j)
                    .s(", ")
                    .n(ROW_APPENDED)
                    .s(", seq, NULL;\nDELETE FROM mss_events WHERE session_id = ")
                    .p(id)
                    .s(" AND seq <= (SELECT trimmed_through FROM mss_sessions WHERE id = ")
                    .p(id)
                    .s(");\n");
            }
            Op::SetState {
                id,
                key,
                value,
                expected,
            } => {
                let (id, key) = (Text(id.as_str()), Text(key.as_str()));
                if *expected != Expected::Any {
                    // What the key held before: tells Conflict from NotFound.
                    q.s("SELECT ")
                        .n(j)
                        .s(", ")
                        .n(ROW_STATE_BEFORE)
                        .s(", s.expires_at > ")
                        .p(Int(now))
                        .s(", st.version FROM mss_sessions s LEFT JOIN mss_state st ON st.session_id = s.id AND st.key = ")
                        .p(key)
                        .s(" WHERE s.id = ")
                        .p(id)
                        .s(";\n");
                }
                q.s("UPDATE mss_sessions SET version = version + 1, last_activity = ")
                    .p(Int(now))
                    .s(", expires_at = ttl_ms + ")
                    .p(Int(now))
                    .s(" WHERE id = ")
                    .p(id)
                    .s(" AND expires_at > ")
                    .p(Int(now));
                match expected {
                    Expected::Any => {}
                    Expected::Absent => {
                        q.s(" AND NOT EXISTS (SELECT 1 FROM mss_state WHERE session_id = ")
                            .p(id)
                            .s(" AND key = ")
                            .p(key)
                            .s(")");
                    }
                    Expected::Version(v) => {
                        q.s(" AND (SELECT version FROM mss_state WHERE session_id = ")
                            .p(id)
                            .s(" AND key = ")
                            .p(key)
                            .s(") = ")
                            .p(Int(i64::try_from(*v).unwrap_or(-1)));
                    }
                }
                q.s(";\nINSERT INTO mss_state (session_id, key, value, version) SELECT id, ")
                    .p(key)
                    .s(", ")
                    .p(Text(value.as_str()))
                    .s(", version FROM mss_sessions WHERE id = ")
                    .p(id)
                    .s(" AND changes() = 1 ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value, version = excluded.version RETURNING ")
                    .n(j)
                    .s(", ")
                    .n(ROW_STATE_WRITTEN)
                    .s(", version, NULL;\n");
            }
            _ => return Err(unexpected()),
        }
    }
    if wrap {
        q.s("COMMIT;\n");
    }
    let FastSql { sql, vals } = q;
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for val in vals {
        query = match val {
            Int(v) => query.bind(v),
            OptInt(v) => query.bind(v),
            Text(v) => query.bind(v),
            OptText(v) => query.bind(v),
        };
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(map_err)?;

    // (live, version) before each conditional write; the value written.
    let mut before: Vec<Option<(bool, Option<i64>)>> = vec![None; ops.len()];
    let mut done: Vec<Option<i64>> = vec![None; ops.len()];
    // The writes may already be committed: a row that cannot be read must
    // not turn into a batch error (which would re-run the writes), so it
    // fails the whole call's jobs as Internal instead.
    let parsed = rows.iter().try_for_each(|row| -> Result<(), sqlx::Error> {
        let j: i64 = row.try_get(0)?;
        let tag: i64 = row.try_get(1)?;
        let Some(j) = usize::try_from(j).ok().filter(|&j| j < ops.len()) else {
            return Err(sqlx::Error::Protocol(format!(
                "result row for unknown job {j}"
            )));
        };
        match tag {
            ROW_STATE_BEFORE => before[j] = Some((row.try_get(2)?, row.try_get(3)?)),
            ROW_APPENDED | ROW_STATE_WRITTEN => done[j] = Some(row.try_get(2)?),
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "result row with unknown tag {other}"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = parsed {
        let message = format!("the outcome of a write is unknown: {e}");
        return Ok(ops
            .iter()
            .map(|(i, _)| (*i, Err(Error::new(ErrorKind::Internal, message.clone()))))
            .collect());
    }
    let mut out = Vec::with_capacity(ops.len());
    for (j, (i, op)) in ops.iter().enumerate() {
        let result = match (op, done[j]) {
            (Op::Append(id, event), Some(seq)) => Ok(Reply::Event(Event::new(
                id.clone(),
                seq as u64,
                event.clone(),
                now,
            ))),
            (Op::SetState { .. }, Some(version)) => Ok(Reply::Version(version as u64)),
            (Op::Append(id, _), None) => Err(Error::session_not_found(id)),
            (
                Op::SetState {
                    id, key, expected, ..
                },
                None,
            ) => match before[j] {
                Some((true, version)) if *expected != Expected::Any => {
                    check_expected(key, *expected, version.map(|v| v as u64)).and(Err(Error::new(
                        ErrorKind::Internal,
                        "state write refused without cause",
                    )))
                }
                _ => Err(Error::session_not_found(id)),
            },
            _ => Err(unexpected()),
        };
        out.push((*i, result));
    }
    Ok(out)
}

fn refuse<T>(e: Error) -> Result<T, Fail> {
    Err(Fail::Refused(e))
}

/// Apply one write inside the writer's open transaction. Every check that
/// can refuse runs before the first write.
async fn apply(
    conn: &mut SqliteConnection,
    op: &Op,
    now: i64,
    limits: &Limits,
) -> Result<Reply, Fail> {
    match op {
        Op::Create(req) => {
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT expires_at FROM mss_sessions WHERE id = ?1")
                    .bind(&req.id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if existing.is_some_and(|exp| exp > now) {
                return refuse(Error::session_exists(&req.id));
            }
            if let Some(max) = limits.max_sessions {
                let live: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM mss_sessions WHERE expires_at > ?1")
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                if live as u64 >= max {
                    return refuse(Error::session_limit(max));
                }
            }
            if existing.is_some() {
                // The old session expired: it is invisible, so replace it.
                delete_rows(conn, &req.id).await?;
            }
            let metadata = serde_json::to_string(&req.metadata)
                .map_err(|e| Fail::Refused(Error::invalid(e.to_string())))?;
            let row = sqlx::query(concat!(
                "INSERT INTO mss_sessions (id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq, trimmed_through) \
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, 1, 0, 0) RETURNING ",
                session_cols!()
            ))
            .bind(&req.id)
            .bind(now)
            .bind(now.saturating_add(req.ttl_ms as i64))
            .bind(req.ttl_ms as i64)
            .bind(metadata)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Reply::Session(session_from_row(&row).map_err(Fail::Abort)?))
        }
        Op::Update(id, patch) => {
            let current: Option<String> = sqlx::query_scalar(
                "SELECT metadata FROM mss_sessions WHERE id = ?1 AND expires_at > ?2",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(current) = current else {
                return refuse(Error::session_not_found(id));
            };
            let mut merged = parse_metadata(&current).map_err(Fail::Refused)?;
            merged.extend(patch.clone());
            validate::metadata(&merged, limits.max_payload_bytes).map_err(Fail::Refused)?;
            let text = serde_json::to_string(&merged)
                .map_err(|e| Fail::Refused(Error::invalid(e.to_string())))?;
            let row = sqlx::query(concat!(
                "UPDATE mss_sessions SET metadata = ?1, version = version + 1, last_activity = ?2, \
                 expires_at = ?2 + ttl_ms WHERE id = ?3 RETURNING ",
                session_cols!()
            ))
            .bind(text)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Reply::Session(session_from_row(&row).map_err(Fail::Abort)?))
        }
        Op::Touch(id) => {
            let row = sqlx::query(concat!(
                "UPDATE mss_sessions SET last_activity = ?1, expires_at = ?1 + ttl_ms \
                 WHERE id = ?2 AND expires_at > ?1 RETURNING ",
                session_cols!()
            ))
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => Ok(Reply::Session(session_from_row(&row).map_err(Fail::Abort)?)),
                None => refuse(Error::session_not_found(id)),
            }
        }
        Op::Delete(id) => {
            let expires_at: Option<i64> =
                sqlx::query_scalar("SELECT expires_at FROM mss_sessions WHERE id = ?1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some(expires_at) = expires_at else {
                return Ok(Reply::Flag(false));
            };
            delete_rows(conn, id).await?;
            Ok(Reply::Flag(expires_at > now))
        }
        Op::DeleteState(id, key) => {
            let renewed = sqlx::query(
                "UPDATE mss_sessions SET last_activity = ?1, expires_at = ?1 + ttl_ms WHERE id = ?2 AND expires_at > ?1",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if renewed.rows_affected() == 0 {
                return refuse(Error::session_not_found(id));
            }
            let deleted = sqlx::query("DELETE FROM mss_state WHERE session_id = ?1 AND key = ?2")
                .bind(id)
                .bind(key)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0;
            if deleted {
                sqlx::query("UPDATE mss_sessions SET version = version + 1 WHERE id = ?1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(Reply::Flag(deleted))
        }
        Op::Append(..) | Op::SetState { .. } => Err(Fail::Abort(unexpected())),
        Op::CleanupBatch => {
            // The same batch of expired sessions in each statement: the
            // sessions go last, so the subquery sees them until then.
            let mut removed = [0u64; 3];
            for (n, sql) in [
                "DELETE FROM mss_state WHERE session_id IN \
                 (SELECT id FROM mss_sessions WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
                "DELETE FROM mss_events WHERE session_id IN \
                 (SELECT id FROM mss_sessions WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
                "DELETE FROM mss_sessions WHERE id IN \
                 (SELECT id FROM mss_sessions WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
            ]
            .into_iter()
            .enumerate()
            {
                removed[n] = sqlx::query(sql)
                    .bind(now)
                    .bind(CLEANUP_BATCH)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            let [state, events, sessions] = removed;
            Ok(Reply::Cleanup(CleanupStats::new(sessions, state, events)))
        }
        Op::Close => Ok(Reply::Flag(true)),
    }
}

async fn delete_rows(conn: &mut SqliteConnection, id: &str) -> Result<(), Fail> {
    for sql in [
        "DELETE FROM mss_state WHERE session_id = ?1",
        "DELETE FROM mss_events WHERE session_id = ?1",
        "DELETE FROM mss_sessions WHERE id = ?1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

fn parse_metadata(text: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("stored session metadata is not a JSON object: {e}"),
        )
    })
}

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    let get = |e: sqlx::Error| map_err(e);
    let metadata: String = row.try_get(5).map_err(get)?;
    Ok(Session {
        id: row.try_get(0).map_err(get)?,
        created_at: row.try_get(1).map_err(get)?,
        last_activity: row.try_get(2).map_err(get)?,
        expires_at: row.try_get(3).map_err(get)?,
        ttl_ms: row.try_get::<i64, _>(4).map_err(get)? as u64,
        metadata: parse_metadata(&metadata)?,
        version: row.try_get::<i64, _>(6).map_err(get)? as u64,
        last_seq: row.try_get::<i64, _>(7).map_err(get)? as u64,
    })
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
        row.as_ref().map(session_from_row).transpose()
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
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(session_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if more {
            items.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(Page::new(items, next))
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
        let stored: Vec<Stored> = serde_json::from_str(&events).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("stored events could not be read: {e}"),
            )
        })?;
        let more = stored.len() > limit;
        let items: Vec<Event> = stored
            .into_iter()
            .take(limit)
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
        let next = if more {
            items.last().map(Event::wire_id)
        } else {
            None
        };
        Ok(Page::new(items, next))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewSession, Store};
    use serde_json::json;

    /// A write that SQLite itself rejects (here: a trigger) fails alone; the
    /// writes batched with it commit, and nothing stored before is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let id = store.create_session(NewSession::new()).await.unwrap().id;
        store.set_state(&id, "kept", json!("before")).await.unwrap();

        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER boom BEFORE INSERT ON mss_state WHEN NEW.key = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();

        for round in 0..20 {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let store = store.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        let key = if t == 3 {
                            "boom".to_string()
                        } else {
                            format!("k{t}")
                        };
                        (t, store.set_state(&id, &key, json!(round)).await)
                    })
                })
                .collect();
            for task in tasks {
                let (t, result) = task.await.unwrap();
                if t == 3 {
                    assert_eq!(result.unwrap_err().kind(), ErrorKind::Backend);
                } else {
                    result.unwrap();
                }
            }
        }
        let all = store.state_all(&id).await.unwrap();
        let keys: Vec<_> = all.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k4", "k5", "k6", "k7", "kept"]);
        assert!(
            all.iter()
                .filter(|e| e.key != "kept")
                .all(|e| e.value.to_value() == json!(19))
        );
        assert_eq!(all[7].value.to_value(), json!("before"));
    }
}
