//! Native layer of the `mcp-session-store` npm package.
//!
//! Every store call is a `#[napi] async fn` that returns a Promise and runs
//! on napi-rs's tokio runtime. Errors carry the core's stable code as a
//! message prefix, `"not_found: session 'x' not found"`; the package's
//! `lib/index.js` turns them into `SessionStoreError` subclasses with
//! `.code`. Use the package entry point, not this layer directly: it also
//! checks argument types (`TypeError`).

#![deny(clippy::all)]

mod json;

use std::sync::Arc;
use std::time::Duration;

use mss_core::{
    CleanupStats, Event, EventId, NewEvent, NewSession, Page, Session, StateEntry, StoreOptions,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{Map, Value};

use crate::json::{JsonIn, JsonOut};

/// A core error as a JS error whose message starts with the stable code.
fn err(e: mss_core::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, e.to_string())
}

fn invalid(message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("invalid_input: {message}"))
}

/// A non-negative integer count or size from JS.
fn count(name: &str, n: f64) -> Result<u64> {
    if n.is_finite() && n >= 0.0 && n.trunc() == n && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(invalid(format!(
            "{name} must be a non-negative integer, got {n}"
        )))
    }
}

fn duration_ms(name: &str, ms: f64) -> Result<Duration> {
    Ok(Duration::from_millis(count(name, ms)?))
}

fn metadata(value: Option<JsonIn>, what: &str) -> Result<Map<String, Value>> {
    match value {
        None => Ok(Map::new()),
        Some(JsonIn(Value::Object(map))) => Ok(map),
        Some(_) => Err(invalid(format!("{what} must be a plain object"))),
    }
}

// ---- results ------------------------------------------------------------

/// A session.
#[napi(object, object_from_js = false)]
pub struct SessionInfo {
    /// 1–255 bytes of visible ASCII.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The last write or touch.
    pub last_activity: i64,
    /// When the session expires unless renewed.
    pub expires_at: i64,
    /// The sliding TTL in milliseconds.
    pub ttl_ms: i64,
    /// A JSON object, shallow-merged by `updateSession`.
    #[napi(ts_type = "Record<string, unknown>")]
    pub metadata: JsonOut,
    /// Bumped by every write to the session.
    pub version: i64,
    /// The seq of the newest event (0: none yet).
    pub last_seq: i64,
}

impl From<Session> for SessionInfo {
    fn from(s: Session) -> Self {
        SessionInfo {
            id: s.id,
            created_at: s.created_at,
            last_activity: s.last_activity,
            expires_at: s.expires_at,
            ttl_ms: s.ttl_ms as i64,
            metadata: JsonOut(Value::Object(s.metadata)),
            version: s.version as i64,
            last_seq: s.last_seq as i64,
        }
    }
}

/// One state key with its value and version.
#[napi(object, object_from_js = false)]
pub struct StateEntryInfo {
    /// The key.
    pub key: String,
    /// The value, as a JS value.
    #[napi(ts_type = "unknown")]
    pub value: JsonOut,
    /// The session version of the key's last write.
    pub version: i64,
}

impl From<StateEntry> for StateEntryInfo {
    fn from(e: StateEntry) -> Self {
        StateEntryInfo {
            value: JsonOut(e.value.to_value()),
            version: e.version as i64,
            key: e.key,
        }
    }
}

/// A stored event.
#[napi(object, object_from_js = false)]
pub struct EventInfo {
    /// The wire id to send on the SSE `id:` line (and expect back in
    /// `Last-Event-ID`).
    pub id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// Per-session, strictly increasing, never reused.
    pub seq: i64,
    /// The stream it was sent on.
    pub stream_id: String,
    /// The payload; absent on a priming event.
    #[napi(ts_type = "unknown")]
    pub data: Option<JsonOut>,
    /// True for a priming event (no data).
    pub priming: bool,
    /// The SSE `event:` field.
    pub event_type: Option<String>,
    /// The SSE `retry:` field, in milliseconds.
    pub retry_ms: Option<u32>,
    /// When it was appended (ms since the epoch).
    pub created_at: i64,
}

