//! `memory://`: everything in this process, gone when the store is dropped.
//!
//! Sessions live in a sharded concurrent map ([`DashMap`]); each session's
//! data sits behind its own mutex. A call takes a shard lock only long enough
//! to clone the session's `Arc`, then locks that one session, so calls on
//! different sessions never wait on each other and there is no global lock
//! on any hot path. Events are kept in a ring (`VecDeque`) ordered by `seq`;
//! as trimming only ever removes the oldest, the ring is contiguous and a
//! cursor's position is an index computation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::backend::{Backend, BackendInfo, Expected, check_cursor, check_expected};
use crate::error::{Error, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};
use crate::options::{Limits, StoreUrl};
use crate::time::now_ms;
use crate::validate;

/// The in-memory backend.
#[derive(Debug)]
pub struct MemoryBackend {
    sessions: DashMap<String, Arc<Mutex<Slot>>, foldhash::fast::RandomState>,
    /// Sessions held in the map, expired ones included.
    stored: AtomicU64,
    /// Serializes creation while `max_sessions` is set, so the limit holds
    /// exactly under concurrency.
    create_gate: tokio::sync::Mutex<()>,
    limits: Limits,
}

#[derive(Debug)]
struct Slot {
    /// Set when the session was deleted or replaced while a caller held
    /// this slot's `Arc`.
    gone: bool,
    id: String,
    created_at: i64,
    last_activity: i64,
    expires_at: i64,
    ttl_ms: u64,
    metadata: Map<String, Value>,
    version: u64,
    last_seq: u64,
    trimmed_through: u64,
    state: BTreeMap<String, (Json, u64)>,
    events: VecDeque<StoredEvent>,
}

#[derive(Debug, Clone)]
struct StoredEvent {
    seq: u64,
    stream_id: Arc<str>,
    data: Option<Json>,
    event_type: Option<Arc<str>>,
    retry_ms: Option<u32>,
    created_at: i64,
}

impl Slot {
    fn live(&self, now: i64) -> bool {
        !self.gone && self.expires_at > now
    }

    fn session(&self) -> Session {
        Session {
            id: self.id.clone(),
            created_at: self.created_at,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            ttl_ms: self.ttl_ms,
            metadata: self.metadata.clone(),
            version: self.version,
            last_seq: self.last_seq,
        }
    }

    /// Record a write: renew the TTL and bump the version.
    fn write(&mut self, now: i64) -> u64 {
        self.renew(now);
        self.version += 1;
        self.version
    }

    fn renew(&mut self, now: i64) {
        self.last_activity = now;
        self.expires_at = now.saturating_add(self.ttl_ms as i64);
    }

    fn event(&self, e: &StoredEvent) -> Event {
        Event {
            session_id: self.id.clone(),
            seq: e.seq,
            stream_id: e.stream_id.to_string(),
            data: e.data.clone(),
            event_type: e.event_type.as_deref().map(str::to_string),
            retry_ms: e.retry_ms,
            created_at: e.created_at,
        }
    }

    fn stream(&self, name: &str) -> Arc<str> {
        // Reuse the allocation of the newest event on the same stream: a
        // session usually has a handful of streams.
        self.events
            .iter()
            .rev()
            .take(8)
            .find(|e| &*e.stream_id == name)
            .map(|e| e.stream_id.clone())
            .unwrap_or_else(|| Arc::from(name))
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new(limits: Limits) -> Self {
        MemoryBackend {
            sessions: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            stored: AtomicU64::new(0),
            create_gate: tokio::sync::Mutex::new(()),
            limits,
        }
    }

    /// Open `memory://`, which takes no path and no options of its own.
    pub fn open(url: &mut StoreUrl, limits: Limits) -> Result<Self> {
        if !url.location.is_empty() {
            return Err(Error::invalid("memory:// takes no path"));
        }
        url.finish()?;
        Ok(MemoryBackend::new(limits))
    }

    fn slot(&self, id: &str) -> Option<Arc<Mutex<Slot>>> {
        self.sessions.get(id).map(|r| r.value().clone())
    }

    /// Run `f` on the live session `id`, or fail with `NotFound`.
    fn with_live<T>(&self, id: &str, f: impl FnOnce(&mut Slot, i64) -> Result<T>) -> Result<T> {
        let slot = self.slot(id).ok_or_else(|| Error::session_not_found(id))?;
        let mut s = slot.lock();
        let now = now_ms();
        if !s.live(now) {
            return Err(Error::session_not_found(id));
        }
        f(&mut s, now)
    }

    fn count_live(&self, now: i64) -> u64 {
        self.sessions
            .iter()
            .filter(|r| r.value().lock().live(now))
            .count() as u64
    }

    fn insert(&self, req: CreateSession, now: i64) -> Result<Session> {
        let slot = Slot {
            gone: false,
            id: req.id.clone(),
            created_at: now,
            last_activity: now,
            expires_at: now.saturating_add(req.ttl_ms as i64),
            ttl_ms: req.ttl_ms,
            metadata: req.metadata,
            version: 1,
            last_seq: 0,
            trimmed_through: 0,
            state: BTreeMap::new(),
            events: VecDeque::new(),
        };
        let session = slot.session();
        match self.sessions.entry(req.id) {
            Entry::Occupied(mut occupied) => {
                let mut old = occupied.get().lock();
                if old.live(now) {
                    return Err(Error::session_exists(&session.id));
                }
                // The old session expired: it is invisible, so replace it.
                old.gone = true;
                drop(old);
                occupied.insert(Arc::new(Mutex::new(slot)));
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Arc::new(Mutex::new(slot)));
                self.stored.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(session)
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("memory", false)
    }

    async fn create_session(&self, req: CreateSession) -> Result<Session> {
        let Some(max) = self.limits.max_sessions else {
            return self.insert(req, now_ms());
        };
        let _gate = self.create_gate.lock().await;
        let now = now_ms();
        if self.stored.load(Ordering::Relaxed) >= max && self.count_live(now) >= max {
            return Err(Error::session_limit(max));
        }
        self.insert(req, now)
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        let Some(slot) = self.slot(id) else {
            return Ok(None);
        };
        let s = slot.lock();
        Ok(s.live(now_ms()).then(|| s.session()))
    }

    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        let max = self.limits.max_payload_bytes;
        self.with_live(id, |s, now| {
            let mut merged = s.metadata.clone();
            merged.extend(patch);
            validate::metadata(&merged, max)?;
            s.metadata = merged;
            s.write(now);
            Ok(s.session())
        })
    }

    async fn touch_session(&self, id: &str) -> Result<Session> {
        self.with_live(id, |s, now| {
            s.renew(now);
            Ok(s.session())
        })
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let Some((_, slot)) = self.sessions.remove(id) else {
            return Ok(false);
        };
        self.stored.fetch_sub(1, Ordering::Relaxed);
        let mut s = slot.lock();
        let was_live = s.live(now_ms());
        s.gone = true;
        s.state.clear();
        s.events.clear();
        Ok(was_live)
    }

    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        let now = now_ms();
        // A bounded max-heap of the `limit + 1` smallest ids after `after`.
        let mut best: std::collections::BinaryHeap<String> = std::collections::BinaryHeap::new();
        for r in self.sessions.iter() {
            let id = r.key();
            if after.is_some_and(|a| id.as_str() <= a) {
                continue;
            }
            if best.len() > limit && best.peek().is_some_and(|top| id >= top) {
                continue;
            }
            if !r.value().lock().live(now) {
                continue;
            }
            best.push(id.clone());
            if best.len() > limit + 1 {
                best.pop();
            }
        }
        let ids = best.into_sorted_vec();
        let mut items = Vec::with_capacity(limit);
        for id in ids.iter().take(limit) {
            if let Some(slot) = self.slot(id) {
                let s = slot.lock();
                if s.live(now) {
                    items.push(s.session());
                }
            }
        }
        let next = (ids.len() > limit)
            .then(|| items.last().map(|s| s.id.clone()))
            .flatten();
        Ok(Page::new(items, next))
    }

