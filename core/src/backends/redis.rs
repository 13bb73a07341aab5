//! `redis://…` and `rediss://…` (TLS by rustls): Redis, a single server or a
//! Redis Cluster, shared by any number of processes.
//!
//! # Design
//!
//! - **Shards.** The sessions of a key prefix are spread over a fixed number
//!   of shards (option `shards`; 1 on a single server and 16 on a cluster
//!   unless set, written under `{prefix}config` by the prefix's first opener
//!   and fixed afterwards). A session's shard is the 64-bit FNV-1a hash of its
//!   id modulo the shard count, and every key of a shard, so every key of a
//!   session, carries the shard's hash tag. One shard is one cluster slot:
//!   every script touches one slot only, so the scripts work unchanged on a
//!   cluster. The tags are chosen so that the shards' slots are evenly
//!   spaced over the 16384 slots, which spreads them evenly over a cluster's
//!   nodes whose slots are split into equal ranges (`redis-cli --cluster
//!   create` does so).
//! - **Keys.** With `T` the shard's tag: `{prefix}{T}:{id}:s` (a hash:
//!   timestamps, TTL, metadata, version, `last_seq`, `trimmed_through`),
//!   `…:{id}:st` (a hash: state key → `"VERSION JSON"`), `…:{id}:ev` (a hash:
//!   seq → event record) and `…:{id}:ix` (a sorted set of
//!   `stream NUL seq(20 digits)`, ordered lexicographically, so a
//!   stream-scoped replay is one `ZRANGEBYLEX`). Two indexes per shard list
//!   sessions without `KEYS`: `{prefix}{T}:exp` (sorted set of ids by
//!   `expires_at`) and `{prefix}{T}:ids` (ids in id order).
//! - **Every operation on a session is one Lua script** (`EVALSHA`, loaded
//!   again after a server restart or on a new cluster node), so one atomic
//!   step and one round trip: an append bumps `last_seq` and the version,
//!   stores the event, trims beyond `max_events_per_session` (raising
//!   `trimmed_through`, which `CursorExpired` is decided on), slides the TTL
//!   and `PUBLISH`es the session id. Redis runs scripts one at a time, so
//!   commit order is seq order. `set_state` with a condition is one script
//!   too. Listing, counting and cleanup run one script per shard, the shards
//!   at once.
//! - **Time** is the server's clock (`TIME` inside the scripts), so processes
//!   on hosts with different clocks agree on expiry.
//! - **Expiry.** Every read compares `expires_at` with the server's clock.
//!   Every write also sets the native TTL (`PEXPIRE`) of each key of the
//!   session to the session TTL plus `expire_grace`, so Redis drops an
//!   abandoned session by itself; the grace leaves `cleanup_expired` time to
//!   remove the index entries and report what it removed.
//!   `cleanup_expired` reaps up to 500 sessions of a shard per script.
//! - **`max_sessions`** is exact with one shard: the create script counts the
//!   live sessions. With several shards the other shards are counted first,
//!   so concurrent creates in different shards can overshoot the limit by
//!   the number of creates in flight.
//! - **Live delivery across processes:** a store with subscribers listens on
//!   the pub/sub channel `{prefix}appends` (reconnecting after a connection
//!   loss; subscriptions poll meanwhile). On a cluster, classic pub/sub
//!   reaches every node, and the listener uses the cluster connection's
//!   RESP3 subscription, which resubscribes after a failover by itself.
//! - **Connections:** one multiplexed connection with automatic reconnection
//!   (the redis crate's `ConnectionManager`), or on a cluster the crate's
//!   cluster connection (one per node, following `MOVED`/`ASK` redirects and
//!   slot migrations). A server restart or a failover costs the calls made
//!   while it lasts (`Unavailable` or `Timeout`); the store needs no
//!   reopening.
//!
//! # Redis Cluster
//!
//! A `redis://` URL naming any node of a cluster works: on open the store
//! asks the server (`INFO cluster`) and switches to a cluster connection,
//! discovering the other nodes. `cluster=true` insists on a cluster,
//! `cluster=false` on a single server (a cluster node then answers `MOVED`
//! for the keys it does not serve, which is a `Backend` error).
//! `cluster_nodes` names more nodes to try when the first one is down at
//! open. A cluster has no databases: the URL's database must be 0.
//!
//! # Options (URL query parameters)
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `key_prefix` | `mss:` | prefix of every key and of the channel: 0-128 bytes of visible ASCII without `{` or `}` |
//! | `connect_timeout` | `5s` | how long to wait for a connection (an unreachable server is `Unavailable` after it) |
//! | `timeout` | `5s` | how long to wait for a reply (`Timeout` past it) |
//! | `expire_grace` | `1m` | how long after a session expires Redis removes its keys natively |
//! | `tls_ca_file` | system roots | `rediss://` only: PEM file of the certificate authorities to trust |
//! | `shards` | 1, or 16 on a cluster | shards of a new key prefix (1–256); stored under `{prefix}config`, and an opener asking for another count is refused |
//! | `cluster` | `auto` | `auto` asks the server, `true` needs a cluster, `false` a single server |
//! | `cluster_nodes` | none | more cluster nodes to try at open: `host:port,host:port` (same scheme and credentials as the URL) |
//!
//! The location is passed to the redis crate: `redis://[user:password@]host[:port][/db]`,
//! `rediss://…` for TLS (the server's certificate is checked against the
//! system's roots, or `tls_ca_file`).

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Script,
    ScriptInvocation, Value,
};
use serde_json::{Map, Value as JsonValue};
use tokio::sync::watch;