impl From<Event> for EventInfo {
    fn from(e: Event) -> Self {
        EventInfo {
            id: e.wire_id(),
            priming: e.is_priming(),
            data: e.data.map(|d| JsonOut(d.to_value())),
            session_id: e.session_id,
            seq: e.seq as i64,
            stream_id: e.stream_id,
            event_type: e.event_type,
            retry_ms: e.retry_ms,
            created_at: e.created_at,
        }
    }
}

/// A page of events.
#[napi(object, object_from_js = false)]
pub struct EventPage {
    /// The events, oldest first.
    pub items: Vec<EventInfo>,
    /// The cursor for the next page (wire id of the last item); absent on the
    /// last page.
    pub next: Option<String>,
}

impl From<Page<Event>> for EventPage {
    fn from(p: Page<Event>) -> Self {
        EventPage {
            items: p.items.into_iter().map(EventInfo::from).collect(),
            next: p.next,
        }
    }
}

/// A page of sessions.
#[napi(object, object_from_js = false)]
pub struct SessionPage {
    /// The sessions, in id order.
    pub items: Vec<SessionInfo>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// What `cleanupExpired` removed.
#[napi(object, object_from_js = false)]
pub struct CleanupInfo {
    /// Expired sessions removed.
    pub sessions: i64,
    /// Their state entries.
    pub state_entries: i64,
    /// Their events.
    pub events: i64,
}

impl From<CleanupStats> for CleanupInfo {
    fn from(c: CleanupStats) -> Self {
        CleanupInfo {
            sessions: c.sessions as i64,
            state_entries: c.state_entries as i64,
            events: c.events as i64,
        }
    }
}

/// A parsed event id.
#[napi(object)]
pub struct EventPosition {
    /// The stream.
    pub stream_id: String,
    /// The seq (0: the start of the stream).
    pub seq: i64,
}

// ---- options ------------------------------------------------------------

/// Options for `openStore`; URL query parameters win over them.
#[napi(object)]
pub struct OpenOptions {
    /// Sliding session TTL in milliseconds.
    pub ttl_ms: Option<f64>,
    /// Events kept per session.
    pub max_events_per_session: Option<f64>,
    /// Largest JSON payload in bytes.
    pub max_payload_bytes: Option<f64>,
    /// Most live sessions.
    pub max_sessions: Option<f64>,
    /// Subscription poll interval in milliseconds.
    pub poll_interval_ms: Option<f64>,
}

fn store_options(o: Option<OpenOptions>) -> Result<StoreOptions> {
    let mut opts = StoreOptions::default();
    let Some(o) = o else { return Ok(opts) };
    if let Some(v) = o.ttl_ms {
        opts = opts.with_ttl(duration_ms("ttlMs", v)?);
    }
    if let Some(v) = o.max_events_per_session {
        opts = opts.with_max_events_per_session(count("maxEventsPerSession", v)?);
    }
    if let Some(v) = o.max_payload_bytes {
        let n = count("maxPayloadBytes", v)?;
        opts = opts.with_max_payload_bytes(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(v) = o.max_sessions {
        opts = opts.with_max_sessions(Some(count("maxSessions", v)?));
    }
    if let Some(v) = o.poll_interval_ms {
        opts = opts.with_poll_interval(duration_ms("pollIntervalMs", v)?);
    }
    Ok(opts)
}

fn limit(n: Option<f64>, default: usize) -> Result<usize> {
    match n {
        None => Ok(default),
        Some(n) => Ok(usize::try_from(count("limit", n)?).unwrap_or(usize::MAX)),
    }
}

fn seq(n: f64) -> Result<u64> {
    count("seq", n)
}

// ---- the store ----------------------------------------------------------

/// Open the store at `url` (`memory://`, `sqlite://PATH`, …).
#[napi]
pub async fn open_store(url: String, options: Option<OpenOptions>) -> Result<NativeStore> {
    let options = store_options(options)?;
    let store = mss_core::Store::open_with(&url, options)
        .await
        .map_err(err)?;
    Ok(NativeStore { store })
}

/// Format the wire id of position (`streamId`, `seq`) in a session.
#[napi]
pub fn format_event_id(session_id: String, stream_id: String, seq: f64) -> Result<String> {
    mss_core::validate::session_id(&session_id).map_err(err)?;
    mss_core::validate::stream_id(&stream_id).map_err(err)?;
    Ok(EventId::new(stream_id, self::seq(seq)?).format(&session_id))
}

/// Parse a wire id that `sessionId` handed out; a foreign, altered or
/// malformed id is `invalid_input`.
#[napi]
pub fn parse_event_id(wire: String, session_id: String) -> Result<EventPosition> {
    mss_core::validate::session_id(&session_id).map_err(err)?;
    let id = EventId::parse(&wire, &session_id).map_err(err)?;
    Ok(EventPosition {
        stream_id: id.stream_id,
        seq: id.seq as i64,
    })
}

/// A new session id as the store mints them: a UUID v4 (122 random bits
/// from the OS CSPRNG). Synchronous, for the SDK's `sessionIdGenerator`.
#[napi]
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The core library's version.
#[napi]
pub fn core_version() -> String {
    mss_core::VERSION.to_string()
}

/// A store handle; share one between all requests of a process.
#[napi]
pub struct NativeStore {
    store: mss_core::Store,
}

#[napi]
impl NativeStore {
    /// The backend's name (`"memory"`, `"sqlite"`, …).
    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.store.backend_name().to_string()
    }

    /// Finish pending writes and release connections.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.store.close().await.map_err(err)
    }

    /// Create a session (`id` absent: a UUID v4).
    #[napi]
    pub async fn create_session(
        &self,
        id: Option<String>,
        #[napi(ts_arg_type = "Record<string, unknown> | undefined | null")] metadata: Option<
            JsonIn,
        >,
        ttl_ms: Option<f64>,
    ) -> Result<SessionInfo> {
        let mut new = NewSession::new().with_metadata(self::metadata(metadata, "metadata")?);
        if let Some(id) = id {
            new = new.with_id(id);
        }
        if let Some(ttl) = ttl_ms {
            new = new.with_ttl(duration_ms("ttlMs", ttl)?);
        }
        self.store
            .create_session(new)
            .await
            .map(SessionInfo::from)
            .map_err(err)
    }

    /// A live session, or `null`.
    #[napi]
    pub async fn get_session(&self, id: String) -> Result<Option<SessionInfo>> {
        Ok(self
            .store
            .get_session(&id)
            .await
            .map_err(err)?
            .map(SessionInfo::from))
    }

    /// Shallow-merge `patch` into the metadata.
    #[napi]
    pub async fn update_session(
        &self,
        id: String,
        #[napi(ts_arg_type = "Record<string, unknown>")] patch: JsonIn,
    ) -> Result<SessionInfo> {
        let patch = metadata(Some(patch), "patch")?;
        self.store
            .update_session(&id, patch)
            .await
            .map(SessionInfo::from)
            .map_err(err)
    }

    /// Renew the TTL.
    #[napi]
    pub async fn touch_session(&self, id: String) -> Result<SessionInfo> {
        self.store
            .touch_session(&id)
            .await
            .map(SessionInfo::from)
            .map_err(err)
    }

    /// Delete a session with its state and events; true if it was live.
    #[napi]
    pub async fn delete_session(&self, id: String) -> Result<bool> {
        self.store.delete_session(&id).await.map_err(err)
    }

    /// Live sessions in id order, after `after`.
    #[napi]
    pub async fn list_sessions(
        &self,
        after: Option<String>,
        limit: Option<f64>,
    ) -> Result<SessionPage> {
        let limit = self::limit(limit, 100)?;
        let page = self
            .store
            .list_sessions(after.as_deref(), limit)
            .await
            .map_err(err)?;
        Ok(SessionPage {
            items: page.items.into_iter().map(SessionInfo::from).collect(),
            next: page.next,
        })
    }

    /// How many sessions are live.
    #[napi]
    pub async fn count_sessions(&self) -> Result<i64> {
        self.store
            .count_sessions()
            .await
            .map(|n| n as i64)
            .map_err(err)
    }

    /// One state entry, or `null`.
    #[napi]
    pub async fn get_state(&self, id: String, key: String) -> Result<Option<StateEntryInfo>> {
        Ok(self
            .store
            .get_state(&id, &key)
            .await
            .map_err(err)?
            .map(StateEntryInfo::from))
    }

    /// Set a key; returns its new version.
    #[napi]
    pub async fn set_state(
        &self,
        id: String,
        key: String,
        #[napi(ts_arg_type = "unknown")] value: JsonIn,
    ) -> Result<i64> {
        self.store
            .set_state(&id, &key, value.0)
            .await
            .map(|v| v as i64)
            .map_err(err)
    }

    /// Compare-and-set: only if the key is at `expected` (`null`: absent).
    #[napi]
    pub async fn set_state_if_version(
        &self,
        id: String,
        key: String,
        #[napi(ts_arg_type = "unknown")] value: JsonIn,
        expected: Option<f64>,
    ) -> Result<i64> {
        let expected = expected.map(|v| count("expectedVersion", v)).transpose()?;
        self.store
            .set_state_if_version(&id, &key, value.0, expected)
            .await
            .map(|v| v as i64)
            .map_err(err)
    }

    /// Delete a key; true if it existed.
    #[napi]
    pub async fn delete_state(&self, id: String, key: String) -> Result<bool> {
        self.store.delete_state(&id, &key).await.map_err(err)
    }

    /// Every key, sorted.
    #[napi]
    pub async fn state_keys(&self, id: String) -> Result<Vec<String>> {
        self.store.state_keys(&id).await.map_err(err)
    }

    /// Every entry, sorted by key.
    #[napi]
    pub async fn state_all(&self, id: String) -> Result<Vec<StateEntryInfo>> {
        Ok(self
            .store
            .state_all(&id)
            .await
            .map_err(err)?
            .into_iter()
            .map(StateEntryInfo::from)
            .collect())
    }

    /// Append an event; `data` absent makes a priming event.
    #[napi]
    pub async fn append_event(
        &self,
        id: String,
        stream_id: String,
        #[napi(ts_arg_type = "unknown")] data: Option<JsonIn>,
        event_type: Option<String>,
        retry_ms: Option<f64>,
    ) -> Result<EventInfo> {
        let mut event = match data {
            Some(JsonIn(data)) => NewEvent::new(stream_id, data),
            None => NewEvent::priming(stream_id),
        };
        if let Some(t) = event_type {
            event = event.with_event_type(t);
        }
        if let Some(r) = retry_ms {
            let r = count("retryMs", r)?;
            let r = u32::try_from(r).map_err(|_| invalid("retryMs is over 2^32-1"))?;
            event = event.with_retry_ms(r);
        }
        self.store
            .append_event(&id, event)
            .await
            .map(EventInfo::from)
            .map_err(err)
    }

    /// Events of the cursor's stream after (`streamId`, `seq`).
    #[napi]
    pub async fn events_after(
        &self,
        id: String,
        stream_id: String,
        seq: f64,
        limit: Option<f64>,
    ) -> Result<EventPage> {
        let cursor = EventId::new(stream_id, self::seq(seq)?);
        let limit = self::limit(limit, 1000)?;
        self.store
            .events_after(&id, &cursor, limit)
            .await
            .map(EventPage::from)
            .map_err(err)
    }

    /// Events after a wire id (`Last-Event-ID`) of this session.
    #[napi]
    pub async fn replay(
        &self,
        id: String,
        last_event_id: String,
        limit: Option<f64>,
    ) -> Result<EventPage> {
        let limit = self::limit(limit, 1000)?;
        self.store
            .replay(&id, &last_event_id, limit)
            .await
            .map(EventPage::from)
            .map_err(err)
    }

    /// Follow a stream: the events after (`streamId`, `seq`), then new ones.
    #[napi]
    pub async fn subscribe(
        &self,
        id: String,
        stream_id: String,
        seq: f64,
    ) -> Result<NativeSubscription> {
        let cursor = EventId::new(stream_id, self::seq(seq)?);
        let sub = self.store.subscribe(&id, cursor).await.map_err(err)?;
        let (closed, _) = tokio::sync::watch::channel(false);
        Ok(NativeSubscription {
            inner: Arc::new(tokio::sync::Mutex::new(Some(sub))),
            closed: Arc::new(closed),
        })
    }

    /// Delete expired sessions; returns what was removed.
    #[napi]
    pub async fn cleanup_expired(&self) -> Result<CleanupInfo> {
        self.store
            .cleanup_expired()
            .await
            .map(CleanupInfo::from)
            .map_err(err)
    }

    /// Run `cleanupExpired` every `intervalMs` until the sweeper is stopped.
    #[napi]
    pub async fn start_sweeper(&self, interval_ms: f64) -> Result<NativeSweeper> {
        let sweeper = self
            .store
            .spawn_sweeper(duration_ms("intervalMs", interval_ms)?)
            .map_err(err)?;
        Ok(NativeSweeper {
            stats: sweeper.stats().clone(),
            inner: std::sync::Mutex::new(Some(sweeper)),
        })
    }
}

/// A live subscription to one stream.
#[napi]
pub struct NativeSubscription {
    inner: Arc<tokio::sync::Mutex<Option<mss_core::Subscription>>>,
    closed: Arc<tokio::sync::watch::Sender<bool>>,
}

#[napi]
impl NativeSubscription {
    /// The next event (replayed or new); `null` once closed or ended.
    #[napi]
    pub async fn next(&self) -> Result<Option<EventInfo>> {
        let mut closed = self.closed.subscribe();
        if *closed.borrow_and_update() {
            return Ok(None);
        }
        let mut guard = tokio::select! {
            g = self.inner.lock() => g,
            _ = closed.changed() => return Ok(None),
        };
        let Some(sub) = guard.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            event = sub.next() => match event {
                Some(Ok(event)) => Ok(Some(EventInfo::from(event))),
                Some(Err(e)) => {
                    *guard = None;
                    Err(err(e))
                }
                None => {
                    *guard = None;
                    Ok(None)
                }
            },
            _ = closed.changed() => {
                *guard = None;
                Ok(None)
            }
        }
    }

