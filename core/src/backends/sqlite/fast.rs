//! The fast path: a batch's appends and state writes compiled into one
//! multi-statement SQL call, so the batch costs one round trip to SQLite's
//! thread instead of one per statement.

use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};

use super::connect::map_err;
use super::writer::{Op, Reply, unexpected};
use crate::backend::{Expected, check_expected};
use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
use crate::model::Event;
use crate::options::Limits;

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
pub(super) async fn run_fast(
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