use crate::backend::{
    AppendListener, Backend, BackendInfo, Expected, check_cursor, check_expected,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl, duration_ms};
use crate::validate;

/// Sessions removed per cleanup script.
const CLEANUP_BATCH: usize = 500;

/// How often the pub/sub listener checks that its connection is alive.
const PUBSUB_PING: Duration = Duration::from_secs(15);

/// Most attempts of `update_session`'s compare-and-set on the metadata.
const UPDATE_ATTEMPTS: u32 = 1000;

/// Shards of a new key prefix on a single server and on a cluster.
const DEFAULT_SHARDS: u32 = 1;
const DEFAULT_CLUSTER_SHARDS: u32 = 16;
const MAX_SHARDS: u32 = 256;

/// The layout of the keys, stored under `{prefix}config`.
const LAYOUT: u32 = 2;

/// Redis Cluster's slot count.
const SLOTS: u32 = 16384;

macro_rules! lua {
    ($file:literal) => {
        concat!(
            include_str!("redis/common.lua"),
            "\n",
            include_str!(concat!("redis/", $file))
        )
    };
}

/// The scripts, hashed once.
struct Scripts {
    config: Script,
    create: Script,
    get: Script,
    get_many: Script,
    touch: Script,
    update: Script,
    delete: Script,
    get_state: Script,
    set_state: Script,
    delete_state: Script,
    state_all: Script,
    append: Script,
    events_after: Script,
    list: Script,
    count: Script,
    expired: Script,
    reap: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 17] {
        [
            &self.config,
            &self.create,
            &self.get,
            &self.get_many,
            &self.touch,
            &self.update,
            &self.delete,
            &self.get_state,
            &self.set_state,
            &self.delete_state,
            &self.state_all,
            &self.append,
            &self.events_after,
            &self.list,
            &self.count,
            &self.expired,
            &self.reap,
        ]
    }
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    config: Script::new(lua!("config.lua")),
    create: Script::new(lua!("create.lua")),
    get: Script::new(lua!("get.lua")),
    get_many: Script::new(lua!("get_many.lua")),
    touch: Script::new(lua!("touch.lua")),
    update: Script::new(lua!("update.lua")),
    delete: Script::new(lua!("delete.lua")),
    get_state: Script::new(lua!("get_state.lua")),
    set_state: Script::new(lua!("set_state.lua")),
    delete_state: Script::new(lua!("delete_state.lua")),
    state_all: Script::new(lua!("state_all.lua")),
    append: Script::new(lua!("append.lua")),
    events_after: Script::new(lua!("events_after.lua")),
    list: Script::new(lua!("list.lua")),
    count: Script::new(lua!("count.lua")),
    expired: Script::new(lua!("expired.lua")),
    reap: Script::new(lua!("reap.lua")),
});

/// A connection to a single server or to a cluster; cheap to clone, both
/// reconnect by themselves.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the pub/sub listener connects: the store's server, or the
/// cluster (a client of its own, speaking RESP3 for pushes).
#[derive(Clone)]
enum Listen {
    Single(redis::Client),
    Cluster(Servers),
}

/// The Redis backend.
pub struct RedisBackend {
    conn: Conn,
    listen: Listen,
    prefix: String,
    channel: String,
    /// The hash tag of each shard.
    tags: Vec<String>,
    grace_ms: u64,
    connect_timeout: Duration,
    /// The most a call may take: a reconnect, then a reply.
    call_timeout: Duration,
    target: String,
    limits: Limits,
    closed: AtomicBool,
    /// Set on close; dropped with the backend: either stops the listener.
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("shards", &self.tags.len())
            .field("cluster", &matches!(self.conn, Conn::Cluster(_)))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
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

/// CRC16-XMODEM, as Redis Cluster hashes a key's tag onto its slot.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a hash tag.
fn slot(tag: &str) -> u32 {
    u32::from(crc16(tag.as_bytes())) % SLOTS
}

/// The hash tags of `shards` shards: shard `i`'s tag is the first `i.n`
/// (n = 0, 1, …) whose slot lies in the `i`-th of `shards` equal slot
/// ranges, so the shards' slots are evenly spaced.
fn shard_tags(shards: u32) -> Vec<String> {
    (0..shards)
        .map(|i| {
            let range = (i * SLOTS / shards)..((i + 1) * SLOTS / shards);
            (0u32..)
                .map(|n| format!("{i}.{n}"))
                .find(|tag| range.contains(&slot(tag)))
                .expect("every slot range is hit by some tag")
        })
        .collect()
}

/// Which kind of server the `cluster` option asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClusterMode {
    Auto,
    Yes,
    No,
}

