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

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, Row};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    AppendListener, Backend, BackendInfo, Expected, check_cursor, check_expected,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;
use crate::validate;

/// Embedded migrations: (version, description, SQL with `{schema}`).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "listeners",
        include_str!("../../migrations/postgres/0002_listeners.sql"),
    ),
];

/// A listening store renews its `mss_listeners` row this often; the row
/// counts for three times as long.
const LISTENER_HEARTBEAT: Duration = Duration::from_secs(10);

/// Sessions removed per cleanup statement, so appends interleave.
const CLEANUP_BATCH: i64 = 500;

/// Connection parameters passed through to the driver.
const DRIVER_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

const SESSION_COLS: &str =
    "id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq";

/// The SQL of every operation, with the schema name filled in once.
struct Sql {
    get_session: String,
    create_session: String,
    update_lock: String,
    update_write: String,
    touch: String,
    delete_session: String,
    list_sessions: String,
    count_sessions: String,
    get_state: String,
    set_state: String,
    delete_state: String,
    state_keys: String,
    state_all: String,
    append: String,
    append_batch: String,
    events_after: String,
    cleanup: String,
}

impl Sql {
    fn new(schema: &str, channel: Option<&str>) -> Sql {
        let s = schema;
        let notify_of = |id: &str| match channel {
            Some(channel) => format!(
                " LEFT JOIN LATERAL (SELECT pg_notify('{channel}', {id}) \
                 WHERE EXISTS (SELECT 1 FROM {s}.mss_listeners WHERE expires_at > $6)) n ON true"
            ),
            None => String::new(),
        };
        let notify = notify_of("$1");
        let notify_batch = notify_of("num.sid");
        Sql {
            get_session: format!(
                "SELECT {SESSION_COLS} FROM {s}.mss_sessions WHERE id = $1 AND expires_at > $2"
            ),
            create_session: format!("SELECT {s}.mss_create_session($1, $2, $3, $4, $5)"),
            update_lock: format!(
                "SELECT metadata FROM {s}.mss_sessions WHERE id = $1 AND expires_at > $2 FOR UPDATE"
            ),
            update_write: format!(
                "UPDATE {s}.mss_sessions SET metadata = $1, version = version + 1, \
                 last_activity = $2, expires_at = $2 + ttl_ms WHERE id = $3 RETURNING {SESSION_COLS}"
            ),
            touch: format!(
                "UPDATE {s}.mss_sessions SET last_activity = $1, expires_at = $1 + ttl_ms \
                 WHERE id = $2 AND expires_at > $1 RETURNING {SESSION_COLS}"
            ),
            delete_session: format!("SELECT {s}.mss_delete_session($1)"),
            list_sessions: format!(
                "SELECT {SESSION_COLS} FROM {s}.mss_sessions WHERE expires_at > $1 AND id > $2 \
                 ORDER BY id LIMIT $3"
            ),
            count_sessions: format!("SELECT count(*) FROM {s}.mss_sessions WHERE expires_at > $1"),
            get_state: format!(
                "SELECT st.value, st.version FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id AND st.key = $2 WHERE ss.id = $1 AND ss.expires_at > $3"
            ),
            set_state: format!(
                "SELECT o_status, o_version FROM {s}.mss_set_state($1, $2, $3, $4, $5, $6)"
            ),
            delete_state: format!("SELECT {s}.mss_delete_state($1, $2, $3)"),
            state_keys: format!(
                "SELECT st.key FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id WHERE ss.id = $1 AND ss.expires_at > $2 ORDER BY st.key"
            ),
            state_all: format!(
                "SELECT st.key, st.value, st.version FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id WHERE ss.id = $1 AND ss.expires_at > $2 ORDER BY st.key"
            ),
            // The session row's lock, taken by the UPDATE, orders appends; the
            // DELETE trims what `max_events_per_session` no longer keeps.
            append: format!(
                "WITH s AS (\
                   UPDATE {s}.mss_sessions SET last_seq = last_seq + 1, version = version + 1, \
                   last_activity = $6, expires_at = $6 + ttl_ms, \
                   trimmed_through = GREATEST(trimmed_through, last_seq + 1 - $7) \
                   WHERE id = $1 AND expires_at > $6 RETURNING id, last_seq, trimmed_through), \
                 ins AS (\
                   INSERT INTO {s}.mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) \
                   SELECT id, last_seq, $2, $3, $4, $5, $6 FROM s RETURNING seq), \
                 del AS (\
                   DELETE FROM {s}.mss_events e USING s \
                   WHERE e.session_id = s.id AND e.seq <= s.trimmed_through) \
                 SELECT ins.seq FROM ins{notify}"
            ),
            // Appends of several callers in one statement ($1-$5 arrays,
            // one element per append, in arrival order). The sessions' rows
            // are locked in id order, so two batches never deadlock; each
            // session's `last_seq` rises by its number of appends, which
            // take the new numbers in arrival order. An event that the same
            // batch already trims is not inserted. Answers (position, seq)
            // per append whose session is live.
            append_batch: format!(
                "WITH req AS (\
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
                   WITH ORDINALITY AS r(sid, stream, data, etype, retry, ord)), \
                 cnt AS (SELECT sid, count(*) AS n FROM req GROUP BY sid), \
                 lk AS (\
                   SELECT ss.id, cnt.n FROM {s}.mss_sessions ss JOIN cnt ON cnt.sid = ss.id \
                   WHERE ss.expires_at > $6 ORDER BY ss.id FOR UPDATE OF ss), \
                 s AS (\
                   UPDATE {s}.mss_sessions ss SET last_seq = ss.last_seq + lk.n, \
                   version = ss.version + lk.n, last_activity = $6, expires_at = $6 + ss.ttl_ms, \
                   trimmed_through = GREATEST(ss.trimmed_through, ss.last_seq + lk.n - $7) \
                   FROM lk WHERE ss.id = lk.id AND ss.expires_at > $6 \
                   RETURNING ss.id, ss.last_seq, ss.trimmed_through, lk.n), \
                 num AS (\
                   SELECT req.*, s.trimmed_through, \
                   s.last_seq - s.n + row_number() OVER (PARTITION BY req.sid ORDER BY req.ord) AS seq \
                   FROM req JOIN s ON s.id = req.sid), \
                 ins AS (\
                   INSERT INTO {s}.mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) \
                   SELECT sid, seq, stream, data, etype, retry, $6 FROM num WHERE seq > trimmed_through), \
                 del AS (\
                   DELETE FROM {s}.mss_events e USING s \
                   WHERE e.session_id = s.id AND e.seq <= s.trimmed_through) \
                 SELECT num.ord, num.seq FROM num{notify_batch}"
            ),
            events_after: format!(
                "SELECT ss.last_seq, ss.trimmed_through, e.seq, e.data, e.event_type, e.retry_ms, e.created_at \
                 FROM {s}.mss_sessions ss LEFT JOIN LATERAL (\
                   SELECT seq, data, event_type, retry_ms, created_at FROM {s}.mss_events \
                   WHERE session_id = ss.id AND seq > $3 AND stream_id = $2 ORDER BY seq LIMIT $5) e ON true \
                 WHERE ss.id = $1 AND ss.expires_at > $4 ORDER BY e.seq"
            ),
            // Rows a writer holds are skipped: a writer only touches live
            // sessions, and if it renewed one, the re-check of `expires_at`
            // after the lock drops it. So no deleted session has rows newer
            // than this statement's snapshot.
            cleanup: format!(
                "WITH gone AS (\
                   DELETE FROM {s}.mss_sessions WHERE id IN (\
                     SELECT id FROM {s}.mss_sessions WHERE expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   AND expires_at <= $1 RETURNING id), \
                 st AS (DELETE FROM {s}.mss_state WHERE session_id IN (SELECT id FROM gone) RETURNING 1), \
                 ev AS (DELETE FROM {s}.mss_events WHERE session_id IN (SELECT id FROM gone) RETURNING 1) \
                 SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM st), (SELECT count(*) FROM ev)"
            ),
        }
    }
}

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

