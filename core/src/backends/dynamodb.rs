//! `dynamodb://TABLE?region=…&endpoint=…`: Amazon DynamoDB (or a
//! DynamoDB-compatible server), one table for everything.
//!
//! # Table
//!
//! One table with a string partition key `pk` and a string sort key `sk`,
//! on-demand billing (when this backend creates it) and DynamoDB's native TTL
//! on the number attribute `ttl`. These items live in it:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | session | `S#NN` (the session's shard, `00` up to the shard count) | session id | `gen`, `ca` (created), `la` (last activity), `exp` (expires, ms), `tms` (TTL ms), `meta` (JSON text), `ver`, `lseq` (last seq), `trim` (trimmed through), `ttl` (native TTL, epoch s) |
//! | state entry | `C#GEN#ID` | `K#` + key | `v` (JSON text), `ver` |
//! | event | `C#GEN#ID` | `E#` + seq, zero-padded to 20 digits | `st` (stream), `d` (JSON text, absent for a priming event), `et`, `rm`, `ca` |
//! | table config | `CONFIG` | `CONFIG` | `shards` (the shard count, written by the table's first opener), `layout` |
//!
//! `GEN` is 16 hex digits drawn at random when a session is created: a
//! session re-created under the id of an expired or deleted one gets a new
//! partition for its state and events, so nothing of its predecessor can
//! show through, even while that predecessor is still being purged.
//!
//! # Access patterns
//!
//! - **A session** is one consistent `GetItem` on `(S#NN, id)`; `NN` is a
//!   64-bit FNV-1a hash of the id modulo the table's shard count (option
//!   `shards` when the table is first opened, default 4; fixed afterwards).
//! - **Every write** commits with a condition on the session item as last
//!   seen (`gen`, and `ver` or `lseq`), so concurrent writers to one session
//!   serialize; the loser re-reads and retries (jittered backoff). A handle
//!   remembers what it last saw of each session it wrote, so an uncontended
//!   write is one request; reads never use that memory. Writers of one
//!   session within one process take turns (a per-session lock), so they do
//!   not spend requests on failing each other's conditions; writers in other
//!   processes are ordered by the conditions alone.
//!   Every write renews `exp` and `ttl` and (except `touch`) bumps `ver`.
//! - **State writes** are one `TransactWriteItems`: the session update and
//!   the state item `Put` with the caller's condition (`attribute_not_exists`
//!   or `ver = :expected`). A lost compare-and-set changes nothing.
//! - **Appends** are one `TransactWriteItems`: the session update setting
//!   `lseq = N` on condition `lseq = N-1`, the event `Put`, and — once the
//!   log is full — the `Delete` of the event that trimming drops, with
//!   `trim` raised in the same update. So `seq` is allocated by the commit
//!   itself: commit order = seq order, and `seq` never resets while the
//!   session lives (even when native TTL or trimming removed events).
//! - **Replay** (`events_after`) reads the session (`lseq`, `trim`), then
//!   `Query`s `sk BETWEEN E#cursor+1 AND E#lseq` with a filter on the stream,
//!   following `LastEvaluatedKey` until the page is full, and reads `trim`
//!   again: events trimmed while the query ran are reported as
//!   `CursorExpired`, never skipped. Every event up to the `lseq` read first
//!   was committed before the query started, so a reader never sees N+1
//!   without N. Other streams' events in the range are read and filtered out
//!   (the log holds at most `max_events_per_session` events).
//! - **State listing** `Query`s `begins_with(sk, "K#")` (sorted by key bytes).
//! - **List and count** never `Scan`: session items are spread over the shard
//!   partitions, so `list_sessions` queries every shard concurrently
//!   (`sk > after`, filter `exp > now`) and merges them in id order, and
//!   `count_sessions` sums a `Select=COUNT` query per partition. Both cost
//!   reads proportional to the sessions stored (count reads every session
//!   item, 1 MB per page), so `max_sessions` — which counts on every
//!   create — suits tables of up to some tens of thousands of sessions, and
//!   it is checked, not enforced atomically: concurrent creates may overshoot
//!   it by the number of creators. The shard partitions take every session
//!   write, so each shard takes its share of the table's write traffic (DynamoDB
//!   allows about 1000 write units per second per partition).
//! - **Expiry** is filtered on every read by `exp` (ms). `ttl` (epoch seconds,
//!   `exp` rounded up plus `ttl_grace`) lets DynamoDB's native TTL delete
//!   session items nobody cleaned up; it deletes lazily, which the read
//!   filter makes invisible. State and events carry no `ttl`: a live
//!   session's old state must not expire on its own. `cleanup_expired`
//!   queries each shard for `exp <= now` in pages of 100 and, per session,
//!   deletes its state and events with `BatchWriteItem` (25 items per call,
//!   `UnprocessedItems` retried) and then the session item (conditionally,
//!   so a session re-created meanwhile is kept). Run a sweeper more often
//!   than `ttl_grace`: a session item removed by native TTL before the
//!   sweeper saw it leaves its state and events unreachable (invisible, but
//!   stored until deleted by hand).
//! - **Delete** marks the session expired (`exp = 0`) first, so it is gone
//!   for every reader at once, then purges its partition and deletes the
//!   session item. A purge that fails part-way is finished by
//!   `cleanup_expired`.
//!
//! # Limits
//!
//! A DynamoDB item holds at most 400 KB. An event or state value whose item
//! would exceed it is `LimitExceeded` (checked before writing), as is
//! session metadata: with the default `max_payload_bytes` of 1 MiB, the
//! effective payload limit on DynamoDB is about 400 KB (409,600 bytes minus
//! the key and the other attributes, a few hundred bytes).
//!
//! # Errors
//!
//! A missing table at open is `NotFound` naming the table (unless
//! `create_table=true`); a table deleted later makes calls `Unavailable`.
//! An unreachable endpoint, throttling and server errors are `Unavailable`;
//! a connect or operation timeout is `Timeout`; credentials DynamoDB refuses
//! are `Unavailable`; a write that stays contended after many retries is
//! `Timeout`. SDK types never leave this module.
//!
//! # Options (URL query parameters)
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `region` | the AWS region chain (`us-east-1` with `endpoint`) | AWS region |
//! | `endpoint` | AWS | `http://` or `https://` URL of a DynamoDB-compatible server (moto, DynamoDB Local); without AWS credentials in the environment, static dummy ones are used |
//! | `create_table` | `false` | create the table (on-demand, TTL on `ttl`) when missing, and wait until it is active |
//! | `connect_timeout` | `3s` | TCP/TLS connect timeout |
//! | `timeout` | `10s` | timeout of one operation, retries included |
//! | `max_attempts` | `3` | attempts per request for transient errors (throttling, 5xx, connection errors) |
//! | `ttl_grace` | `1h` | how long after expiry DynamoDB's native TTL may delete a session item |
//! | `shards` | `4` | shard partitions of the session items, for a new table (1–256); stored in the table, and an opener asking for another count is refused |

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, KeySchemaElement,
    KeyType, Put, ReturnValue, ScalarAttributeType, Select, TimeToLiveSpecification,
    TransactWriteItem, Update, WriteRequest,
};
use dashmap::DashMap;
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::backend::{Backend, BackendInfo, Expected, check_cursor, check_expected};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;
use crate::validate;