impl RedisBackend {
    /// Connect (TLS for `rediss://`, a cluster connection on a cluster),
    /// load the scripts and read or write the prefix's shard count.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<RedisBackend> {
        let prefix = url.take("key_prefix").unwrap_or_else(|| "mss:".to_string());
        valid_prefix(&prefix)?;
        let connect_timeout = url
            .take_duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(5));
        let timeout = url
            .take_duration("timeout")?
            .unwrap_or(Duration::from_secs(5));
        let grace = url
            .take_duration("expire_grace")?
            .unwrap_or(Duration::from_secs(60));
        for (name, d) in [("connect_timeout", connect_timeout), ("timeout", timeout)] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(Error::invalid(format!("option {name} must be 1 ms to 1 h")));
            }
        }
        if grace > Duration::from_secs(365 * 86400) {
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
        let mode = match url.take("cluster").as_deref() {
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
        if mode == ClusterMode::No && more_nodes.is_some() {
            return Err(Error::invalid("option cluster_nodes needs a cluster"));
        }
        if url.scheme == "rediss" {
            // rustls needs one process-wide crypto provider: ring, unless
            // the application installed another one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let root_cert = match tls_ca_file {
            None => None,
            Some(path) => {
                if url.scheme != "rediss" {
                    return Err(Error::invalid("option tls_ca_file needs a rediss:// URL"));
                }
                let pem = std::fs::read(&path).map_err(|e| {
                    Error::invalid(format!("option tls_ca_file: cannot read {path:?}: {e}"))
                })?;
                // The driver would take a file without certificates as "trust
                // nothing" and fail every handshake: say so now.
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let certs: std::result::Result<Vec<_>, _> =
                    CertificateDer::pem_slice_iter(&pem).collect();
                if !certs.is_ok_and(|c| !c.is_empty()) {
                    return Err(Error::invalid(format!(
                        "option tls_ca_file: {path:?} holds no PEM certificate"
                    )));
                }
                Some(pem)
            }
        };
        let conn_url = format!("{}://{}", url.scheme, url.raw_location);
        let info = conn_url
            .as_str()
            .into_connection_info()
            .map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
        let mut nodes = vec![info.clone()];
        for node in more_nodes.iter().flat_map(|s| s.split(',')) {
            nodes.push(other_node(&info, node)?);
        }
        let target = describe(&info);
        let setup = Servers {
            nodes,
            root_cert,
            connect_timeout,
            timeout,
        };
        let unavailable = |detail: String| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to Redis at {target} within {}ms: {detail}",
                    connect_timeout.as_millis()
                ),
            )
        };
        let connected = tokio::time::timeout(connect_timeout + timeout, connect(mode, setup)).await;
        let (conn, listen) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e))
                if mode == ClusterMode::Yes
                    && e.to_string().contains("cluster support disabled") =>
            {
                return Err(Error::invalid(format!(
                    "option cluster=true: Redis at {target} is not a cluster node"
                )));
            }
            Ok(Err(e)) => {
                let mapped = map_err(e);
                return Err(match mapped.kind() {
                    ErrorKind::Unavailable | ErrorKind::Timeout => {
                        unavailable(mapped.message().to_string())
                    }
                    _ => mapped,
                });
            }
            Err(_) => return Err(unavailable("no connection".to_string())),
        };
        let mut backend = RedisBackend {
            conn,
            listen,
            channel: format!("{prefix}appends"),
            prefix,
            tags: Vec::new(),
            grace_ms: duration_ms(grace),
            connect_timeout,
            call_timeout: connect_timeout + timeout,
            target,
            limits,
            closed: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        };
        backend.tags = shard_tags(backend.prefix_shards(shards).await?);
        Ok(backend)
    }

    /// The prefix's shard count: the stored one, or (first opener) `wanted`
    /// or the default, stored. An opener asking for another count than the
    /// stored one is refused.
    async fn prefix_shards(&self, wanted: Option<u32>) -> Result<u32> {
        let default = match self.conn {
            Conn::Single(_) => DEFAULT_SHARDS,
            Conn::Cluster(_) => DEFAULT_CLUSTER_SHARDS,
        };
        let mut inv = SCRIPTS.config.prepare_invoke();
        inv.key(format!("{}config", self.prefix))
            .arg(wanted.unwrap_or(default))
            .arg(LAYOUT);
        let reply = into_array(self.run(inv, false).await?)?
            .ok_or_else(|| corrupt("the prefix's config is missing"))?;
        let [shards, layout] = reply.as_slice() else {
            return Err(corrupt("the prefix's config lacks fields"));
        };
        let (shards, layout) = (as_int(shards)?, as_int(layout)?);
        if layout != i64::from(LAYOUT) {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "key prefix {:?} holds data of key layout {layout}, this version reads layout {LAYOUT}",
                    self.prefix
                ),
            ));
        }
        let shards = u32::try_from(shards)
            .ok()
            .filter(|n| (1..=MAX_SHARDS).contains(n))
            .ok_or_else(|| corrupt("the prefix's shard count is out of range"))?;
        if let Some(w) = wanted
            && w != shards
        {
            return Err(Error::invalid(format!(
                "option shards={w}: key prefix {:?} already uses {shards} shards, and this cannot change",
                self.prefix
            )));
        }
        Ok(shards)
    }

    /// The shard of session `id`.
    fn shard_of(&self, id: &str) -> usize {
        (crate::hash::fnv1a(id.as_bytes()) % self.tags.len() as u64) as usize
    }

    /// The four keys of session `id`, in shard `shard`.
    fn session_keys(&self, shard: usize, id: &str) -> [String; 4] {
        let (p, t) = (&self.prefix, &self.tags[shard]);
        [
            format!("{p}{{{t}}}:{id}:s"),
            format!("{p}{{{t}}}:{id}:st"),
            format!("{p}{{{t}}}:{id}:ev"),
            format!("{p}{{{t}}}:{id}:ix"),
        ]
    }

    /// The expiry and id indexes of shard `shard`.
    fn index_keys(&self, shard: usize) -> [String; 2] {
        let (p, t) = (&self.prefix, &self.tags[shard]);
        [format!("{p}{{{t}}}:exp"), format!("{p}{{{t}}}:ids")]
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::new(
                ErrorKind::Unavailable,
                "the Redis store is closed",
            ))
        } else {
            Ok(())
        }
    }

    /// Run a prepared invocation, within the call timeout. A read that
    /// meets a dropped connection (an idle connection after a server
    /// restart) is retried once on the new connection; a write is not, since
    /// the server may have run it before the connection dropped.
    async fn run(&self, inv: ScriptInvocation<'_>, read_only: bool) -> Result<Value> {
        self.check_open()?;
        let mut conn = self.conn.clone();
        let call = async {
            match inv.invoke_async::<Value>(&mut conn).await {
                Err(e) if read_only && e.is_unrecoverable_error() => {
                    inv.invoke_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Err(e)) if matches!(self.conn, Conn::Single(_)) && e.is_cluster_error() => {
                // A cluster node reached without a cluster connection
                // (`cluster=false`): it serves only its own slots.
                Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "Redis at {} is a Redis Cluster node that does not serve this key \
                         (open the store with cluster=auto or cluster=true): {e}",
                        self.target
                    ),
                ))
            }
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "Redis at {} did not answer within {}ms",
                    self.target,
                    self.call_timeout.as_millis()
                ),
            )),
        }
    }

    /// Invoke a session script: the session's keys and its shard's
    /// indexes, then ARGV = id, grace, `args`.
    async fn session_script(&self, script: &Script, id: &str, args: &[&[u8]]) -> Result<Value> {
        let read_only = [
            &SCRIPTS.get,
            &SCRIPTS.get_state,
            &SCRIPTS.state_all,
            &SCRIPTS.events_after,
        ]
        .iter()
        .any(|s| std::ptr::eq(*s, script));
        let shard = self.shard_of(id);
        let mut inv = script.prepare_invoke();
        for key in self.session_keys(shard, id) {
            inv.key(key);
        }
        for key in self.index_keys(shard) {
            inv.key(key);
        }
        inv.arg(id).arg(self.grace_ms);
        for a in args {
            inv.arg(*a);
        }
        self.run(inv, read_only).await
    }

    /// Run `per_shard` on every shard at once; the results in shard order.
    async fn each_shard<'a, T, F>(&'a self, per_shard: impl Fn(usize) -> F) -> Result<Vec<T>>
    where
        F: std::future::Future<Output = Result<T>> + 'a,
    {
        futures::future::try_join_all((0..self.tags.len()).map(per_shard)).await
    }

    /// Live sessions in shard `shard`: how many.
    async fn count_shard(&self, shard: usize) -> Result<u64> {
        let mut inv = SCRIPTS.count.prepare_invoke();
        inv.key(&self.index_keys(shard)[0]);
        Ok(as_int(&self.run(inv, true).await?)? as u64)
    }

    /// Up to `want` live ids of shard `shard` after `after`, in id order.
    async fn list_shard(&self, shard: usize, after: &str, want: usize) -> Result<Vec<String>> {
        let [exp, ids] = self.index_keys(shard);
        let mut inv = SCRIPTS.list.prepare_invoke();
        inv.key(ids).key(exp).arg(after).arg(want);
        into_array(self.run(inv, true).await?)?
            .unwrap_or_default()
            .into_iter()
            .map(into_text)
            .collect()
    }

    /// The live sessions among `ids`, all of shard `shard`, in their order.
    async fn get_shard(&self, shard: usize, ids: &[&str]) -> Result<Vec<Session>> {
        let mut inv = SCRIPTS.get_many.prepare_invoke();
        for id in ids {
            let [s, ..] = self.session_keys(shard, id);
            inv.key(s);
        }
        let replies = into_array(self.run(inv, true).await?)?.unwrap_or_default();
        if replies.len() != ids.len() {
            return Err(corrupt("a session listing lacks sessions"));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, reply) in ids.iter().zip(replies) {
            if let Some(fields) = into_array(reply)? {
                out.push(session_from(id, fields)?);
            }
        }
        Ok(out)
    }

    /// Reap the expired sessions of shard `shard`, a batch per script.
    async fn cleanup_shard(&self, shard: usize) -> Result<CleanupStats> {
        let mut total = CleanupStats::default();
        let indexes = self.index_keys(shard);
        loop {
            let mut inv = SCRIPTS.expired.prepare_invoke();
            inv.key(&indexes[0]).arg(CLEANUP_BATCH);
            let ids = into_array(self.run(inv, true).await?)?.unwrap_or_default();
            let batch = ids.len();
            if batch > 0 {
                let mut inv = SCRIPTS.reap.prepare_invoke();
                inv.key(&indexes[0]).key(&indexes[1]);
                for id in ids {
                    let id = into_text(id)?;
                    for key in self.session_keys(shard, &id) {
                        inv.key(key);
                    }
                    inv.arg(id);
                }
                let counts = into_array(self.run(inv, false).await?)?
                    .ok_or_else(|| corrupt("reap answered nil"))?;
                let n = |i: usize| counts.get(i).map(as_int).unwrap_or(Ok(0));
                let removed = n(0)? as u64;
                total.add(CleanupStats::new(removed, n(1)? as u64, n(2)? as u64));
                if removed == 0 {
                    // All renewed meanwhile: the next batch would be the same.
                    return Ok(total);
                }
            }
            if batch < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }
}

