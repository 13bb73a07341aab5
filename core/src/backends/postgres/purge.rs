//! Cleanup: expired listener rows, then expired sessions with their state
//! and events, in batches that skip rows a writer holds.

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row};

use super::connect::map_err;
use super::sql::Sql;
use crate::error::Result;
use crate::model::CleanupStats;
use crate::time::now_ms;

/// Sessions removed per cleanup statement, so appends interleave.
const CLEANUP_BATCH: i64 = 500;

/// Remove the expired rows of `schema`, [`CLEANUP_BATCH`] sessions per
/// statement, until a statement finds fewer.
pub(super) async fn cleanup_expired(
    pool: &PgPool,
    schema: &str,
    sql: &Sql,
) -> Result<CleanupStats> {
    let mut total = CleanupStats::default();
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {schema}.mss_listeners WHERE expires_at <= $1"
    )))
    .bind(now_ms())
    .execute(pool)
    .await
    .map_err(map_err)?;
    loop {
        let row = sqlx::query(AssertSqlSafe(sql.cleanup.as_str()))
            .bind(now_ms())
            .bind(CLEANUP_BATCH)
            .fetch_one(pool)
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
