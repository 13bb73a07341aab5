//! The DynamoDB backend's own URL options (the table in the module docs),
//! taken out of the [`StoreUrl`] and checked into a [`DynamoConfig`] before
//! anything connects.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::options::StoreUrl;

/// The most shard partitions a table may have.
pub(super) const MAX_SHARDS: u32 = 256;

/// The table and options of a `dynamodb://` URL, checked.
#[derive(Debug, Clone)]
pub(crate) struct DynamoConfig {
    /// The table name: 3-255 characters of `a-z A-Z 0-9 _ - .`.
    pub(super) table: String,
    /// `region`: the AWS region (else the region chain).
    pub(super) region: Option<String>,
    /// `endpoint`: a DynamoDB-compatible server's `http(s)://` URL.
    pub(super) endpoint: Option<String>,
    /// `create_table`: create the table when missing.
    pub(super) create_table: bool,
    /// `connect_timeout`.
    pub(super) connect_timeout: Duration,
    /// `timeout`: one operation, retries included.
    pub(super) timeout: Duration,
    /// `max_attempts`: attempts per request for transient errors.
    pub(super) max_attempts: u32,
    /// `ttl_grace`: how long after expiry native TTL may delete a session.
    pub(super) ttl_grace: Duration,
    /// `shards`: the shard count asked for (the default when `None`).
    pub(super) shards: Option<u32>,
}

impl DynamoConfig {
    /// Take the table from `url.location` and the DynamoDB options out of
    /// `url`, and check them; any other option left in `url` is refused.
    pub(crate) fn from_url(url: &mut StoreUrl) -> Result<DynamoConfig> {
        let table = url.location.clone();
        if table.is_empty() {
            return Err(Error::invalid(
                "dynamodb:// needs a table name, e.g. dynamodb://sessions?region=eu-west-1",
            ));
        }
        if table.len() < 3
            || table.len() > 255
            || !table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(Error::invalid(format!(
                "invalid DynamoDB table name {table:?}: 3-255 characters of a-z, A-Z, 0-9, '_', '-' and '.'"
            )));
        }
        let region = url.take("region").filter(|r| !r.is_empty());
        if let Some(r) = &region
            && !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::invalid(format!(
                "option region: {r:?} is not a region name"
            )));
        }
        let endpoint = url.take("endpoint").filter(|e| !e.is_empty());
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(Error::invalid(format!(
                "option endpoint: {e:?} is not an http:// or https:// URL"
            )));
        }
        let create_table = match url.take("create_table").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "option create_table: {other:?} is not true or false"
                )));
            }
        };
        let connect_timeout = url
            .take_duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(3));
        let timeout = url
            .take_duration("timeout")?
            .unwrap_or(Duration::from_secs(10));
        for (name, d) in [("connect_timeout", connect_timeout), ("timeout", timeout)] {
            if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
                return Err(Error::invalid(format!("option {name} must be 1 ms to 1 h")));
            }
        }
        let max_attempts: u32 = url.take_number("max_attempts")?.unwrap_or(3);
        if !(1..=20).contains(&max_attempts) {
            return Err(Error::invalid("option max_attempts must be 1-20"));
        }
        let ttl_grace = url
            .take_duration("ttl_grace")?
            .unwrap_or(Duration::from_secs(3600));
        let shards: Option<u32> = url.take_number("shards")?;
        if shards.is_some_and(|n| !(1..=MAX_SHARDS).contains(&n)) {
            return Err(Error::invalid("option shards must be 1-256"));
        }
        url.finish()?;
        Ok(DynamoConfig {
            table,
            region,
            endpoint,
            create_table,
            connect_timeout,
            timeout,
            max_attempts,
            ttl_grace,
            shards,
        })
    }
}
