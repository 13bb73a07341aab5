//! Redis: a namespace is a key prefix of its own, deleted when the namespace
//! drops (on every primary of a cluster); and raw access for tests that look
//! at the keys behind the store's back.

use crate::namespace::CleanupFn;

/// Deletes every key of a namespace's prefix (SCAN + DEL) when the
/// namespace drops.
#[cfg(feature = "redis")]
pub(crate) fn redis_cleanup(url: String, prefix: String) -> Option<CleanupFn> {
    Some(Box::new(move || {
        crate::namespace::block_on_fresh(async move {
            let _ = delete_redis_prefix(&url, &prefix).await;
        })
    }))
}

/// Without the feature no key is ever written.
#[cfg(not(feature = "redis"))]
pub(crate) fn redis_cleanup(_url: String, _prefix: String) -> Option<CleanupFn> {
    None
}

/// Delete every key under `prefix` on the Redis server at `url` (on every
/// primary, if it is a cluster node); returns how many were deleted.
#[cfg(feature = "redis")]
pub async fn delete_redis_prefix(url: &str, prefix: &str) -> redis::RedisResult<u64> {
    let url = url.split('?').next().unwrap_or(url);
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
        return delete_on_node(&mut conn, prefix).await;
    }
    // `CLUSTER NODES`: one line per node, `id host:port@bus flags …`.
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    let mut deleted = 0;
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        let addr = addr.split('@').next().unwrap_or(addr);
        let node = redis::Client::open(format!("redis://{addr}"))?;
        let mut node = node.get_multiplexed_async_connection().await?;
        deleted += delete_on_node(&mut node, prefix).await?;
    }
    Ok(deleted)
}

/// SCAN one server for `prefix*` and delete what it finds, key by key (the
/// keys of a cluster node are in many slots).
#[cfg(feature = "redis")]
async fn delete_on_node(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<u64> {
    let pattern = format!("{}*", prefix.replace('*', "\\*").replace('?', "\\?"));
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("UNLINK").arg(key);
            }
            let counts: Vec<u64> = pipe.query_async(conn).await?;
            deleted += counts.iter().sum::<u64>();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// A connection of a test's own to the Redis server at `url`.
#[cfg(feature = "redis")]
pub async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap_or_else(|e| panic!("a Redis URL {url:?}: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to Redis at {url}: {e}"))
}

/// The keys under `prefix` on the server of `conn` (`KEYS prefix*`), sorted.
#[cfg(feature = "redis")]
pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}
