//! What several backends share: paging, stored metadata, and the errors for
//! a closed store or a corrupt record.

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// The error of a call on a store that was closed; `backend` names it
/// ("SQLite", "PostgreSQL", …).
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(dead_code)
)]
pub(crate) fn closed(backend: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("the {backend} store is closed"),
    )
}

/// The error of a stored record that cannot be read back.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(dead_code)
)]
pub(crate) fn corrupt(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Backend, message.into())
}

/// Session metadata as stored: a JSON object's text.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(dead_code)
)]
pub(crate) fn parse_metadata(text: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(text)
        .map_err(|e| corrupt(format!("stored session metadata is not a JSON object: {e}")))
}

/// A session read from a SQL row whose columns are, in order: `id`,
/// `created_at`, `last_activity`, `expires_at`, `ttl_ms`, `metadata` (JSON
/// text), `version`, `last_seq`. `map_err` maps the driver's errors.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn session_from_row<R>(
    row: &R,
    map_err: fn(sqlx::Error) -> Error,
) -> Result<crate::model::Session>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let metadata: String = row.try_get(5).map_err(map_err)?;
    Ok(crate::model::Session {
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
