//! The trait every backend implements.

use std::fmt;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{CleanupStats, CreateSession, Event, NewEvent, Page, Session, StateEntry};

/// Called by a backend with the id of a session that another handle or
/// process appended to; returns false once nobody listens any more (the
/// store was dropped), and the backend then stops calling it.
pub type AppendListener = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The version condition of a state write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Write unconditionally.
    Any,
    /// Write only if the key does not exist.
    Absent,
    /// Write only if the key exists at exactly this version.
    Version(u64),
}

/// What a backend is: its name and whether its data is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The backend's name: `"memory"`, `"sqlite"`, `"postgres"`, `"redis"`,
    /// `"dynamodb"`, or a name of your own.
    pub name: &'static str,
    /// Whether two stores opened on the same URL see the same data (false
    /// for `memory://`, whose data lives in one handle).
    pub shared: bool,
}

impl BackendInfo {
    /// The info of a backend called `name`.
    pub const fn new(name: &'static str, shared: bool) -> BackendInfo {
        BackendInfo { name, shared }
    }
}

/// A storage backend. Object-safe: [`crate::Store`] holds an
/// `Arc<dyn Backend>`.
///
/// [`crate::Store`] validates every input (ids, keys, sizes, limits) before
/// calling a backend. A backend guarantees:
///
/// - **Expiry.** A session whose `expires_at` has passed is invisible to
///   every call (reads return `None`/`NotFound`, writes `NotFound`) before
///   any cleanup ran. Every write to a live session renews `expires_at`.
/// - **Sessions.** `create_session` on the id of a live session is
///   `AlreadyExists` and changes nothing; on an expired one it replaces it.
///   Deleting a session deletes its state and events.
/// - **Versions.** Every write to a session's metadata, state or events bumps
///   `Session::version`; a state write stores that new version on its key.
/// - **State.** Keys are written independently; `set_state` with a condition
///   that does not hold is `Conflict` and writes nothing.
/// - **Events.** `seq` is per session, strictly increasing and never reused;
///   a reader never observes `seq` N+1 before N (commit order = seq order).
///   Appending beyond `max_events_per_session` removes the oldest events.
///   `events_after` returns, in `seq` order, only the cursor's stream;
///   a cursor older than what trimming kept is `CursorExpired`; a cursor past
///   the newest event is `NotFound`.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The backend's name and whether its data is shared between handles.
    fn info(&self) -> BackendInfo;

    /// Create a session.
    async fn create_session(&self, req: CreateSession) -> Result<Session>;

    /// A live session, or `None`.
    async fn get_session(&self, id: &str) -> Result<Option<Session>>;

    /// Shallow-merge `patch` into the metadata (keys in `patch` replace
    /// existing ones), bump the version and renew the TTL.
    async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session>;

    /// Renew the TTL without changing the version.
    async fn touch_session(&self, id: &str) -> Result<Session>;

    /// Delete a session with its state and events. True if a live session
    /// was deleted.
    async fn delete_session(&self, id: &str) -> Result<bool>;

    /// Live sessions in id order, starting after `after`.
    async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>>;

    /// How many sessions are live.
    async fn count_sessions(&self) -> Result<u64>;

    /// One state key; `None` if absent, `NotFound` if the session is.
    async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>>;

    /// Write one state key if `expected` holds; returns the new version.
    async fn set_state(&self, id: &str, key: &str, value: Json, expected: Expected) -> Result<u64>;

    /// Delete one state key; true if it existed.
    async fn delete_state(&self, id: &str, key: &str) -> Result<bool>;

    /// Every state key, sorted. The default reads [`Backend::state_all`];
    /// a backend that can list keys without their values overrides it.
    async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .state_all(id)
            .await?
            .into_iter()
            .map(|entry| entry.key)
            .collect())
    }

    /// Every state entry, sorted by key.
    async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>>;

    /// Append an event, allocating the next `seq`.
    async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event>;

    /// Events of `cursor.stream_id` with `seq > cursor.seq`, oldest first, at
    /// most `limit`.
    async fn events_after(&self, id: &str, cursor: &EventId, limit: usize) -> Result<Page<Event>>;

    /// Delete every expired session with its state and events.
    async fn cleanup_expired(&self) -> Result<CleanupStats>;

    /// Push appends made through other handles or processes to `listener`,
    /// so that subscriptions wake at once instead of at their next poll.
    /// [`crate::Store`] calls this once, when it gets its first subscriber.
    /// Returns true if the backend pushes (Postgres `LISTEN/NOTIFY`, Redis
    /// pub/sub); the default returns false, and subscriptions poll. Pushes
    /// only speed delivery up: a missed one delays an event by at most the
    /// poll interval, it never loses it.
    fn watch_appends(&self, listener: AppendListener) -> Result<bool> {
        let _ = listener;
        Ok(false)
    }

    /// Finish pending writes and release connections; a backend with
    /// connections fails later calls with `Unavailable`. The default (for
    /// backends without any, like `memory://`) does nothing.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// Check a replay cursor against a session's counters: past the newest event
/// is `NotFound`, before what trimming kept is `CursorExpired`.
pub(crate) fn check_cursor(cursor: &EventId, last_seq: u64, trimmed_through: u64) -> Result<()> {
    if cursor.seq > last_seq {
        return Err(Error::not_found(format!(
            "event {} is beyond this session's newest event (seq {last_seq})",
            cursor.seq
        )));
    }
    if cursor.seq < trimmed_through {
        return Err(Error::new(
            ErrorKind::CursorExpired,
            format!(
                "events after seq {} were trimmed (kept from seq {}); the replay would be incomplete",
                cursor.seq,
                trimmed_through + 1
            ),
        ));
    }
    Ok(())
}

/// Check a state write's condition against the key's current version.
pub(crate) fn check_expected(key: &str, expected: Expected, current: Option<u64>) -> Result<()> {
    let ok = match (expected, current) {
        (Expected::Any, _) => true,
        (Expected::Absent, None) => true,
        (Expected::Version(want), Some(have)) => want == have,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let have = match current {
        Some(v) => format!("version {v}"),
        None => "no value".to_string(),
    };
    let want = match expected {
        Expected::Version(v) => format!("version {v}"),
        _ => "no value".to_string(),
    };
    Err(Error::new(
        ErrorKind::Conflict,
        format!("state key {key:?}: expected {want}, found {have}"),
    ))
}
