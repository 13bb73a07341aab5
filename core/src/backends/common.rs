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
