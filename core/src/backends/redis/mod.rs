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
//!
//! # Code
//!
//! `config` parses the options above, `connect` reaches the server or the
//! cluster, `scripts` holds the Lua scripts (`lua/`) and runs them, `codec`
//! turns their replies into the store's types, `shards` spreads the keys
//! over the shards and runs the per-shard scripts, and `pubsub` is the
//! listener of live deliveries.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use serde_json::{Map, Value as JsonValue};
use tokio::sync::watch;

use crate::backend::{
    AppendListener, Backend, BackendInfo, Expected, check_cursor, check_expected,
};
use crate::backends::common;
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl, duration_ms};
use crate::validate;

mod codec;
pub(crate) mod config;
mod connect;
mod pubsub;
mod scripts;
mod shards;

use codec::{
    as_int, corrupt, decode_event, encode_event, into_array, into_text, session_from, state_entry,
    status_reply,
};
pub(crate) use config::RedisConfig;
use connect::{Conn, Listen};
use scripts::SCRIPTS;

/// Most attempts of `update_session`'s compare-and-set on the metadata.
const UPDATE_ATTEMPTS: u32 = 1000;

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

impl RedisBackend {
    /// Connect (TLS for `rediss://`, a cluster connection on a cluster),
    /// load the scripts and read or write the prefix's shard count.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<RedisBackend> {
        Self::open_config(RedisConfig::from_url(url)?, limits).await
    }

    /// [`RedisBackend::open`] with the URL's options parsed already.
    pub(crate) async fn open_config(config: RedisConfig, limits: Limits) -> Result<RedisBackend> {
        let connected = connect::open(&config).await?;
        let prefix = config.key_prefix;
        let mut backend = RedisBackend {
            conn: connected.conn,
            listen: connected.listen,
            channel: format!("{prefix}appends"),
            prefix,
            tags: Vec::new(),
            grace_ms: duration_ms(config.expire_grace),
            connect_timeout: config.connect_timeout,
            call_timeout: config.connect_timeout + config.timeout,
            target: connected.target,
            limits,
            closed: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        };
        backend.tags = shards::shard_tags(backend.prefix_shards(config.shards).await?);
        Ok(backend)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(common::closed("Redis"))
        } else {
            Ok(())
        }
    }
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
        let Page { items: ids, next } = Page::from_overfetch(ids, limit, String::clone);
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
        Ok(Page::from_overfetch(events, limit, Event::wire_id))
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
        runtime.spawn(pubsub::listen(
            self.listen.clone(),
            self.target.clone(),
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
