//! The options of a `sqlite://PATH` URL, parsed into a [`SqliteConfig`].

use std::time::Duration;

use sqlx::sqlite::SqliteSynchronous;

use crate::error::{Error, Result};
use crate::options::StoreUrl;

/// Everything a SQLite store is opened with, besides the common limits.
#[derive(Debug, Clone)]
pub(crate) struct SqliteConfig {
    /// The database file (the URL's location).
    pub path: String,
    /// `synchronous`: `normal` (the default) or `full`.
    pub synchronous: SqliteSynchronous,
    /// `busy_timeout`: how long to wait for another process's write lock.
    pub busy_timeout: Duration,
    /// `read_pool_size`: reader connections, 1-64.
    pub read_pool_size: u32,
    /// `write_batch_max`: most writes in one group commit, 1-10000.
    pub write_batch_max: usize,
}

impl SqliteConfig {
    /// Take the SQLite options out of `url`, then fail on any left over.
    pub fn from_url(url: &mut StoreUrl) -> Result<SqliteConfig> {
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
        let write_batch_max: usize = url.take_number("write_batch_max")?.unwrap_or(256);
        if !(1..=10_000).contains(&write_batch_max) {
            return Err(Error::invalid("option write_batch_max must be 1-10000"));
        }
        url.finish()?;
        Ok(SqliteConfig {
            path,
            synchronous,
            busy_timeout,
            read_pool_size,
            write_batch_max,
        })
    }
}