type Item = HashMap<String, AttributeValue>;

/// Shard partitions of the session items in a new table.
const DEFAULT_SHARDS: u32 = 4;
/// Cached sessions kept before the cache is emptied.
const CACHE_MAX: usize = 10_000;
/// DynamoDB's item size limit.
const ITEM_LIMIT: usize = 400 * 1024;
/// Items per `BatchWriteItem` call.
const BATCH_WRITE: usize = 25;
/// Expired sessions per cleanup page.
const CLEANUP_PAGE: i32 = 100;
/// Sessions purged concurrently by cleanup.
const CLEANUP_CONCURRENCY: usize = 8;
/// Attempts of a write whose condition keeps losing to concurrent writers.
const CONTENTION_ATTEMPTS: u32 = 500;

/// The DynamoDB backend.
pub struct DynamoBackend {
    client: Client,
    table: String,
    shards: u32,
    /// The last known state of sessions this handle wrote: the guess a
    /// write's condition is built on, saving a read when nobody else wrote
    /// since. Reads never use it.
    cache: DashMap<String, Sess>,
    /// One writer per session at a time in this process: writers of one
    /// session all condition on its item, so letting them race here would
    /// only turn into conditional-check failures and retries.
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    limits: Limits,
    ttl_grace_s: i64,
    closed: AtomicBool,
}

impl fmt::Debug for DynamoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoBackend")
            .field("table", &self.table)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

// ---- small helpers ----------------------------------------------------------

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `#name` placeholders for every `#word` in the expressions (DynamoDB
/// rejects unused ones, and names such as `ttl` are reserved words).
fn names(exprs: &[&str]) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'#' {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j > start {
                    out.insert(format!("#{}", &e[start..j]), e[start..j].to_string());
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn values(pairs: Vec<(&str, AttributeValue)>) -> Option<Item> {
    (!pairs.is_empty()).then(|| pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn shard_pk_of(shard: u32) -> String {
    format!("S#{shard:02}")
}

fn config_key() -> Item {
    HashMap::from([
        ("pk".to_string(), s("CONFIG")),
        ("sk".to_string(), s("CONFIG")),
    ])
}

fn child_pk(gen_: &str, id: &str) -> String {
    format!("C#{gen_}#{id}")
}

fn event_sk(seq: u64) -> String {
    format!("E#{seq:020}")
}

fn state_sk(key: &str) -> String {
    format!("K#{key}")
}

fn child_key(pk: &str, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn new_gen() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("a stored item has a missing or malformed attribute {what:?}"),
    )
}

fn get_str<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(name)),
    }
}

fn get_opt_str(item: &Item, name: &str) -> Result<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        _ => Err(corrupt(name)),
    }
}

fn get_num<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

fn get_opt_num<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

/// DynamoDB's size of an item: attribute names plus values (numbers counted
/// at their largest, 21 bytes).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(_) => 21,
                    _ => 1,
                }
        })
        .sum()
}

fn check_item_size(what: &str, item: &Item) -> Result<()> {
    let size = item_size(item);
    if size > ITEM_LIMIT {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "{what} would be a DynamoDB item of {size} bytes, over DynamoDB's limit of \
                 {ITEM_LIMIT} bytes (400 KB) per item"
            ),
        ));
    }
    Ok(())
}

fn internal(e: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("building a DynamoDB request: {e}"),
    )
}

async fn backoff(attempt: u32) {
    // Jittered exponential backoff: up to 1 ms, doubling, capped at 32 ms.
    let ceiling_us = 1000u64 << attempt.min(5);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
}

fn contended(id: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "session '{id}': gave up after {CONTENTION_ATTEMPTS} attempts, the session is written by too many writers at once"
        ),
    )
}