/// The connection info of another node `host:port` of a cluster: the
/// scheme, credentials and TLS settings of `first`.
fn other_node(first: &ConnectionInfo, node: &str) -> Result<ConnectionInfo> {
    let bad = || Error::invalid(format!("option cluster_nodes: {node:?} is not host:port"));
    let (host, port) = node.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let addr = match first.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.to_string(), port),
        _ => return Err(Error::invalid("option cluster_nodes needs a TCP URL")),
    };
    Ok(first.clone().set_addr(addr))
}

/// `host:port`, for messages.
fn describe(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        other => format!("{other:?}"),
    }
}

/// How to reach the server or the cluster: the nodes to try (the URL's
/// first), the TLS roots and the timeouts.
#[derive(Clone)]
struct Servers {
    nodes: Vec<ConnectionInfo>,
    root_cert: Option<Vec<u8>>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Servers {
    fn builder(&self) -> ClusterClientBuilder {
        let mut builder = ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.timeout)
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(500);
        if let Some(pem) = &self.root_cert {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        builder
    }
}

/// Connect to `setup.nodes[0]` as a single server, or to the cluster the
/// nodes belong to; load the scripts.
async fn connect(mode: ClusterMode, setup: Servers) -> redis::RedisResult<(Conn, Listen)> {
    let cluster = match mode {
        ClusterMode::Yes => true,
        ClusterMode::No => false,
        ClusterMode::Auto if setup.nodes.len() > 1 => true,
        ClusterMode::Auto => {
            let (mut conn, client) = connect_single(&setup).await?;
            // A server that does not know the command (or may not run it)
            // is no cluster node.
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                let mut conn = Conn::Single(conn);
                load_scripts(&mut conn).await?;
                return Ok((conn, Listen::Single(client)));
            }
            true
        }
    };
    if !cluster {
        let (conn, client) = connect_single(&setup).await?;
        let mut conn = Conn::Single(conn);
        load_scripts(&mut conn).await?;
        return Ok((conn, Listen::Single(client)));
    }
    let client: ClusterClient = setup.builder().build()?;
    let mut conn = Conn::Cluster(client.get_async_connection().await?);
    if mode == ClusterMode::Yes {
        // A single server answers CLUSTER commands with an error.
        let _: Value = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut conn)
            .await?;
    }
    load_scripts(&mut conn).await?;
    Ok((conn, Listen::Cluster(setup)))
}

