//! The writes that are not on the fast path (creates, updates, touches,
//! deletes, state deletes, cleanup), one statement at a time inside the
//! writer's open transaction.

use sqlx::sqlite::SqliteConnection;

use super::connect::map_err;
use super::writer::{Fail, Op, Reply, unexpected};
use crate::backends::common::{parse_metadata, session_from_row};
use crate::error::{Error, Result};
use crate::model::CleanupStats;
use crate::options::Limits;
use crate::validate;

/// Sessions removed per cleanup transaction, so appends interleave.
pub(super) const CLEANUP_BATCH: i64 = 500;

fn refuse<T>(e: Error) -> Result<T, Fail> {
    Err(Fail::Refused(e))
}

/// Apply one write inside the writer's open transaction. Every check that
/// can refuse runs before the first write.
pub(super) async fn apply(
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
            Ok(Reply::Session(
                session_from_row(&row, map_err).map_err(Fail::Abort)?,
            ))
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
            Ok(Reply::Session(
                session_from_row(&row, map_err).map_err(Fail::Abort)?,
            ))
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
                Some(row) => Ok(Reply::Session(
                    session_from_row(&row, map_err).map_err(Fail::Abort)?,
                )),
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
