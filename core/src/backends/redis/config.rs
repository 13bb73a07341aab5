//! The Redis backend's own URL options (the table in the module docs),
//! taken out of the [`StoreUrl`] and checked into a [`RedisConfig`] before
//! anything connects.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::options::StoreUrl;

/// The most shards a key prefix may have.
pub(super) const MAX_SHARDS: u32 = 256;

/// Which kind of server the `cluster` option asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClusterMode {
    Auto,
    Yes,
    No,
}

/// The options of a `redis://` or `rediss://` URL, checked.
///
/// No `Debug`: the location may hold a password.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    /// `redis`, or `rediss` for TLS.
    pub(super) scheme: String,
    /// The location as written (`[user:password@]host[:port][/db]`), for
    /// the redis crate to parse.
    pub(super) location: String,
    /// `key_prefix`: the prefix of every key and of the channel.
    pub(super) key_prefix: String,
    /// `connect_timeout`.
    pub(super) connect_timeout: Duration,
    /// `timeout`: how long to wait for a reply.
    pub(super) timeout: Duration,
    /// `expire_grace`: how long after expiry Redis drops a session's keys.
    pub(super) expire_grace: Duration,
    /// `tls_ca_file`: PEM file of the certificate authorities to trust.
    pub(super) tls_ca_file: Option<String>,
    /// `shards`: the shard count asked for (the default when `None`).
    pub(super) shards: Option<u32>,
    /// `cluster`.
    pub(super) cluster: ClusterMode,
    /// `cluster_nodes`: more nodes to try at open, each `host:port` as
    /// written (checked when connecting).
    pub(super) cluster_nodes: Vec<String>,
}

impl RedisConfig {
    /// Take the Redis options out of `url` and check them; any other option
    /// left in `url` is refused.
    pub(crate) fn from_url(url: &mut StoreUrl) -> Result<RedisConfig> {
        let key_prefix = url.take("key_prefix").unwrap_or_else(|| "mss:".to_string());
        valid_prefix(&key_prefix)?;
        let connect_timeout = url
            .take_duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(5));
        let timeout = url
            .take_duration("timeout")?
            .unwrap_or(Duration::from_secs(5));
        let expire_grace = url
            .take_duration("expire_grace")?
            .unwrap_or(Duration::from_secs(60));
        for (name, d) in [("connect_timeout", connect_timeout), ("timeout", timeout)] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(Error::invalid(format!("option {name} must be 1 ms to 1 h")));
            }
        }
        if expire_grace > Duration::from_secs(365 * 86400) {
            return Err(Error::invalid(
                "option expire_grace must be at most 365 days",
            ));
        }
        let shards: Option<u32> = url.take_number("shards")?;
        if shards.is_some_and(|n| !(1..=MAX_SHARDS).contains(&n)) {
            return Err(Error::invalid(format!(
                "option shards must be 1-{MAX_SHARDS}"
            )));
        }
        let cluster = match url.take("cluster").as_deref() {
            None | Some("auto") => ClusterMode::Auto,
            Some("true") => ClusterMode::Yes,
            Some("false") => ClusterMode::No,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "option cluster: {other:?} is not auto, true or false"
                )));
            }
        };
        let more_nodes = url.take("cluster_nodes");
        let tls_ca_file = url.take("tls_ca_file");
        url.finish()?;
        if cluster == ClusterMode::No && more_nodes.is_some() {
            return Err(Error::invalid("option cluster_nodes needs a cluster"));
        }
        if tls_ca_file.is_some() && url.scheme != "rediss" {
            return Err(Error::invalid("option tls_ca_file needs a rediss:// URL"));
        }
        Ok(RedisConfig {
            scheme: url.scheme.clone(),
            location: url.raw_location.clone(),
            key_prefix,
            connect_timeout,
            timeout,
            expire_grace,
            tls_ca_file,
            shards,
            cluster,
            cluster_nodes: more_nodes
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::to_string)
                .collect(),
        })
    }
}

fn valid_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > 128
        || prefix
            .bytes()
            .any(|b| !(0x21..=0x7e).contains(&b) || b == b'{' || b == b'}')
    {
        return Err(Error::invalid(format!(
            "option key_prefix: {:?} is not valid (0-128 bytes of visible ASCII without {{ or }})",
            prefix.chars().take(140).collect::<String>()
        )));
    }
    Ok(())
}
