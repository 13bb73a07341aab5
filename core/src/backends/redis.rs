//! `redis://…` and `rediss://…` (TLS by rustls): Redis, shared by any
//! number of processes.
//!
//! # Design
//!
//! - **Keys.** Every key of a session shares one hash tag, the session id:
//!   `{prefix}{{id}}:s` (a hash: timestamps, TTL, metadata, version,
//!   `last_seq`, `trimmed_through`), `…:st` (a hash: state key →
//!   `"VERSION JSON"`), `…:ev` (a hash: seq → event record) and `…:ix` (a
//!   sorted set of `stream NUL seq(20 digits)`, ordered lexicographically, so
//!   a stream-scoped replay is one `ZRANGEBYLEX`). Two indexes per prefix
//!   list sessions without `KEYS`: `{prefix}sessions:exp` (sorted set of ids
//!   by `expires_at`) and `{prefix}sessions:ids` (ids in id order).
//! - **Every operation is one Lua script** (`EVALSHA`, loaded again after a
//!   server restart), so one atomic step and one round trip: an append bumps
//!   `last_seq` and the version, stores the event, trims beyond
//!   `max_events_per_session` (raising `trimmed_through`, which
//!   `CursorExpired` is decided on), slides the TTL and `PUBLISH`es the
//!   session id. Redis runs scripts one at a time, so commit order is seq
//!   order. `set_state` with a condition is one script too.
//! - **Time** is the server's clock (`TIME` inside the scripts), so processes
//!   on hosts with different clocks agree on expiry.
//! - **Expiry.** Every read compares `expires_at` with the server's clock.
//!   Every write also sets the native TTL (`PEXPIRE`) of each key of the
//!   session to the session TTL plus `expire_grace`, so Redis drops an
//!   abandoned session by itself; the grace leaves `cleanup_expired` time to
//!   remove the index entries and report what it removed.
//!   `cleanup_expired` works in batches of 500 sessions.
//! - **Live delivery across processes:** a store with subscribers listens on
//!   the pub/sub channel `{prefix}appends` (reconnecting after a connection
//!   loss; subscriptions poll meanwhile).
//! - **Connections:** one multiplexed connection with automatic reconnection
//!   (the redis crate's `ConnectionManager`); a server restart costs the
//!   calls made while it is down (`Unavailable` or `Timeout`), the store
//!   needs no reopening.
//!
//! # Redis Cluster
//!
//! The per-session keys are cluster-safe (one hash tag), but the two session
//! indexes are keys of their own, in another slot, and the scripts that
//! create, write, delete or list sessions touch them together with the
//! session's keys. So this backend needs a single Redis server (or a primary
//! with replicas); cluster URLs are not supported.
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
use redis::{Script, ScriptInvocation, Value};
use serde_json::{Map, Value as JsonValue};
use tokio::sync::watch;

use crate::backend::{AppendListener, Expected, SessionStore, check_cursor, check_expected};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl, duration_ms};
use crate::validate;

/// Sessions removed per cleanup batch.
const CLEANUP_BATCH: usize = 500;

/// How often the pub/sub listener checks that its connection is alive.
const PUBSUB_PING: Duration = Duration::from_secs(15);

/// Most attempts of `update_session`'s compare-and-set on the metadata.
const UPDATE_ATTEMPTS: u32 = 1000;

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
    create: Script,
    get: Script,
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

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create: Script::new(lua!("create.lua")),
    get: Script::new(lua!("get.lua")),
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

/// The Redis backend.
pub struct RedisBackend {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    channel: String,
    exp_key: String,
    ids_key: String,
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

impl RedisBackend {
    /// Connect (TLS for `rediss://`) and load the scripts.
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
        let tls_ca_file = url.take("tls_ca_file");
        url.finish()?;
        if url.scheme == "rediss" {
            // rustls needs one process-wide crypto provider: ring, unless
            // the application installed another one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let conn_url = format!("{}://{}", url.scheme, url.raw_location);
        let invalid_url = |e: redis::RedisError| Error::invalid(format!("invalid Redis URL: {e}"));
        let client = match tls_ca_file {
            None => redis::Client::open(conn_url.as_str()).map_err(invalid_url)?,
            Some(path) => {
                if url.scheme != "rediss" {
                    return Err(Error::invalid("option tls_ca_file needs a rediss:// URL"));
                }
                let pem = std::fs::read(&path).map_err(|e| {
                    Error::invalid(format!("option tls_ca_file: cannot read {path:?}: {e}"))
                })?;
                redis::Client::build_with_tls(
                    conn_url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
                .map_err(|e| Error::invalid(format!("option tls_ca_file {path:?}: {e}")))?
            }
        };
        let target = match &client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
            other => format!("{other:?}"),
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let unavailable = |detail: String| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to Redis at {target} within {}ms: {detail}",
                    connect_timeout.as_millis()
                ),
            )
        };
        let mut conn = match tokio::time::timeout(
            connect_timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
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
        // Load every script now, so the first calls need no fallback.
        let load = async {
            let s = &*SCRIPTS;
            for script in [
                &s.create,
                &s.get,
                &s.touch,
                &s.update,
                &s.delete,
                &s.get_state,
                &s.set_state,
                &s.delete_state,
                &s.state_all,
                &s.append,
                &s.events_after,
                &s.list,
                &s.count,
                &s.expired,
                &s.reap,
            ] {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, redis::RedisError>(())
        };
        match tokio::time::timeout(connect_timeout + timeout, load).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(map_err(e)),
            Err(_) => return Err(unavailable("the server did not answer".to_string())),
        }
        Ok(RedisBackend {
            conn,
            client,
            channel: format!("{prefix}appends"),
            exp_key: format!("{prefix}sessions:exp"),
            ids_key: format!("{prefix}sessions:ids"),
            prefix,
            grace_ms: duration_ms(grace),
            connect_timeout,
            call_timeout: connect_timeout + timeout,
            target,
            limits,
            closed: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        })
    }