/// The session item, decoded.
#[derive(Debug, Clone)]
struct Sess {
    id: String,
    gen_: String,
    created_at: i64,
    last_activity: i64,
    expires_at: i64,
    ttl_ms: u64,
    meta: String,
    version: u64,
    last_seq: u64,
    trimmed: u64,
}

impl Sess {
    fn from_item(item: &Item) -> Result<Sess> {
        Ok(Sess {
            id: get_str(item, "sk")?.to_string(),
            gen_: get_str(item, "gen")?.to_string(),
            created_at: get_num(item, "ca")?,
            last_activity: get_num(item, "la")?,
            expires_at: get_num(item, "exp")?,
            ttl_ms: get_num(item, "tms")?,
            meta: get_str(item, "meta")?.to_string(),
            version: get_num(item, "ver")?,
            last_seq: get_num(item, "lseq")?,
            trimmed: get_num(item, "trim")?,
        })
    }

    fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    fn metadata(&self) -> Result<Map<String, Value>> {
        serde_json::from_str(&self.meta).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("stored session metadata is not a JSON object: {e}"),
            )
        })
    }

    fn to_session(&self) -> Result<Session> {
        Ok(Session {
            id: self.id.clone(),
            created_at: self.created_at,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            ttl_ms: self.ttl_ms,
            metadata: self.metadata()?,
            version: self.version,
            last_seq: self.last_seq,
        })
    }

    fn child_pk(&self) -> String {
        child_pk(&self.gen_, &self.id)
    }
}

/// Held while writing one session; forgets the session's lock when nobody
/// else waits for it.
struct SessionLock<'a> {
    locks: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        self.guard = None;
        self.locks
            .remove_if(&self.id, |_, m| Arc::strong_count(m) == 1);
    }
}

/// Why a transaction did not commit.
enum TxFail {
    /// Cancelled: one code per item (`None` for an item that was fine).
    Cancelled(Vec<Option<String>>),
    /// Lost to a concurrent transaction: retry.
    Retry,
    /// Anything else.
    Other(Error),
}

fn is_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, code: &str) -> bool {
    e.code() == Some(code)
}

