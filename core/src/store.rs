//! [`Store`]: the handle every caller uses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::backend::{AppendListener, Backend, BackendInfo, Expected};
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{
    CleanupStats, CreateSession, Event, NewEvent, NewSession, Page, Session, StateEntry,
};
use crate::options::{StoreOptions, StoreUrl, duration_ms};
use crate::runtime::backoff;
use crate::subscribe::Subscription;
use crate::sweeper::Sweeper;
use crate::validate;
use crate::wakers::Wakers;

/// How many times [`Store::update_state`] retries a lost compare-and-set.
const UPDATE_ATTEMPTS: u32 = 1000;

/// A store: a validated front over one backend. Cheap to clone (an `Arc`);
/// every clone shares the backend, its connections and its caches.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    options: Arc<StoreOptions>,
    wakers: Arc<Wakers>,
}

impl Store {
    /// Open the store at `url` with default options (query parameters in the
    /// URL set them). See [`Store::open_with`].
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// Open the store at `url`: `memory://`, `sqlite://PATH`,
    /// `postgres://…`, `redis://…` / `rediss://…` or `dynamodb://TABLE?…`
    /// (each server backend behind its cargo feature).
    ///
    /// Query parameters in the URL override `options`; an unknown parameter
    /// or scheme is `InvalidInput`, a backend that cannot be reached
    /// `Unavailable`.
    pub async fn open_with(url: &str, mut options: StoreOptions) -> Result<Store> {
        let mut parsed = StoreUrl::parse(url)?;
        options.apply_url(&mut parsed)?;
        options.validate()?;
        let backend = crate::backends::open(&mut parsed, options.limits()).await?;
        Ok(Store {
            backend,
            options: Arc::new(options),
            wakers: Arc::default(),
        })
    }

    /// Wrap a backend of your own. The store validates inputs before calling
    /// it, with `options`.
    pub fn from_backend(backend: Arc<dyn Backend>, options: StoreOptions) -> Result<Store> {
        options.validate()?;
        Ok(Store {
            backend,
            options: Arc::new(options),
            wakers: Arc::default(),
        })
    }