/// A schema name: a lower-case SQL identifier that needs no quoting, short
/// enough that the notification channel name fits in 63 bytes.
fn valid_schema(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "option schema: {name:?} is not a valid schema name \
             (1-48 bytes of a-z, 0-9 and _, not starting with a digit or pg_)"
        )))
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(Error::invalid(format!(
            "option {name}: {other:?} is not true or false"
        ))),
    }
}

impl PostgresBackend {
    /// Connect, create the schema and apply migrations if needed.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<PostgresBackend> {
        let schema = url.take("schema").unwrap_or_else(|| "public".to_string());
        valid_schema(&schema)?;
        let pool_size: u32 = url.take_number("pool_size")?.unwrap_or(10);
        if !(1..=1000).contains(&pool_size) {
            return Err(Error::invalid("option pool_size must be 1-1000"));
        }
        let connect_timeout = url
            .take_duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(5));
        if connect_timeout.is_zero() {
            return Err(Error::invalid("option connect_timeout must be above 0"));
        }
        let statement_timeout = url
            .take_duration("statement_timeout")?
            .unwrap_or(Duration::from_secs(30));
        let notify = match url.take("notify") {
            Some(v) => parse_bool("notify", &v)?,
            None => true,
        };
        let driver = {
            let mut driver = form_urlencoded::Serializer::new(String::new());
            for name in DRIVER_PARAMS {
                if let Some(value) = url.take(name) {
                    driver.append_pair(name, &value);
                }
            }
            driver.finish()
        };
        url.finish()?;
        let mut conn_url = format!("postgres://{}", url.raw_location);
        if !driver.is_empty() {
            conn_url.push('?');
            conn_url.push_str(&driver);
        }
        let mut options = PgConnectOptions::from_str(&conn_url).map_err(|e| {
            Error::invalid(format!("invalid PostgreSQL URL: {}", map_err(e).message()))
        })?;
        if !statement_timeout.is_zero() {
            options = options.options([(
                "statement_timeout",
                format!("{}ms", statement_timeout.as_millis()),
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
            .max_connections(pool_size)
            .min_connections(0)
            .acquire_timeout(connect_timeout)
            .connect_lazy_with(options);
        // The first connection: the pool retries a refused connect until
        // connect_timeout, then gives up.
        let mut conn = pool.acquire().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to PostgreSQL at {target} within {}ms: {}",
                    connect_timeout.as_millis(),
                    map_err(e).message()
                ),
            )
        })?;
        let migrated = migrate(&mut conn, &schema).await;
        drop(conn);
        if let Err(e) = migrated {
            pool.close().await;
            return Err(e);
        }
        let channel = notify.then(|| format!("{schema}_mss_events"));
        let sql = Sql::new(&schema, channel.as_deref());
        let (appends, queue) = mpsc::channel(APPEND_QUEUE);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let runtime = crate::runtime::current_runtime()?;
        let statements: Arc<(String, String)> =
            Arc::new((sql.append.clone(), sql.append_batch.clone()));
        // One append worker per pooled connection: as many append
        // statements in flight as the pool allows. Appends that arrive while
        // every worker is busy wait and go together in the next free
        // worker's statement, so under load one commit carries many of them;
        // otherwise an append goes at once, alone.
        for _ in 0..pool_size {
            runtime.spawn(append_worker(
                queue.clone(),
                pool.clone(),
                statements.clone(),
                to_i64(limits.max_events_per_session),
            ));
        }
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
            Err(closed())
        } else {
            Ok(())
        }
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Unavailable, "the PostgreSQL store is closed")
}