impl DynamoBackend {
    /// Open the table named by `url.location`.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<DynamoBackend> {
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
        if shards.is_some_and(|n| !(1..=256).contains(&n)) {
            return Err(Error::invalid("option shards must be 1-256"));
        }
        url.finish()?;
        crate::runtime::current_runtime()?;

        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect_timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts));
        let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
        if let Some(r) = &region {
            loader = loader.region(Region::new(r.clone()));
        } else if endpoint.is_some() && !env_region {
            loader = loader.region(Region::from_static("us-east-1"));
        }
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e.clone());
            if std::env::var("AWS_ACCESS_KEY_ID").map_or(true, |v| v.is_empty()) {
                loader = loader.credentials_provider(Credentials::new(
                    "mss-local",
                    "mss-local",
                    None,
                    None,
                    "mcp-session-store-local-endpoint",
                ));
            }
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::invalid(
                "no AWS region for DynamoDB: add region=… to the URL or set AWS_REGION",
            ));
        }
        let mut backend = DynamoBackend {
            client: Client::new(&config),
            table,
            shards: DEFAULT_SHARDS,
            cache: DashMap::new(),
            locks: DashMap::new(),
            limits,
            ttl_grace_s: i64::try_from(ttl_grace.as_secs()).unwrap_or(i64::MAX / 4),
            closed: AtomicBool::new(false),
        };
        backend.ensure_table(create_table).await?;
        backend.shards = backend.table_shards(shards).await?;
        Ok(backend)
    }

    /// The table's shard count, from its `CONFIG` item; the first opener of
    /// a table writes it (`shards`, default 4). Every handle must agree on
    /// it, so it cannot change once written.
    async fn table_shards(&self, wanted: Option<u32>) -> Result<u32> {
        for _ in 0..3 {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(config_key()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.sdk_err("GetItem", e))?;
            if let Some(item) = out.item {
                let stored: u32 = get_num(&item, "shards")?;
                if !(1..=256).contains(&stored) {
                    return Err(corrupt("shards"));
                }
                if let Some(w) = wanted
                    && w != stored
                {
                    return Err(Error::invalid(format!(
                        "option shards={w}: DynamoDB table {:?} already uses {stored} shards, and this cannot change",
                        self.table
                    )));
                }
                return Ok(stored);
            }
            let mut item = config_key();
            item.insert("shards".to_string(), n(wanted.unwrap_or(DEFAULT_SHARDS)));
            item.insert("layout".to_string(), n(1));
            let cond = "attribute_not_exists(#pk)";
            match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .send()
                .await
            {
                Ok(_) => return Ok(wanted.unwrap_or(DEFAULT_SHARDS)),
                // Written by another opener: read it.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {}
                Err(e) => return Err(self.sdk_err("PutItem", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            "the table's CONFIG item could be neither read nor written",
        ))
    }

    /// The key of a session's item: its shard partition and its id.
    fn session_key(&self, id: &str) -> Item {
        let shard = (crate::hash::fnv1a(id.as_bytes()) % u64::from(self.shards)) as u32;
        HashMap::from([
            ("pk".to_string(), s(shard_pk_of(shard))),
            ("sk".to_string(), s(id)),
        ])
    }

    /// Wait for this process's other writers of session `id`.
    async fn lock(&self, id: &str) -> SessionLock<'_> {
        let mutex = self.locks.entry(id.to_string()).or_default().clone();
        let guard = mutex.lock_owned().await;
        SessionLock {
            locks: &self.locks,
            id: id.to_string(),
            guard: Some(guard),
        }
    }

    /// Remember what this handle last saw of a session.
    fn remember(&self, sess: &Sess) {
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(sess.id.clone(), sess.clone());
    }

    /// The session a write builds its condition on: the cached one while
    /// it looks live (its conditions catch a stale guess), else a read.
    async fn guess(&self, id: &str, fresh: bool) -> Result<Sess> {
        if !fresh
            && let Some(c) = self.cache.get(id)
            && c.live(now_ms())
        {
            return Ok(c.clone());
        }
        self.live_session(id).await
    }

    async fn ensure_table(&self, create: bool) -> Result<()> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => {
                let schema = out.table().map(|t| t.key_schema()).unwrap_or_default();
                let has = |name: &str, kind: KeyType| {
                    schema
                        .iter()
                        .any(|k| k.attribute_name() == name && *k.key_type() == kind)
                };
                if schema.len() != 2 || !has("pk", KeyType::Hash) || !has("sk", KeyType::Range) {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "DynamoDB table {:?} exists but its key schema is not (pk HASH, sk RANGE) of strings: it is not a mcp-session-store table",
                            self.table
                        ),
                    ));
                }
                Ok(())
            }
            Err(e) if is_code(&e, "ResourceNotFoundException") => {
                if !create {
                    return Err(Error::not_found(format!(
                        "DynamoDB table {:?} does not exist: create it (see the README) or open with create_table=true",
                        self.table
                    )));
                }
                self.create_table().await
            }
            Err(e) => Err(self.sdk_err("DescribeTable", e)),
        }
    }

    async fn create_table(&self) -> Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(internal)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(internal)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created by another opener meanwhile.
            Err(e) if is_code(&e, "ResourceInUseException") => {}
            Err(e) => return Err(self.sdk_err("CreateTable", e)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "DynamoDB table {:?} did not become active: {}",
                        self.table,
                        DisplayErrorContext(&e)
                    ),
                )
            })?;
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("ttl")
            .build()
            .map_err(internal)?;
        match self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already enabled (by a concurrent opener).
            Err(e) if is_code(&e, "ValidationException") => Ok(()),
            Err(e) => Err(self.sdk_err("UpdateTimeToLive", e)),
        }
    }

    /// Map an SDK error onto the taxonomy; the SDK's types stay private.
    fn sdk_err<E, R>(&self, op: &str, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(&e).to_string();
        let (kind, what) = match &e {
            SdkError::TimeoutError(_) => (ErrorKind::Timeout, "timed out"),
            SdkError::DispatchFailure(d) if d.is_timeout() => (ErrorKind::Timeout, "timed out"),
            SdkError::DispatchFailure(_) => (ErrorKind::Unavailable, "cannot reach DynamoDB"),
            SdkError::ResponseError(_) => (ErrorKind::Unavailable, "unreadable response"),
            SdkError::ConstructionFailure(_) => (ErrorKind::Internal, "bad request"),
            SdkError::ServiceError(_) => match e.code().unwrap_or("") {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException" => (ErrorKind::Unavailable, "throttled"),
                "InternalServerError" | "ServiceUnavailable" | "InternalFailure" => {
                    (ErrorKind::Unavailable, "server error")
                }
                "ResourceNotFoundException" => (ErrorKind::Unavailable, "table missing"),
                "UnrecognizedClientException"
                | "AccessDeniedException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException" => (ErrorKind::Unavailable, "credentials refused"),
                "ItemCollectionSizeLimitExceededException" => {
                    (ErrorKind::LimitExceeded, "item collection full")
                }
                "ValidationException"
                    if e.message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("size")) =>
                {
                    (ErrorKind::LimitExceeded, "item too large")
                }
                "ConditionalCheckFailedException"
                | "TransactionConflictException"
                | "TransactionInProgressException" => (ErrorKind::Conflict, "conflict"),
                _ => (ErrorKind::Backend, "error"),
            },
            _ => (ErrorKind::Backend, "error"),
        };
        Error::new(
            kind,
            format!("DynamoDB {op} on table {:?}: {what}: {detail}", self.table),
        )
        .with_source(e)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the DynamoDB store is closed",
            ));
        }
        Ok(())
    }

    /// `(exp, ttl)` of a session renewed at `now`.
    fn renew(&self, now: i64, ttl_ms: u64) -> (i64, i64) {
        let exp = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        let ttl = (exp / 1000 + 1).saturating_add(self.ttl_grace_s);
        (exp, ttl)
    }

    /// The session item, expired or not.
    async fn read_session(&self, id: &str) -> Result<Option<Sess>> {
        self.check_open()?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.session_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetItem", e))?;
        let sess = out.item.as_ref().map(Sess::from_item).transpose()?;
        match &sess {
            Some(sess) => self.remember(sess),
            None => {
                self.cache.remove(id);
            }
        }
        Ok(sess)
    }

    /// The live session, or `NotFound`.
    async fn live_session(&self, id: &str) -> Result<Sess> {
        match self.read_session(id).await? {
            Some(s) if s.live(now_ms()) => Ok(s),
            _ => Err(Error::session_not_found(id)),
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxFail> {
        self.check_open().map_err(TxFail::Other)?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let codes: Vec<Option<String>> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_string))
                        .collect();
                    if codes.iter().flatten().any(|c| {
                        matches!(
                            c.as_str(),
                            "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    }) {
                        return Err(TxFail::Retry);
                    }
                    if let Some(bad) = codes
                        .iter()
                        .flatten()
                        .find(|c| c.as_str() != "ConditionalCheckFailed")
                    {
                        let kind = if bad.contains("Size") || bad.contains("size") {
                            ErrorKind::LimitExceeded
                        } else {
                            ErrorKind::Backend
                        };
                        return Err(TxFail::Other(Error::new(
                            kind,
                            format!(
                                "DynamoDB TransactWriteItems on table {:?} was cancelled: {bad}: {}",
                                self.table,
                                DisplayErrorContext(&e)
                            ),
                        )));
                    }
                    return Err(TxFail::Cancelled(codes));
                }
                if is_code(&e, "TransactionConflictException")
                    || is_code(&e, "TransactionInProgressException")
                {
                    return Err(TxFail::Retry);
                }
                Err(TxFail::Other(self.sdk_err("TransactWriteItems", e)))
            }
        }
    }

    /// The session update every write makes: renew, and maybe bump `ver`,
    /// on condition that the session is the incarnation read and live.
    fn session_update(
        &self,
        sess: &Sess,
        now: i64,
        set: &str,
        condition: &str,
        mut vals: Vec<(&str, AttributeValue)>,
    ) -> Result<Update> {
        let (exp, ttl) = self.renew(now, sess.ttl_ms);
        let update = format!("SET #la = :now, #exp = :exp, #ttl = :ttl{set}");
        let cond = format!("#gen = :gen AND #exp > :now{condition}");
        vals.extend([
            (":now", n(now)),
            (":exp", n(exp)),
            (":ttl", n(ttl)),
            (":gen", s(sess.gen_.clone())),
        ]);
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.session_key(&sess.id)))
            .set_expression_attribute_names(names(&[&update, &cond]))
            .update_expression(update)
            .condition_expression(cond)
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(internal)
    }

    /// Delete everything in a child partition; returns (state, events)
    /// removed.
    async fn purge(&self, pk: &str) -> Result<(u64, u64)> {
        let mut start: Option<Item> = None;
        let (mut state, mut events) = (0, 0);
        loop {
            self.check_open()?;
            let kc = "#pk = :pk";
            let proj = "#pk, #sk";
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .projection_expression(proj)
                .set_expression_attribute_names(names(&[kc, proj]))
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            let mut keys = Vec::new();
            for item in out.items() {
                let sk = get_str(item, "sk")?;
                if sk.starts_with("K#") {
                    state += 1;
                } else {
                    events += 1;
                }
                keys.push(child_key(pk, sk.to_string()));
            }
            self.batch_delete(keys).await?;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((state, events)),
            }
        }
    }

    /// Delete items by key, 25 per `BatchWriteItem`, retrying unprocessed
    /// ones.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<()> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(internal)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                self.check_open()?;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| self.sdk_err("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    if attempt > 30 {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            "DynamoDB BatchWriteItem kept leaving items unprocessed (throttled)",
                        ));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Query one shard partition of session items, filtered.
    async fn query_shard(
        &self,
        shard: u32,
        after: Option<&str>,
        filter: &str,
        now: i64,
        want: usize,
    ) -> Result<Vec<Sess>> {
        let kc = if after.is_some() {
            "#pk = :pk AND #sk > :after"
        } else {
            "#pk = :pk"
        };
        let mut vals = vec![(":pk", s(shard_pk_of(shard))), (":now", n(now))];
        if let Some(a) = after {
            vals.push((":after", s(a)));
        }
        let vals = values(vals);
        let mut out_items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.check_open()?;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .filter_expression(filter)
                .set_expression_attribute_names(names(&[kc, filter]))
                .set_expression_attribute_values(vals.clone())
                .consistent_read(true)
                .limit(i32::try_from(want.clamp(1, 1000)).unwrap_or(1000))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            for item in out.items() {
                out_items.push(Sess::from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && out_items.len() < want => start = Some(k),
                _ => return Ok(out_items),
            }
        }
    }

    async fn count_shard(&self, shard: u32, now: i64) -> Result<u64> {
        let kc = "#pk = :pk";
        let filter = "#exp > :now";
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            self.check_open()?;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .filter_expression(filter)
                .select(Select::Count)
                .set_expression_attribute_names(names(&[kc, filter]))
                .expression_attribute_values(":pk", s(shard_pk_of(shard)))
                .expression_attribute_values(":now", n(now))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    async fn count_live(&self, now: i64) -> Result<u64> {
        let counts =
            futures::future::try_join_all((0..self.shards).map(|sh| self.count_shard(sh, now)))
                .await?;
        Ok(counts.into_iter().sum())
    }

    /// Delete events `from..=to` of a session's partition (a trim that
    /// dropped more than one event, e.g. after `max_events_per_session` was
    /// lowered).
    async fn delete_event_range(&self, pk: &str, from: u64, to: u64) -> Result<()> {
        let kc = "#pk = :pk AND #sk BETWEEN :a AND :b";
        let proj = "#pk, #sk";
        let mut start: Option<Item> = None;
        loop {
            self.check_open()?;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .projection_expression(proj)
                .set_expression_attribute_names(names(&[kc, proj]))
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":a", s(event_sk(from)))
                .expression_attribute_values(":b", s(event_sk(to)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            let keys = out
                .items()
                .iter()
                .map(|i| get_str(i, "sk").map(|sk| child_key(pk, sk.to_string())))
                .collect::<Result<Vec<_>>>()?;
            self.batch_delete(keys).await?;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// Remove one expired session found by cleanup: its partition, then its
    /// item (only if it is still that expired incarnation).
    async fn cleanup_one(&self, sess: Sess, now: i64) -> Result<CleanupStats> {
        let (state, events) = self.purge(&sess.child_pk()).await?;
        let cond = "#gen = :gen AND #exp <= :now";
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.session_key(&sess.id)))
            .condition_expression(cond)
            .set_expression_attribute_names(names(&[cond]))
            .expression_attribute_values(":gen", s(sess.gen_.clone()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(CleanupStats::new(1, state, events)),
            Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                Ok(CleanupStats::new(0, state, events))
            }
            Err(e) => Err(self.sdk_err("DeleteItem", e)),
        }
    }
}

#[async_trait]
impl Backend for DynamoBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("dynamodb", true)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        self.check_open()?;
        if let Some(max) = self.limits.max_sessions
            && self.count_live(now_ms()).await? >= max
        {
            return Err(Error::session_limit(max));
        }
        let meta =
            serde_json::to_string(&req.metadata).map_err(|e| Error::invalid(e.to_string()))?;
        // A new id is the common case: try the put first, and read only
        // when something is stored under the id.
        let mut known = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let existing = if known {
                self.read_session(&req.id).await?
            } else {
                None
            };
            let now = now_ms();
            let (exp, ttl) = self.renew(now, req.ttl_ms);
            let sess = Sess {
                id: req.id.clone(),
                gen_: new_gen(),
                created_at: now,
                last_activity: now,
                expires_at: exp,
                ttl_ms: req.ttl_ms,
                meta: meta.clone(),
                version: 1,
                last_seq: 0,
                trimmed: 0,
            };
            let mut item = self.session_key(&req.id);
            item.extend([
                ("gen".to_string(), s(sess.gen_.clone())),
                ("ca".to_string(), n(now)),
                ("la".to_string(), n(now)),
                ("exp".to_string(), n(exp)),
                ("tms".to_string(), n(req.ttl_ms)),
                ("meta".to_string(), s(meta.clone())),
                ("ver".to_string(), n(1)),
                ("lseq".to_string(), n(0)),
                ("trim".to_string(), n(0)),
                ("ttl".to_string(), n(ttl)),
            ]);
            check_item_size("the session's metadata", &item)?;
            let (cond, vals) = match &existing {
                Some(old) if old.live(now) => return Err(Error::session_exists(&req.id)),
                Some(old) => {
                    // The old incarnation expired: it is invisible; clear its
                    // partition, then replace it.
                    self.purge(&old.child_pk()).await?;
                    (
                        "#gen = :ogen AND #exp <= :now",
                        vec![(":ogen", s(old.gen_.clone())), (":now", n(now))],
                    )
                }
                None => ("attribute_not_exists(#sk)", vec![]),
            };
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .set_expression_attribute_values(values(vals))
                .send()
                .await;
            match put {
                Ok(_) => {
                    self.remember(&sess);
                    return sess.to_session();
                }
                // Something is stored under the id (or another creator got
                // there first): read it to see.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    if known {
                        backoff(attempt).await;
                    }
                    known = true;
                }
                Err(e) => return Err(self.sdk_err("PutItem", e)),
            }
        }
        Err(contended(&req.id))
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        match self.read_session(id).await? {
            Some(s) if s.live(now_ms()) => Ok(Some(s.to_session()?)),
            _ => Ok(None),
        }
    }

    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let sess = self.guess(id, fresh).await?;
            let mut merged = sess.metadata()?;
            merged.extend(patch.clone());
            validate::metadata(&merged, self.limits.max_payload_bytes)?;
            let meta = serde_json::to_string(&merged).map_err(|e| Error::invalid(e.to_string()))?;
            let mut probe = self.session_key(id);
            probe.insert("meta".to_string(), s(meta.clone()));
            probe.insert("gen".to_string(), s(sess.gen_.clone()));
            check_item_size("the session's metadata", &probe)?;
            let now = now_ms();
            let (exp, ttl) = self.renew(now, sess.ttl_ms);
            let update = "SET #meta = :meta, #ver = :nver, #la = :now, #exp = :exp, #ttl = :ttl";
            let cond = "#gen = :gen AND #ver = :over AND #exp > :now";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .set_expression_attribute_values(values(vec![
                    (":meta", s(meta)),
                    (":nver", n(sess.version + 1)),
                    (":over", n(sess.version)),
                    (":now", n(now)),
                    (":exp", n(exp)),
                    (":ttl", n(ttl)),
                    (":gen", s(sess.gen_.clone())),
                ]))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("Attributes"))?;
                    let sess = Sess::from_item(&item)?;
                    self.remember(&sess);
                    return sess.to_session();
                }
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    if fresh {
                        backoff(attempt).await;
                    }
                    fresh = true;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            }
        }
        Err(contended(id))
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        let _lock = self.lock(id).await;
        self.touch(id).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let _lock = self.lock(id).await;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let Some(sess) = self.read_session(id).await? else {
                return Ok(false);
            };
            // Expire it first: from here on, every reader sees it gone.
            let update = "SET #exp = :zero";
            let cond = "#gen = :gen";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":gen", s(sess.gen_.clone()))
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            let old = match out {
                Ok(out) => out.attributes.ok_or_else(|| corrupt("Attributes"))?,
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            };
            let was_live = get_num::<i64>(&old, "exp")? > now_ms();
            self.cache.remove(id);
            self.purge(&sess.child_pk()).await?;
            let cond = "#gen = :gen";
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .expression_attribute_values(":gen", s(sess.gen_.clone()))
                .send()
                .await
            {
                Ok(_) => {}
                // Re-created meanwhile: the new session stays.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {}
                Err(e) => return Err(self.sdk_err("DeleteItem", e)),
            }
            return Ok(was_live);
        }
        Err(contended(id))
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        self.check_open()?;
        let now = now_ms();
        let want = limit.saturating_add(1);
        let shards = futures::future::try_join_all(
            (0..self.shards).map(|sh| self.query_shard(sh, after, "#exp > :now", now, want)),
        )
        .await?;
        let mut all: Vec<Sess> = shards.into_iter().flatten().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let more = all.len() > limit;
        let items = all
            .iter()
            .take(limit)
            .map(Sess::to_session)
            .collect::<Result<Vec<_>>>()?;
        let next = if more {
            items.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(Page::new(items, next))
    }

    async fn count_sessions(&self) -> Result<u64> {
        self.check_open()?;
        self.count_live(now_ms()).await
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        let sess = self.live_session(id).await?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(child_key(&sess.child_pk(), state_sk(key))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(StateEntry::new(
            key.to_string(),
            Json::from_stored(get_str(&item, "v")?.to_string()),
            get_num(&item, "ver")?,
        )))
    }

    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let pk = sess.child_pk();
            let version = sess.version + 1;
            let mut item = child_key(&pk, state_sk(key));
            item.insert("v".to_string(), s(value.as_str()));
            item.insert("ver".to_string(), n(version));
            check_item_size(&format!("state key {key:?}"), &item)?;
            let now = now_ms();
            let update = self.session_update(
                &sess,
                now,
                ", #ver = :nver",
                " AND #ver = :over",
                vec![(":nver", n(version)), (":over", n(sess.version))],
            )?;
            let (cond, vals) = match expected {
                Expected::Any => (None, vec![]),
                Expected::Absent => (Some("attribute_not_exists(#sk)"), vec![]),
                Expected::Version(v) => (Some("#ver = :expected"), vec![(":expected", n(v))]),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(cond.map(str::to_string))
                .set_expression_attribute_names(cond.and_then(|c| names(&[c])))
                .set_expression_attribute_values(values(vals))
                .build()
                .map_err(internal)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            match self.transact(items).await {
                Ok(()) => {
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version = version;
                    self.remember(&sess);
                    return Ok(version);
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        // The session changed (or went): re-read.
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    // The caller's condition failed: report what the key holds.
                    let current = self.get_state(id, key).await?.map(|e| e.version);
                    check_expected(key, expected, current)?;
                    // It holds now: it changed since; the compare-and-set lost.
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!("state key {key:?} changed during the write"),
                    ));
                }
            }
        }
        Err(contended(id))
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let now = now_ms();
            let update = self.session_update(
                &sess,
                now,
                ", #ver = :nver",
                " AND #ver = :over",
                vec![(":nver", n(sess.version + 1)), (":over", n(sess.version))],
            )?;
            let cond = "attribute_exists(#sk)";
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(child_key(&sess.child_pk(), state_sk(key))))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .build()
                .map_err(internal)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().delete(delete).build(),
            ];
            match self.transact(items).await {
                Ok(()) => {
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version += 1;
                    self.remember(&sess);
                    return Ok(true);
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    // No such key: nothing to delete, but the call still
                    // renews the session, as every write does.
                    self.touch(id).await?;
                    return Ok(false);
                }
            }
        }
        Err(contended(id))
    }

    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .state_all_inner(id, true)
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }

    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        self.state_all_inner(id, false).await
    }

    async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
        let _lock = self.lock(id).await;
        let max = self.limits.max_events_per_session;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let pk = sess.child_pk();
            let seq = sess.last_seq + 1;
            let trimmed = sess.trimmed.max(seq.saturating_sub(max));
            let now = now_ms();
            let mut item = child_key(&pk, event_sk(seq));
            item.insert("st".to_string(), s(event.stream_id.clone()));
            if let Some(d) = &event.data {
                item.insert("d".to_string(), s(d.as_str()));
            }
            if let Some(t) = &event.event_type {
                item.insert("et".to_string(), s(t.clone()));
            }
            if let Some(r) = event.retry_ms {
                item.insert("rm".to_string(), n(r));
            }
            item.insert("ca".to_string(), n(now));
            check_item_size("the event", &item)?;
            // `ver` is bumped relative to what is stored, so a state write
            // since the cached read does not make the append retry.
            let update = self.session_update(
                &sess,
                now,
                ", #ver = #ver + :one, #lseq = :seq, #trim = :trim",
                " AND #lseq = :olseq",
                vec![
                    (":one", n(1)),
                    (":seq", n(seq)),
                    (":trim", n(trimmed)),
                    (":olseq", n(sess.last_seq)),
                ],
            )?;
            let cond = "attribute_not_exists(#sk)";
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .build()
                .map_err(internal)?;
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            // The common trim drops exactly one event: in the same commit.
            let one_trim = trimmed == sess.trimmed + 1;
            if one_trim {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(child_key(&pk, event_sk(trimmed))))
                    .build()
                    .map_err(internal)?;
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
            match self.transact(items).await {
                Ok(()) => {
                    let old_trimmed = sess.trimmed;
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version += 1;
                    sess.last_seq = seq;
                    sess.trimmed = trimmed;
                    self.remember(&sess);
                    if trimmed > old_trimmed && !one_trim {
                        // Readers already treat these as gone (`trim`).
                        self.delete_event_range(&pk, old_trimmed + 1, trimmed)
                            .await?;
                    }
                    return Ok(Event::new(id.to_string(), seq, event, now));
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        // Another append (or a delete) came first: re-read.
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "session '{id}': an event with seq {seq} exists though the session's last seq is {}",
                            sess.last_seq
                        ),
                    ));
                }
            }
        }
        Err(contended(id))
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        let sess = self.live_session(id).await?;
        check_cursor(cursor, sess.last_seq, sess.trimmed)?;
        if cursor.seq >= sess.last_seq {
            return Ok(Page::new(Vec::new(), None));
        }
        let pk = sess.child_pk();
        let kc = "#pk = :pk AND #sk BETWEEN :a AND :b";
        let filter = "#st = :st";
        let vals = values(vec![
            (":pk", s(pk.clone())),
            (":a", s(event_sk(cursor.seq + 1))),
            (":b", s(event_sk(sess.last_seq))),
            (":st", s(cursor.stream_id.clone())),
        ]);
        let want = limit.saturating_add(1);
        let mut items: Vec<Event> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.check_open()?;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .filter_expression(filter)
                .set_expression_attribute_names(names(&[kc, filter]))
                .set_expression_attribute_values(vals.clone())
                .consistent_read(true)
                .limit(i32::try_from(want.clamp(100, 1000)).unwrap_or(1000))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            for item in out.items() {
                if items.len() >= want {
                    break;
                }
                let sk = get_str(item, "sk")?;
                let seq: u64 = sk
                    .strip_prefix("E#")
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| corrupt("sk"))?;
                items.push(Event {
                    session_id: id.to_string(),
                    seq,
                    stream_id: cursor.stream_id.clone(),
                    data: get_opt_str(item, "d")?.map(Json::from_stored),
                    event_type: get_opt_str(item, "et")?,
                    retry_ms: get_opt_num(item, "rm")?,
                    created_at: get_num(item, "ca")?,
                });
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() < want => start = Some(k),
                _ => break,
            }
        }
        // Trimming may have run while the query did: re-check, so a cursor
        // whose successors were dropped is reported, never skipped.
        let after = self.live_session(id).await?;
        if after.gen_ != sess.gen_ {
            return Err(Error::session_not_found(id));
        }
        check_cursor(cursor, after.last_seq, after.trimmed)?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(Event::wire_id)
        } else {
            None
        };
        Ok(Page::new(items, next))
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        self.check_open()?;
        let now = now_ms();
        let mut total = CleanupStats::default();
        for shard in 0..self.shards {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .query_shard(
                        shard,
                        after.as_deref(),
                        "#exp <= :now",
                        now,
                        CLEANUP_PAGE as usize,
                    )
                    .await?;
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|s| s.id.clone());
                let results: Vec<Result<CleanupStats>> = futures::stream::iter(page)
                    .map(|sess| self.cleanup_one(sess, now))
                    .buffer_unordered(CLEANUP_CONCURRENCY)
                    .collect()
                    .await;
                for r in results {
                    total.add(r?);
                }
            }
        }
        Ok(total)
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