    /// The six keys a session script gets.
    fn keys(&self, id: &str) -> [String; 6] {
        let p = &self.prefix;
        [
            format!("{p}{{{id}}}:s"),
            format!("{p}{{{id}}}:st"),
            format!("{p}{{{id}}}:ev"),
            format!("{p}{{{id}}}:ix"),
            self.exp_key.clone(),
            self.ids_key.clone(),
        ]
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

    /// Invoke a session script: the session's keys, then ARGV = id, grace,
    /// `args`.
    async fn session_script(&self, script: &Script, id: &str, args: &[&[u8]]) -> Result<Value> {
        let read_only = [
            &SCRIPTS.get,
            &SCRIPTS.get_state,
            &SCRIPTS.state_all,
            &SCRIPTS.events_after,
        ]
        .iter()
        .any(|s| std::ptr::eq(*s, script));
        let mut inv = script.prepare_invoke();
        for key in self.keys(id) {
            inv.key(key);
        }
        inv.arg(id).arg(self.grace_ms);
        for a in args {
            inv.arg(*a);
        }
        self.run(inv, read_only).await
    }
}

/// Map a driver error onto the taxonomy; the driver type stays private.
fn map_err(e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        ErrorKind::Unavailable
    } else {
        match e.code() {
            Some("BUSY") => ErrorKind::Timeout,
            Some("LOADING" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "READONLY") => {
                ErrorKind::Unavailable
            }
            _ => match e.kind() {
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
impl SessionStore for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        let metadata =
            serde_json::to_string(&req.metadata).map_err(|e| Error::invalid(e.to_string()))?;
        let max = self
            .limits
            .max_sessions
            .map(|m| m.to_string())
            .unwrap_or_default();
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
        let mut inv = SCRIPTS.list.prepare_invoke();
        inv.key(&self.ids_key)
            .key(&self.exp_key)
            .arg(after.unwrap_or(""))
            .arg(limit + 1);
        let reply = self.run(inv, true).await?;
        let ids = into_array(reply)?.unwrap_or_default();
        let more = ids.len() > limit;
        let mut items = Vec::with_capacity(ids.len().min(limit));
        for id in ids.into_iter().take(limit) {
            let id = into_text(id)?;
            // Expired meanwhile: left out.
            if let Some(s) = self.get_session(&id).await? {
                items.push(s);
            }
        }
        let next = if more {
            items.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(Page::new(items, next))
    }

    async fn count_sessions(&self) -> Result<u64> {
        let mut inv = SCRIPTS.count.prepare_invoke();
        inv.key(&self.exp_key);
        Ok(as_int(&self.run(inv, true).await?)? as u64)
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
        loop {
            let mut inv = SCRIPTS.expired.prepare_invoke();
            inv.key(&self.exp_key).arg(CLEANUP_BATCH);
            let ids = into_array(self.run(inv, true).await?)?.unwrap_or_default();
            let batch = ids.len();
            for id in ids {
                let id = into_text(id)?;
                let reply = self.session_script(&SCRIPTS.reap, &id, &[]).await?;
                let counts = into_array(reply)?.ok_or_else(|| corrupt("reap answered nil"))?;
                let n = |i: usize| {
                    counts
                        .get(i)
                        .map(as_int)
                        .transpose()
                        .map(|v| v.unwrap_or(0))
                };
                total.add(CleanupStats::new(n(0)? as u64, n(1)? as u64, n(2)? as u64));
            }
            if batch < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }

    fn watch_appends(&self, listener: AppendListener) -> Result<bool> {
        self.check_open()?;
        let runtime = crate::store::current_runtime()?;
        runtime.spawn(listen(
            self.client.clone(),
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
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    listener: AppendListener,
) {
    use futures::StreamExt;
    // Resolves once the store closes or is dropped.
    let stopped = async move {
        let _ = shutdown.wait_for(|closed| *closed).await;
    };
    tokio::pin!(stopped);
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
                tokio::select! {
                    _ = stopped.as_mut() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        // A connection that went silent (a network partition sends no
        // close) is noticed by a ping that gets no answer.
        let mut heartbeat = tokio::time::interval(PUBSUB_PING);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
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
        tokio::select! {
            _ = stopped.as_mut() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