    /// Stop the subscription; a pending `next` resolves to `null`.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Ok(mut guard) = self.inner.try_lock() {
            *guard = None;
        }
    }
}

/// A background expiry sweeper.
#[napi]
pub struct NativeSweeper {
    inner: std::sync::Mutex<Option<mss_core::Sweeper>>,
    stats: Arc<mss_core::SweeperStats>,
}

#[napi]
impl NativeSweeper {
    /// Completed runs, sessions removed, failed runs.
    #[napi]
    pub fn stats(&self) -> SweeperStatsInfo {
        use std::sync::atomic::Ordering::Relaxed;
        let running = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        SweeperStatsInfo {
            runs: self.stats.runs.load(Relaxed) as i64,
            sessions_removed: self.stats.sessions_removed.load(Relaxed) as i64,
            errors: self.stats.errors.load(Relaxed) as i64,
            running,
        }
    }

    /// Stop the sweeper.
    #[napi]
    pub fn stop(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
    }
}

/// What a sweeper has done.
#[napi(object, object_from_js = false)]
pub struct SweeperStatsInfo {
    /// Completed cleanup runs.
    pub runs: i64,
    /// Sessions removed over all runs.
    pub sessions_removed: i64,
    /// Failed runs.
    pub errors: i64,
    /// False once stopped.
    pub running: bool,
}