/// Most appends in one statement.
const APPEND_BATCH: usize = 64;

/// Most appends waiting for a worker before callers wait to enqueue.
const APPEND_QUEUE: usize = 4096;

/// An append waiting for a worker, and where its answer goes: the seq, the
/// event back, and the time it was stored at.
struct AppendRequest {
    id: String,
    event: NewEvent,
    reply: oneshot::Sender<Result<(u64, NewEvent, i64)>>,
}

/// Take what is waiting (up to [`APPEND_BATCH`]) and store it with one
/// statement, until the store is dropped.
async fn append_worker(
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<AppendRequest>>>,
    pool: PgPool,
    statements: Arc<(String, String)>,
    max_events: i64,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < APPEND_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        append_batch(&pool, &statements, batch, max_events).await;
    }
}

/// Store `batch` (one statement, so one transaction) and answer each.
async fn append_batch(
    pool: &PgPool,
    statements: &(String, String),
    batch: Vec<AppendRequest>,
    max_events: i64,
) {
    let now = now_ms();
    let seqs: Result<Vec<Option<i64>>> = if let [one] = batch.as_slice() {
        // One append: the plain statement.
        let e = &one.event;
        sqlx::query_scalar(AssertSqlSafe(statements.0.as_str()))
            .bind(&one.id)
            .bind(&e.stream_id)
            .bind(e.data.as_ref().map(Json::as_str))
            .bind(e.event_type.as_deref())
            .bind(e.retry_ms.map(i64::from))
            .bind(now)
            .bind(max_events)
            .fetch_optional(pool)
            .await
            .map(|seq| vec![seq])
            .map_err(map_err)
    } else {
        let column = |f: fn(&AppendRequest) -> Option<&str>| -> Vec<Option<&str>> {
            batch.iter().map(f).collect()
        };
        let rows: std::result::Result<Vec<(i64, i64)>, sqlx::Error> =
            sqlx::query_as(AssertSqlSafe(statements.1.as_str()))
                .bind(column(|r| Some(r.id.as_str())))
                .bind(column(|r| Some(r.event.stream_id.as_str())))
                .bind(column(|r| r.event.data.as_ref().map(Json::as_str)))
                .bind(column(|r| r.event.event_type.as_deref()))
                .bind(
                    batch
                        .iter()
                        .map(|r| r.event.retry_ms.map(i64::from))
                        .collect::<Vec<_>>(),
                )
                .bind(now)
                .bind(max_events)
                .fetch_all(pool)
                .await;
        rows.map_err(map_err).map(|rows| {
            let mut seqs = vec![None; batch.len()];
            for (ord, seq) in rows {
                if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| seqs.get_mut(i)) {
                    *slot = Some(seq);
                }
            }
            seqs
        })
    };
    match seqs {
        Ok(seqs) => {
            for (request, seq) in batch.into_iter().zip(seqs) {
                let answer = match seq {
                    Some(seq) => Ok((seq as u64, request.event, now)),
                    None => Err(Error::session_not_found(&request.id)),
                };
                let _ = request.reply.send(answer);
            }
        }
        Err(e) => {
            for request in batch {
                let copy = Error::new(e.kind(), e.message().to_string());
                let _ = request.reply.send(Err(copy));
            }
        }
    }
}