impl DynamoBackend {
    /// Renew a session's expiry (the caller holds its lock).
    async fn touch(&self, id: &str) -> Result<Session> {
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let sess = self.guess(id, fresh).await?;
            let now = now_ms();
            let (exp, ttl) = self.renew(now, sess.ttl_ms);
            // `exp` only grows: a concurrent renewal with a later `now` wins.
            let update = "SET #la = :now, #exp = :exp, #ttl = :ttl";
            let cond = "#gen = :gen AND #exp > :now AND #exp < :exp";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .set_expression_attribute_values(values(vec![
                    (":now", n(now)),
                    (":exp", n(exp)),
                    (":ttl", n(ttl)),
                    (":gen", s(sess.gen_.clone())),
                ]))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("Attributes"))?;
                    let sess = Sess::from_item(&item)?;
                    self.remember(&sess);
                    return sess.to_session();
                }
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    // Renewed meanwhile at least as far (same millisecond):
                    // that renewal stands for this one.
                    let again = self.live_session(id).await?;
                    if again.gen_ == sess.gen_ && again.expires_at >= exp {
                        return again.to_session();
                    }
                    if fresh {
                        backoff(attempt).await;
                    }
                    fresh = true;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            }
        }
        Err(contended(id))
    }

    async fn state_all_inner(&self, id: &str, keys_only: bool) -> Result<Vec<StateEntry>> {
        let sess = self.live_session(id).await?;
        let pk = sess.child_pk();
        let kc = "#pk = :pk AND begins_with(#sk, :k)";
        let proj = if keys_only { Some("#sk") } else { None };
        let mut exprs = vec![kc];
        exprs.extend(proj);
        let mut out_entries = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.check_open()?;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(kc)
                .set_projection_expression(proj.map(str::to_string))
                .set_expression_attribute_names(names(&exprs))
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":k", s("K#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_err("Query", e))?;
            for item in out.items() {
                let key = get_str(item, "sk")?
                    .strip_prefix("K#")
                    .ok_or_else(|| corrupt("sk"))?
                    .to_string();
                if keys_only {
                    out_entries.push(StateEntry::new(key, Json::from_stored("null".into()), 0));
                } else {
                    out_entries.push(StateEntry::new(
                        key,
                        Json::from_stored(get_str(item, "v")?.to_string()),
                        get_num(item, "ver")?,
                    ));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out_entries),
            }
        }
    }
}