/// A connection manager for the single server `setup.nodes[0]`, and its
/// client (for pub/sub).
async fn connect_single(setup: &Servers) -> redis::RedisResult<(ConnectionManager, redis::Client)> {
    let info = setup.nodes[0].clone();
    let client = match &setup.root_cert {
        None => redis::Client::open(info)?,
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        )?,
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(setup.connect_timeout))
        .set_response_timeout(Some(setup.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500));
    let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok((conn, client))
}

/// Load every script now (on every primary of a cluster), so the first
/// calls need no fallback.
async fn load_scripts(conn: &mut Conn) -> redis::RedisResult<()> {
    for script in SCRIPTS.all() {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}

/// Map a driver error onto the taxonomy; the driver type stays private.
fn map_err(e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        // A cluster still redirecting after the redis crate's retries: a
        // slot moving, or a failover under way.
        || e.is_cluster_error()
    {
        ErrorKind::Unavailable
    } else {
        match e.code() {
            Some("BUSY") => ErrorKind::Timeout,
            Some("LOADING" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "READONLY") => {
                ErrorKind::Unavailable
            }
            _ => match e.kind() {
                // The URL or its TLS files (a CA file that is no PEM, seed
                // nodes with different credentials).
                redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidInput,
                redis::ErrorKind::AuthenticationFailed => ErrorKind::Unavailable,
                _ if e.is_unrecoverable_error() => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            },
        }
    };
    Error::new(kind, format!("Redis: {e}"))
}

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("unexpected reply from Redis: {what}"),
    )
}

fn as_int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("a number was expected")),
        Value::SimpleString(s) => s.parse().map_err(|_| corrupt("a number was expected")),
        _ => Err(corrupt("a number was expected")),
    }
}

fn into_text(v: Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| corrupt("text is not UTF-8")),
        Value::SimpleString(s) => Ok(s),
        Value::Int(n) => Ok(n.to_string()),
        _ => Err(corrupt("text was expected")),
    }
}

fn into_array(v: Value) -> Result<Option<Vec<Value>>> {
    match v {
        Value::Nil => Ok(None),
        Value::Array(items) => Ok(Some(items)),
        _ => Err(corrupt("an array was expected")),
    }
}

/// A session from the 7 fields of `session_reply` in the scripts.
fn session_from(id: &str, fields: Vec<Value>) -> Result<Session> {
    if fields.len() != 7 || fields.iter().any(|f| matches!(f, Value::Nil)) {
        return Err(corrupt("a session hash lacks fields"));
    }
    let mut it = fields.into_iter();
    let next_int = |it: &mut std::vec::IntoIter<Value>| -> Result<i64> {
        as_int(&it.next().unwrap_or(Value::Nil))
    };
    let created_at = next_int(&mut it)?;
    let last_activity = next_int(&mut it)?;
    let expires_at = next_int(&mut it)?;
    let ttl_ms = next_int(&mut it)? as u64;
    let metadata = into_text(it.next().unwrap_or(Value::Nil))?;
    let version = next_int(&mut it)? as u64;
    let last_seq = next_int(&mut it)? as u64;
    Ok(Session {
        id: id.to_string(),
        created_at,
        last_activity,
        expires_at,
        ttl_ms,
        metadata: parse_metadata(&metadata)?,
        version,
        last_seq,
    })
}

fn parse_metadata(text: &str) -> Result<Map<String, JsonValue>> {
    serde_json::from_str(text).map_err(|_| corrupt("stored metadata is not a JSON object"))
}

