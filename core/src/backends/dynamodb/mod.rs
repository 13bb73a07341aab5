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
//!
//! # Code
//!
//! `config` parses the options above, `table` sets up the client and the
//! table, `item` encodes and decodes items, `query` pages through a
//! `Query`, `write` holds what every write shares (lock, cache,
//! transactions), and `sessions`, `state`, `events` and `purge` implement
//! the operations.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use dashmap::DashMap;
use serde_json::{Map, Value};

use crate::backend::{Backend, BackendInfo, Expected};
use crate::backends::common;
use crate::error::Result;
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;

pub(crate) mod config;
mod errors;
mod events;
mod item;
mod purge;
mod query;
mod sessions;
mod state;
mod table;
mod write;

pub(crate) use config::DynamoConfig;
use item::{Item, Sess, s, shard_pk_of};

/// Shard partitions of the session items in a new table.
const DEFAULT_SHARDS: u32 = 4;

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

impl DynamoBackend {
    /// Open the table named by `url.location`.
    pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<DynamoBackend> {
        Self::open_config(DynamoConfig::from_url(url)?, limits).await
    }

    /// [`DynamoBackend::open`] with the URL's table and options parsed
    /// already.
    pub(crate) async fn open_config(config: DynamoConfig, limits: Limits) -> Result<DynamoBackend> {
        crate::runtime::current_runtime()?;
        let mut backend = DynamoBackend {
            client: table::client(&config).await?,
            table: config.table,
            shards: DEFAULT_SHARDS,
            cache: DashMap::new(),
            locks: DashMap::new(),
            limits,
            ttl_grace_s: i64::try_from(config.ttl_grace.as_secs()).unwrap_or(i64::MAX / 4),
            closed: AtomicBool::new(false),
        };
        backend.ensure_table(config.create_table).await?;
        backend.shards = backend.table_shards(config.shards).await?;
        Ok(backend)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(common::closed("DynamoDB"));
        }
        Ok(())
    }

    /// The key of a session's item: its shard partition and its id.
    fn session_key(&self, id: &str) -> Item {
        let shard = (crate::hash::fnv1a(id.as_bytes()) % u64::from(self.shards)) as u32;
        HashMap::from([
            ("pk".to_string(), s(shard_pk_of(shard))),
            ("sk".to_string(), s(id)),
        ])
    }
}

#[async_trait]
impl Backend for DynamoBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("dynamodb", true)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        self.create(req).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        match self.read_session(id).await? {
            Some(s) if s.live(now_ms()) => Ok(Some(s.to_session()?)),
            _ => Ok(None),
        }
    }

    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        self.update(id, patch).await
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        let _lock = self.lock(id).await;
        self.touch(id).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        self.delete(id).await
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        self.list(after, limit).await
    }

    async fn count_sessions(&self) -> Result<u64> {
        self.check_open()?;
        self.count_live(now_ms()).await
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        self.read_state(id, key).await
    }

    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64> {
        self.write_state(id, key, value, expected).await
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        self.remove_state(id, key).await
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
        self.append(id, event).await
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        self.replay(id, cursor, limit).await
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        self.cleanup().await
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