/// Map a driver error onto the taxonomy; the driver type stays private.
fn map_err(e: sqlx::Error) -> Error {
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

fn parse_metadata(text: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("stored session metadata is not a JSON object: {e}"),
        )
    })
}

fn session_from_row(row: &PgRow) -> Result<Session> {
    let metadata: String = row.try_get(5).map_err(map_err)?;
    Ok(Session {
        id: row.try_get(0).map_err(map_err)?,
        created_at: row.try_get(1).map_err(map_err)?,
        last_activity: row.try_get(2).map_err(map_err)?,
        expires_at: row.try_get(3).map_err(map_err)?,
        ttl_ms: row.try_get::<i64, _>(4).map_err(map_err)? as u64,
        metadata: parse_metadata(&metadata)?,
        version: row.try_get::<i64, _>(6).map_err(map_err)? as u64,
        last_seq: row.try_get::<i64, _>(7).map_err(map_err)? as u64,
    })
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
        row.as_ref().map(session_from_row).transpose()
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
        let session = session_from_row(&row)?;
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
            Some(row) => session_from_row(&row),
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
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            id: id.to_string(),
            event,
            reply,
        };
        self.appends.send(request).await.map_err(|_| closed())?;
        let (seq, event, now) = answer.await.map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "the PostgreSQL store's append workers stopped (their runtime shut down)",
            )
        })??;
        Ok(Event::new(id.to_string(), seq, event, now))
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
        let mut items = Vec::with_capacity(rows.len().min(limit));
        for row in &rows {
            let Some(seq) = row.try_get::<Option<i64>, _>(2).map_err(map_err)? else {
                continue;
            };
            if items.len() == limit {
                break;
            }
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
        let more = rows.len() > limit;
        let next = if more {
            items.last().map(Event::wire_id)
        } else {
            None
        };
        Ok(Page::new(items, next))
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        self.check_open()?;
        let mut total = CleanupStats::default();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {}.mss_listeners WHERE expires_at <= $1",
            self.schema
        )))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        loop {
            let row = sqlx::query(AssertSqlSafe(self.sql.cleanup.as_str()))
                .bind(now_ms())
                .bind(CLEANUP_BATCH)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
            let sessions: i64 = row.try_get(0).map_err(map_err)?;
            let state: i64 = row.try_get(1).map_err(map_err)?;
            let events: i64 = row.try_get(2).map_err(map_err)?;
            total.add(CleanupStats::new(
                sessions as u64,
                state as u64,
                events as u64,
            ));
            if sessions < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }

    fn watch_appends(&self, listener: AppendListener) -> Result<bool> {
        let Some(channel) = self.channel.clone() else {
            return Ok(false);
        };
        self.check_open()?;
        let runtime = crate::runtime::current_runtime()?;
        runtime.spawn(listen(
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

/// Forward notifications on `channel` to `listener` until it declines or
/// the pool closes, keeping this store's row in `mss_listeners` fresh so
/// that appends notify. The driver reconnects after a connection loss;
/// notifications sent meanwhile are lost, which subscriptions cover by
/// polling.
async fn listen(
    pool: PgPool,
    schema: String,
    id: String,
    channel: String,
    listener: AppendListener,
) {
    let register = format!(
        "INSERT INTO {schema}.mss_listeners (id, expires_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at"
    );
    let mut pg: Option<PgListener> = None;
    let mut heartbeat = tokio::time::interval(LISTENER_HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if pool.is_closed() {
            return;
        }
        let current = match pg.as_mut() {
            Some(current) => current,
            None => {
                let connected = async {
                    let mut l = PgListener::connect_with(&pool).await?;
                    l.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(l)
                }
                .await;
                match connected {
                    Ok(l) => {
                        heartbeat.reset_immediately();
                        pg.insert(l)
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        };
        tokio::select! {
            received = current.recv() => match received {
                Ok(notification) => {
                    if !listener(notification.payload()) {
                        break;
                    }
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(_) => {
                    pg = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            _ = heartbeat.tick() => {
                // Best effort: until it succeeds, appends may not notify and
                // subscriptions poll.
                let _ = sqlx::query(AssertSqlSafe(register.as_str()))
                    .bind(&id)
                    .bind(now_ms() + 3 * LISTENER_HEARTBEAT.as_millis() as i64)
                    .execute(&pool)
                    .await;
            }
        }
    }
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {schema}.mss_listeners WHERE id = $1"
    )))
    .bind(&id)
    .execute(&pool)
    .await;
}