/// A state hash value `"VERSION JSON"`.
fn state_entry(key: String, stored: Value) -> Result<StateEntry> {
    let text = into_text(stored)?;
    let (version, value) = text
        .split_once(' ')
        .ok_or_else(|| corrupt("a state value lacks its version"))?;
    let version = version
        .parse()
        .map_err(|_| corrupt("a state value lacks its version"))?;
    Ok(StateEntry::new(
        key,
        Json::from_stored(value.to_string()),
        version,
    ))
}

/// The part of an event record the append script gets: `type NUL retry NUL
/// flag data`, flag `d` with data, `-` for a priming event.
fn encode_event(event: &NewEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.data.as_ref().map_or(0, Json::len) + 16);
    out.extend_from_slice(event.event_type.as_deref().unwrap_or("").as_bytes());
    out.push(0);
    if let Some(r) = event.retry_ms {
        out.extend_from_slice(r.to_string().as_bytes());
    }
    out.push(0);
    match &event.data {
        Some(data) => {
            out.push(b'd');
            out.extend_from_slice(data.as_str().as_bytes());
        }
        None => out.push(b'-'),
    }
    out
}

/// A stored record `stream NUL created_at NUL type NUL retry NUL flag data`.
fn decode_event(session_id: &str, seq: u64, record: Value) -> Result<Event> {
    let Value::BulkString(bytes) = record else {
        return Err(corrupt("an indexed event is missing"));
    };
    let text = String::from_utf8(bytes).map_err(|_| corrupt("an event is not UTF-8"))?;
    let mut parts = text.splitn(5, '\0');
    let (Some(stream), Some(created), Some(ty), Some(retry), Some(body)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(corrupt("an event record is malformed"));
    };
    let created_at = created
        .parse()
        .map_err(|_| corrupt("an event record is malformed"))?;
    let retry_ms = if retry.is_empty() {
        None
    } else {
        Some(
            retry
                .parse()
                .map_err(|_| corrupt("an event record is malformed"))?,
        )
    };
    let data = match body.as_bytes().first() {
        Some(b'd') => Some(Json::from_stored(body[1..].to_string())),
        Some(b'-') => None,
        _ => return Err(corrupt("an event record is malformed")),
    };
    Ok(Event {
        session_id: session_id.to_string(),
        seq,
        stream_id: stream.to_string(),
        data,
        event_type: (!ty.is_empty()).then(|| ty.to_string()),
        retry_ms,
        created_at,
    })
}

/// `{status, …}` replies: the status and the rest.
fn status_reply(v: Value) -> Result<(i64, Vec<Value>)> {
    let items = into_array(v)?.ok_or_else(|| corrupt("a status was expected"))?;
    let mut it = items.into_iter();
    let status = as_int(&it.next().ok_or_else(|| corrupt("a status was expected"))?)?;
    Ok((status, it.collect()))
}