    async fn count_sessions(&self) -> Result<u64> {
        Ok(self.count_live(now_ms()))
    }

    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        self.with_live(id, |s, _| {
            Ok(s.state
                .get(key)
                .map(|(v, ver)| StateEntry::new(key.to_string(), v.clone(), *ver)))
        })
    }

    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64> {
        self.with_live(id, |s, now| {
            let current = s.state.get(key).map(|(_, v)| *v);
            check_expected(key, expected, current)?;
            let version = s.write(now);
            match s.state.get_mut(key) {
                Some(entry) => *entry = (value, version),
                None => {
                    s.state.insert(key.to_string(), (value, version));
                }
            }
            Ok(version)
        })
    }

    async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        self.with_live(id, |s, now| {
            let existed = s.state.remove(key).is_some();
            if existed {
                s.write(now);
            } else {
                s.renew(now);
            }
            Ok(existed)
        })
    }

    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        self.with_live(id, |s, _| Ok(s.state.keys().cloned().collect()))
    }

    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        self.with_live(id, |s, _| {
            Ok(s.state
                .iter()
                .map(|(k, (v, ver))| StateEntry::new(k.clone(), v.clone(), *ver))
                .collect())
        })
    }

    async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
        let max = self.limits.max_events_per_session;
        self.with_live(id, |s, now| {
            s.write(now);
            s.last_seq += 1;
            let stored = StoredEvent {
                seq: s.last_seq,
                stream_id: s.stream(&event.stream_id),
                data: event.data.clone(),
                event_type: event.event_type.as_deref().map(Arc::from),
                retry_ms: event.retry_ms,
                created_at: now,
            };
            s.events.push_back(stored);
            while s.events.len() as u64 > max {
                if let Some(old) = s.events.pop_front() {
                    s.trimmed_through = old.seq;
                }
            }
            Ok(Event::new(s.id.clone(), s.last_seq, event, now))
        })
    }

    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>> {
        self.with_live(id, |s, _| {
            check_cursor(cursor, s.last_seq, s.trimmed_through)?;
            // The ring holds seqs trimmed_through+1 ..= last_seq, in order.
            let start = (cursor.seq - s.trimmed_through.min(cursor.seq)) as usize;
            let mut items = Vec::new();
            let mut more = false;
            for e in s.events.iter().skip(start) {
                if &*e.stream_id != cursor.stream_id.as_str() {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(s.event(e));
            }
            let next = if more {
                items.last().map(Event::wire_id)
            } else {
                None
            };
            Ok(Page::new(items, next))
        })
    }

    async fn cleanup_expired(&self) -> Result<CleanupStats> {
        let now = now_ms();
        let mut stats = CleanupStats::default();
        self.sessions.retain(|_, slot| {
            let mut s = slot.lock();
            if s.live(now) {
                return true;
            }
            if !s.gone {
                stats.add(CleanupStats::new(
                    1,
                    s.state.len() as u64,
                    s.events.len() as u64,
                ));
            }
            s.gone = true;
            s.state.clear();
            s.events.clear();
            false
        });
        self.stored.fetch_sub(stats.sessions, Ordering::Relaxed);
        Ok(stats)
    }
}
