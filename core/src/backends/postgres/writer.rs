//! Append batching: a store hands its appends to one worker per pooled
//! connection. A worker that is idle stores an append at once, alone; when
//! appends wait, the next free worker stores all of them (up to
//! [`APPEND_BATCH`]) with one statement, so one commit.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::connect::map_err;
use super::sql::Sql;
use crate::backends::common::closed;
use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
use crate::model::{Event, NewEvent};
use crate::time::now_ms;

/// Most appends in one statement.
const APPEND_BATCH: usize = 64;

/// Most appends waiting for a worker before callers wait to enqueue.
const APPEND_QUEUE: usize = 4096;

/// An append waiting for a worker, and where its answer goes: the seq, the
/// event back, and the time it was stored at.
pub(super) struct AppendRequest {
    id: String,
    event: NewEvent,
    reply: oneshot::Sender<Result<(u64, NewEvent, i64)>>,
}

/// Start one append worker per pooled connection (`pool_size`) on
/// `runtime`, and return the queue they take appends from.
///
/// As many append statements are in flight as the pool allows. Appends that
/// arrive while every worker is busy wait and go together in the next free
/// worker's statement, so under load one commit carries many of them;
/// otherwise an append goes at once, alone.
pub(super) fn spawn_workers(
    runtime: &tokio::runtime::Handle,
    pool: &PgPool,
    pool_size: u32,
    sql: &Sql,
    max_events: i64,
) -> mpsc::Sender<AppendRequest> {
    let (appends, queue) = mpsc::channel(APPEND_QUEUE);
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let statements: Arc<(String, String)> =
        Arc::new((sql.append.clone(), sql.append_batch.clone()));
    for _ in 0..pool_size {
        runtime.spawn(append_worker(
            queue.clone(),
            pool.clone(),
            statements.clone(),
            max_events,
        ));
    }
    appends
}

/// Append `event` to session `id` through the workers behind `appends`.
pub(super) async fn append(
    appends: &mpsc::Sender<AppendRequest>,
    id: &str,
    event: NewEvent,
) -> Result<Event> {
    let (reply, answer) = oneshot::channel();
    let request = AppendRequest {
        id: id.to_string(),
        event,
        reply,
    };
    appends
        .send(request)
        .await
        .map_err(|_| closed("PostgreSQL"))?;
    let (seq, event, now) = answer.await.map_err(|_| {
        Error::new(
            ErrorKind::Unavailable,
            "the PostgreSQL store's append workers stopped (their runtime shut down)",
        )
    })??;
    Ok(Event::new(id.to_string(), seq, event, now))
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
            tracing::warn!(
                appends = batch.len(),
                error = %e,
                "a PostgreSQL append worker could not store its batch (rolled back); each of its appends fails with this error"
            );
            for request in batch {
                let copy = Error::new(e.kind(), e.message().to_string());
                let _ = request.reply.send(Err(copy));
            }
        }
    }
}