#[async_trait]
impl Backend for RedisBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("redis", true)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        let metadata =
            serde_json::to_string(&req.metadata).map_err(|e| Error::invalid(e.to_string()))?;
        // The create script counts the live sessions of its own shard; the
        // others are counted first.
        let max = match self.limits.max_sessions {
            None => String::new(),
            Some(max) if self.tags.len() == 1 => max.to_string(),
            Some(max) => {
                let own = self.shard_of(&req.id);
                let others: u64 = self
                    .each_shard(|shard| async move {
                        if shard == own {
                            Ok(0)
                        } else {
                            self.count_shard(shard).await
                        }
                    })
                    .await?
                    .into_iter()
                    .sum();
                if others >= max {
                    return Err(Error::session_limit(max));
                }
                (max - others).to_string()
            }
        };
        let reply = self
            .session_script(
                &SCRIPTS.create,
                &req.id,
                &[
                    req.ttl_ms.to_string().as_bytes(),
                    metadata.as_bytes(),
                    max.as_bytes(),
                ],
            )
            .await?;
        let (status, rest) = status_reply(reply)?;
        match status {
            0 => {
                let now = as_int(rest.first().ok_or_else(|| corrupt("no time"))?)?;
                Ok(Session {
                    id: req.id,
                    created_at: now,
                    last_activity: now,
                    expires_at: now.saturating_add(req.ttl_ms as i64),
                    ttl_ms: req.ttl_ms,
                    metadata: req.metadata,
                    version: 1,
                    last_seq: 0,
                })
            }
            1 => Err(Error::session_exists(&req.id)),
            2 => Err(Error::session_limit(self.limits.max_sessions.unwrap_or(0))),
            other => Err(corrupt(&format!("create answered {other}"))),
        }
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        let reply = self.session_script(&SCRIPTS.get, id, &[]).await?;
        into_array(reply)?
            .map(|fields| session_from(id, fields))
            .transpose()
    }

    async fn update_session(&self, id: &str, patch: Map<String, JsonValue>) -> Result<Session> {
        for _ in 0..UPDATE_ATTEMPTS {
            let reply = self.session_script(&SCRIPTS.get, id, &[]).await?;
            let Some(fields) = into_array(reply)? else {
                return Err(Error::session_not_found(id));
            };
            // The stored text, as the compare-and-set compares it.
            let old = into_text(fields.get(4).cloned().unwrap_or(Value::Nil))?;
            let mut merged = session_from(id, fields)?.metadata;
            merged.extend(patch.clone());
            validate::metadata(&merged, self.limits.max_payload_bytes)?;
            let new = serde_json::to_string(&merged).map_err(|e| Error::invalid(e.to_string()))?;
            let reply = self
                .session_script(&SCRIPTS.update, id, &[old.as_bytes(), new.as_bytes()])
                .await?;
            let (status, rest) = status_reply(reply)?;
            match status {
                0 => return session_from(id, rest),
                1 => return Err(Error::session_not_found(id)),
                2 => tokio::task::yield_now().await,
                other => return Err(corrupt(&format!("update answered {other}"))),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("metadata of session '{id}' changed {UPDATE_ATTEMPTS} times during an update"),
        ))
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        let reply = self.session_script(&SCRIPTS.touch, id, &[]).await?;
        match into_array(reply)? {
            Some(fields) => session_from(id, fields),
            None => Err(Error::session_not_found(id)),
        }
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let reply = self
            .session_script(&SCRIPTS.delete, id, &[self.channel.as_bytes()])
            .await?;
        Ok(as_int(&reply)? == 1)
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        let after = after.unwrap_or("");
        // The first `limit + 1` live ids of every shard, merged.
        let mut ids: Vec<String> = self
            .each_shard(|shard| self.list_shard(shard, after, limit + 1))
            .await?
            .into_iter()
            .flatten()
            .collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        ids.truncate(limit);
        // Their sessions, a script per shard (expired meanwhile: left out).
        let mut by_shard: Vec<Vec<&str>> = vec![Vec::new(); self.tags.len()];
        for id in &ids {
            by_shard[self.shard_of(id)].push(id);
        }
        let mut items: Vec<Session> = futures::future::try_join_all(
            by_shard
                .iter()
                .enumerate()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(shard, ids)| self.get_shard(shard, ids)),
        )
        .await?
        .into_iter()
        .flatten()
        .collect();
        items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let next = if more { ids.last().cloned() } else { None };
        Ok(Page::new(items, next))
    }

    async fn count_sessions(&self) -> Result<u64> {
        Ok(self
            .each_shard(|shard| self.count_shard(shard))
            .await?
            .into_iter()
            .sum())
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        let reply = self
            .session_script(&SCRIPTS.get_state, id, &[key.as_bytes()])
            .await?;
        let Some(items) = into_array(reply)? else {
            return Err(Error::session_not_found(id));
        };
        match items.into_iter().nth(1) {
            Some(stored) => Ok(Some(state_entry(key.to_string(), stored)?)),
            None => Ok(None),
        }
    }

    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64> {
        let (mode, version) = match expected {
            Expected::Any => ("0", String::new()),
            Expected::Absent => ("1", String::new()),
            Expected::Version(v) => ("2", v.to_string()),
        };
        let reply = self
            .session_script(
                &SCRIPTS.set_state,
                id,
                &[
                    key.as_bytes(),
                    value.as_str().as_bytes(),
                    mode.as_bytes(),
                    version.as_bytes(),
                ],
            )
            .await?;
        let (status, rest) = status_reply(reply)?;
        match status {
            0 => Ok(as_int(rest.first().ok_or_else(|| corrupt("no version"))?)? as u64),
            1 => Err(Error::session_not_found(id)),
            2 => {
                let current = rest.first().map(as_int).transpose()?.map(|v| v as u64);
                check_expected(key, expected, current).and(Err(Error::new(
                    ErrorKind::Internal,
                    "state write refused without cause",
                )))
            }
            other => Err(corrupt(&format!("set_state answered {other}"))),
        }
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        let reply = self
            .session_script(&SCRIPTS.delete_state, id, &[key.as_bytes()])
            .await?;
        match as_int(&reply)? {
            -1 => Err(Error::session_not_found(id)),
            n => Ok(n == 1),
        }
    }

    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        let reply = self.session_script(&SCRIPTS.state_all, id, &[b"1"]).await?;
        let Some(items) = into_array(reply)? else {
            return Err(Error::session_not_found(id));
        };
        let mut keys = items
            .into_iter()
            .map(into_text)
            .collect::<Result<Vec<_>>>()?;
        keys.sort_unstable();
        Ok(keys)
    }

    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        let reply = self.session_script(&SCRIPTS.state_all, id, &[b"0"]).await?;
        let Some(items) = into_array(reply)? else {
            return Err(Error::session_not_found(id));
        };
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push(state_entry(into_text(k)?, v)?);
        }
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
        let encoded = encode_event(&event);
        let reply = self
            .session_script(
                &SCRIPTS.append,
                id,
                &[
                    event.stream_id.as_bytes(),
                    &encoded,
                    self.limits.max_events_per_session.to_string().as_bytes(),
                    self.channel.as_bytes(),
                ],
            )
            .await?;
        let Some(items) = into_array(reply)? else {
            return Err(Error::session_not_found(id));
        };
        let (Some(seq), Some(now)) = (items.first(), items.get(1)) else {
            return Err(corrupt("append answered no seq"));
        };
        Ok(Event::new(
            id.to_string(),
            as_int(seq)? as u64,
            event,
            as_int(now)?,
        ))
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        let reply = self
            .session_script(
                &SCRIPTS.events_after,
                id,
                &[
                    cursor.stream_id.as_bytes(),
                    cursor.seq.to_string().as_bytes(),
                    (limit + 1).to_string().as_bytes(),
                ],
            )
            .await?;
        let Some(items) = into_array(reply)? else {
            return Err(Error::session_not_found(id));
        };
        let mut it = items.into_iter();
        let (Some(last), Some(trimmed)) = (it.next(), it.next()) else {
            return Err(corrupt("replay answered no counters"));
        };
        check_cursor(cursor, as_int(&last)? as u64, as_int(&trimmed)? as u64)?;
        let mut events = Vec::with_capacity(it.len() / 2);
        while let (Some(seq), Some(record)) = (it.next(), it.next()) {
            events.push(decode_event(id, as_int(&seq)? as u64, record)?);
        }
        let more = events.len() > limit;
        events.truncate(limit);
        let next = if more {
            events.last().map(Event::wire_id)
        } else {
            None
        };
        Ok(Page::new(events, next))
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        let mut total = CleanupStats::default();
        for stats in self.each_shard(|shard| self.cleanup_shard(shard)).await? {
            total.add(stats);
        }
        Ok(total)
    }

    fn watch_appends(&self, listener: AppendListener) -> Result<bool> {
        self.check_open()?;
        let runtime = crate::runtime::current_runtime()?;
        runtime.spawn(listen(
            self.listen.clone(),
            self.channel.clone(),
            self.connect_timeout,
            self.shutdown.subscribe(),
            listener,
        ));
        Ok(true)
    }

    async fn close(&self) -> Result<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.shutdown.send_replace(true);
        }
        Ok(())
    }
}