    /// The backend's name (`"memory"`, `"sqlite"`, …).
    pub fn backend_name(&self) -> &'static str {
        self.backend.info().name
    }

    /// The backend's name and whether its data is shared between handles.
    pub fn backend_info(&self) -> BackendInfo {
        self.backend.info()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Finish pending writes and release the backend's connections.
    pub async fn close(&self) -> Result<()> {
        self.backend.close().await
    }

    // ---- sessions ------------------------------------------------------

    /// Create a session; an id already live is `AlreadyExists`.
    pub async fn create_session(&self, new: NewSession) -> Result<Session> {
        let id = match new.id {
            Some(id) => {
                validate::session_id(&id)?;
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        validate::metadata(&new.metadata, self.options.max_payload_bytes)?;
        let ttl_ms = match new.ttl {
            Some(ttl) => duration_ms(ttl),
            None => self.options.ttl_ms(),
        };
        validate::ttl_ms(ttl_ms)?;
        self.backend
            .create_session(CreateSession::new(id, new.metadata, ttl_ms))
            .await
    }

    /// A live session, or `None` (also once it expired).
    pub async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        validate::session_id(id)?;
        self.backend.get_session(id).await
    }

    /// Shallow-merge `patch` into the session's metadata and renew its TTL.
    pub async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        validate::session_id(id)?;
        validate::metadata(&patch, self.options.max_payload_bytes)?;
        self.backend.update_session(id, patch).await
    }

    /// Renew the session's TTL.
    pub async fn touch_session(&self, id: &str) -> Result<Session> {
        validate::session_id(id)?;
        self.backend.touch_session(id).await
    }

    /// Delete a session with its state and events. Idempotent: true if a
    /// live session was deleted.
    pub async fn delete_session(&self, id: &str) -> Result<bool> {
        validate::session_id(id)?;
        let deleted = self.backend.delete_session(id).await?;
        self.wakers.wake(id);
        Ok(deleted)
    }

    /// Live sessions in id order. Pass the page's `next` as `after` to
    /// continue.
    pub async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        if let Some(after) = after {
            validate::session_id(after)?;
        }
        validate::limit(limit)?;
        self.backend.list_sessions(after, limit).await
    }

    /// How many sessions are live.
    pub async fn count_sessions(&self) -> Result<u64> {
        self.backend.count_sessions().await
    }

    // ---- state ---------------------------------------------------------

    fn check_key(&self, id: &str, key: &str) -> Result<()> {
        validate::session_id(id)?;
        validate::state_key(key)
    }

    /// One state key; `None` if it is not set. A missing session is
    /// `NotFound`.
    pub async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        self.check_key(id, key)?;
        self.backend.get_state(id, key).await
    }

    /// Set one state key; returns its new version.
    pub async fn set_state(&self, id: &str, key: &str, value: impl Into<Json>) -> Result<u64> {
        self.set_state_if(id, key, value.into(), Expected::Any)
            .await
    }

    /// Compare-and-set: write only if the key is at `expected` (`None`: only
    /// if it does not exist). A mismatch is `Conflict` and writes nothing.
    pub async fn set_state_if_version(
        &self,
        id: &str,
        key: &str,
        value: impl Into<Json>,
        expected: Option<u64>,
    ) -> Result<u64> {
        let expected = match expected {
            Some(v) => Expected::Version(v),
            None => Expected::Absent,
        };
        self.set_state_if(id, key, value.into(), expected).await
    }

    async fn set_state_if(
        &self,
        id: &str,
        key: &str,
        value: Json,
        expected: Expected,
    ) -> Result<u64> {
        self.check_key(id, key)?;
        validate::payload("state value", &value, self.options.max_payload_bytes)?;
        self.backend.set_state(id, key, value, expected).await
    }

    /// Atomically replace a key's value with `f(current)`, retrying when
    /// another writer got in between (compare-and-set on the version). `f`
    /// may run several times; an error from `f` stops the update.
    ///
    /// N concurrent increments give N, on every backend and across
    /// processes. Gives up with `Conflict` after 1000 lost races.
    pub async fn update_state<F>(&self, id: &str, key: &str, mut f: F) -> Result<StateEntry>
    where
        F: FnMut(Option<Value>) -> Result<Value> + Send,
    {
        self.check_key(id, key)?;
        for attempt in 0..UPDATE_ATTEMPTS {
            let current = self.backend.get_state(id, key).await?;
            let (old, expected) = match current {
                Some(entry) => (
                    Some(entry.value.to_value()),
                    Expected::Version(entry.version),
                ),
                None => (None, Expected::Absent),
            };
            let value = Json::from(f(old)?);
            validate::payload("state value", &value, self.options.max_payload_bytes)?;
            match self
                .backend
                .set_state(id, key, value.clone(), expected)
                .await
            {
                Ok(version) => return Ok(StateEntry::new(key.to_string(), value, version)),
                Err(e) if e.kind() == ErrorKind::Conflict => backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("update of state key {key:?} lost {UPDATE_ATTEMPTS} races in a row"),
        ))
    }

    /// Delete one state key; true if it existed.
    pub async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
        self.check_key(id, key)?;
        self.backend.delete_state(id, key).await
    }

    /// Every state key of the session, sorted.
    pub async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        validate::session_id(id)?;
        self.backend.state_keys(id).await
    }

    /// Every state entry of the session, sorted by key.
    pub async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
        validate::session_id(id)?;
        self.backend.state_all(id).await
    }

    // ---- events --------------------------------------------------------

    /// Append an event to the session, trimming the oldest beyond
    /// `max_events_per_session`. Returns it with its `seq`.
    pub async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
        validate::session_id(id)?;
        validate::stream_id(&event.stream_id)?;
        if let Some(t) = &event.event_type {
            validate::event_type(t)?;
        }
        if let Some(data) = &event.data {
            validate::payload("event data", data, self.options.max_payload_bytes)?;
        }
        let event = self.backend.append_event(id, event).await?;
        self.wakers.wake(id);
        Ok(event)
    }

    /// Events of the cursor's stream after it, oldest first, at most `limit`.
    /// `CursorExpired` if trimming removed events after the cursor.
    pub async fn events_after(
        &self,
        id: &str,
        cursor: &EventId,
        limit: usize,
    ) -> Result<Page<Event>> {
        validate::session_id(id)?;
        validate::stream_id(&cursor.stream_id)?;
        validate::limit(limit)?;
        self.backend.events_after(id, cursor, limit).await
    }

    /// [`events_after`](Store::events_after) for a wire id (`Last-Event-ID`).
    /// An id from another session, or altered, is `InvalidInput` and replays
    /// nothing.
    pub async fn replay(&self, id: &str, last_event_id: &str, limit: usize) -> Result<Page<Event>> {
        validate::session_id(id)?;
        let cursor = EventId::parse(last_event_id, id)?;
        self.events_after(id, &cursor, limit).await
    }

    /// Follow one stream of a session: the events after `cursor`, then each
    /// new one as it is appended. See [`Subscription`].
    ///
    /// An unknown session is `NotFound` and an expired cursor
    /// `CursorExpired`, here rather than on the first `next`.
    pub async fn subscribe(&self, id: &str, cursor: EventId) -> Result<Subscription> {
        validate::session_id(id)?;
        validate::stream_id(&cursor.stream_id)?;
        self.watch_other_appends();
        Subscription::start(
            self.backend.clone(),
            self.wakers.clone(),
            self.options.poll_interval,
            id.to_string(),
            cursor,
        )
        .await
    }

    /// Ask the backend, once, to push other processes' appends to the wakers.
    fn watch_other_appends(&self) {
        if !self.wakers.start_watching() {
            return;
        }
        let wakers = Arc::downgrade(&self.wakers);
        let listener: AppendListener = Arc::new(move |id: &str| match wakers.upgrade() {
            Some(wakers) => {
                wakers.wake(id);
                true
            }
            None => false,
        });
        // Without pushes, or if they cannot start, subscriptions poll.
        if !matches!(self.backend.watch_appends(listener), Ok(true)) {
            self.wakers.stop_watching();
        }
    }

    // ---- expiry --------------------------------------------------------

    /// Delete every expired session with its state and events.
    pub async fn cleanup_expired(&self) -> Result<CleanupStats> {
        self.backend.cleanup_expired().await
    }

    /// Run [`cleanup_expired`](Store::cleanup_expired) every `interval` on
    /// the current tokio runtime until the returned handle is dropped.
    ///
    /// A zero interval is `InvalidInput`; calling it outside a tokio runtime
    /// is `Internal`.
    pub fn spawn_sweeper(&self, interval: Duration) -> Result<Sweeper> {
        if interval.is_zero() {
            return Err(Error::invalid("the sweeper interval must be above zero"));
        }
        Sweeper::spawn(self.backend.clone(), interval)
    }
}
