//! The writer: one task owns the write connection and runs every write
//! sent to it, taking all that wait (up to `write_batch_max`) into one
//! `BEGIN IMMEDIATE … COMMIT` group commit, then answers each caller.

use serde_json::{Map, Value};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::apply::apply;
use super::connect::map_err;
use super::fast::run_fast;
use crate::backend::Expected;
use crate::backends::common::closed;
use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Session};
use crate::options::Limits;
use crate::time::now_ms;

/// A write, as sent to the writer.
pub(super) enum Op {
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

/// What a write answers.
pub(super) enum Reply {
    Session(Session),
    Flag(bool),
    Version(u64),
    Event(Event),
    Cleanup(CleanupStats),
}

/// A write and where its answer goes.
pub(super) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// Why an operation did not complete.
pub(super) enum Fail {
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

/// Run the writes sent on `rx` until [`Op::Close`] or until every sender
/// is gone, then answer what is left with the closed error.
pub(super) async fn writer_loop(
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
                    _ => Err(closed("SQLite")),
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
        let _ = job.reply.send(Err(closed("SQLite")));
    }
    let _ = conn.close().await;
}

/// Run one statement that returns nothing.
pub(super) async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
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
                tracing::warn!(
                    writes = batch.len(),
                    error = %e,
                    "SQLite write transaction failed and was rolled back; its writes fail with this error"
                );
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(Error::new(e.kind(), e.message().to_string())));
                }
                return;
            }
            tracing::warn!(
                writes = batch.len(),
                error = %e,
                "SQLite group commit failed and was rolled back; re-running each of its writes in a transaction of its own"
            );
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

/// The writes the fast path handles: appends and state writes.
fn is_fast(op: &Op) -> bool {
    matches!(op, Op::Append(..) | Op::SetState { .. })
}

/// A reply of the wrong kind: a bug, never a caller's fault.
pub(super) fn unexpected() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the SQLite writer answered with the wrong reply type",
    )
}