/// Forward the session ids published on `channel` to `listener` until it
/// declines or the store closes. After a connection loss it connects again
/// (with a pause); what was published meanwhile is lost, which subscriptions
/// cover by polling.
async fn listen(
    target: Listen,
    channel: String,
    connect_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    listener: AppendListener,
) {
    // Resolves once the store closes or is dropped.
    let stopped = async move {
        let _ = shutdown.wait_for(|closed| *closed).await;
    };
    tokio::pin!(stopped);
    match target {
        Listen::Single(client) => {
            listen_single(client, channel, connect_timeout, stopped, listener).await
        }
        Listen::Cluster(setup) => {
            listen_cluster(setup, channel, connect_timeout, stopped, listener).await
        }
    }
}

/// Pause after a failed connect, and after losing a connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
const LOST_PAUSE: Duration = Duration::from_millis(100);

/// Wait `pause`; false if the store stopped meanwhile.
async fn pause(
    stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    pause: Duration,
) -> bool {
    tokio::select! {
        _ = stopped => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

/// The listener's ping timer: a connection that went silent (a network
/// partition sends no close) is noticed by a ping that gets no answer.
fn heartbeat() -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(PUBSUB_PING);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    heartbeat
}

/// [`listen`] on a single server.
async fn listen_single(
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    mut stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    listener: AppendListener,
) {
    use futures::StreamExt;
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            _ = stopped.as_mut() => return,
            c = tokio::time::timeout(connect_timeout, connect) => c,
        };
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                if pause(stopped.as_mut(), RECONNECT_PAUSE).await {
                    continue;
                }
                return;
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        let mut heartbeat = heartbeat();
        loop {
            let msg = tokio::select! {
                _ = stopped.as_mut() => return,
                m = messages.next() => m,
                _ = heartbeat.tick() => {
                    let ping = tokio::time::timeout(connect_timeout, sink.ping::<Value>()).await;
                    if matches!(ping, Ok(Ok(_))) {
                        continue;
                    }
                    break;
                }
            };
            let Some(msg) = msg else {
                // The connection was lost: connect again.
                break;
            };
            let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
            if let Ok(id) = std::str::from_utf8(&payload)
                && !listener(id)
            {
                return;
            }
        }
        if !pause(stopped.as_mut(), LOST_PAUSE).await {
            return;
        }
    }
}

/// [`listen`] on a cluster: a cluster connection of its own, speaking RESP3,
/// whose subscription the redis crate renews after a node fails.
async fn listen_cluster(
    setup: Servers,
    channel: String,
    connect_timeout: Duration,
    mut stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    listener: AppendListener,
) {
    loop {
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let connect = async {
            let client = setup
                .builder()
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx)
                .build()?;
            let mut conn = client.get_async_connection().await?;
            conn.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let connected = tokio::select! {
            _ = stopped.as_mut() => return,
            c = tokio::time::timeout(connect_timeout, connect) => c,
        };
        let Ok(Ok(mut conn)) = connected else {
            if pause(stopped.as_mut(), RECONNECT_PAUSE).await {
                continue;
            }
            return;
        };
        let mut heartbeat = heartbeat();
        loop {
            let push = tokio::select! {
                _ = stopped.as_mut() => return,
                p = pushes.recv() => p,
                _ = heartbeat.tick() => {
                    let ping = redis::cmd("PING");
                    let ping = tokio::time::timeout(connect_timeout, ping.query_async::<Value>(&mut conn));
                    if matches!(ping.await, Ok(Ok(_))) {
                        continue;
                    }
                    break;
                }
            };
            let Some(push) = push else {
                break;
            };
            if push.kind == redis::PushKind::Message
                && let Some(Value::BulkString(payload)) = push.data.get(1)
                && let Ok(id) = std::str::from_utf8(payload)
                && !listener(id)
            {
                return;
            }
        }
        if !pause(stopped.as_mut(), LOST_PAUSE).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_one_redis_cluster_uses() {
        // The check value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("123456789"), 12739);
    }

    #[test]
    fn shard_tags_take_evenly_spaced_slots() {
        for shards in [1, 2, 3, 16, 100, MAX_SHARDS] {
            let tags = shard_tags(shards);
            assert_eq!(tags.len(), shards as usize);
            for (i, tag) in tags.iter().enumerate() {
                let i = i as u32;
                let range = (i * SLOTS / shards)..((i + 1) * SLOTS / shards);
                assert!(range.contains(&slot(tag)), "{tag} of {shards}");
                assert!(!tag.contains(['{', '}']), "{tag}");
            }
        }
        // Every process computes the same tags.
        assert_eq!(shard_tags(16), shard_tags(16));
    }
}
