//! The data model: sessions, state entries, events, pages.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event_id::EventId;
use crate::json::Json;

/// A client session.
///
/// Timestamps are milliseconds since the Unix epoch. `expires_at` is
/// `last_activity + ttl_ms`: the TTL slides, renewed by every write to the
/// session (metadata, state, events) and by `touch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// 1–255 bytes of visible ASCII.
    pub id: String,
    /// When the session was created.
    pub created_at: i64,
    /// The last write or touch.
    pub last_activity: i64,
    /// When the session becomes invisible unless renewed.
    pub expires_at: i64,
    /// The session's sliding TTL.
    pub ttl_ms: u64,
    /// A JSON object, shallow-merged by `update_session`.
    pub metadata: Map<String, Value>,
    /// Bumped by every write to the session's metadata, state or events
    /// (not by `touch`). State versions are drawn from it.
    pub version: u64,
    /// The `seq` of the newest event appended (0 = none yet).
    pub last_seq: u64,
}

/// What to create: every field is optional.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewSession {
    /// A caller-chosen id; `None` generates a UUID v4 (122 random bits).
    pub id: Option<String>,
    /// Initial metadata.
    pub metadata: Map<String, Value>,
    /// A TTL for this session instead of the store's default.
    pub ttl: Option<Duration>,
}

impl NewSession {
    /// A session with a generated id, empty metadata and the store's TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this id instead of generating one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Initial metadata.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// A TTL for this session.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A validated creation request, as a backend receives it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateSession {
    /// The id, validated and resolved.
    pub id: String,
    /// The metadata, within the payload limit.
    pub metadata: Map<String, Value>,
    /// The TTL in milliseconds, at least 1.
    pub ttl_ms: u64,
}

impl CreateSession {
    /// Build a request (for backend implementations and their tests).
    pub fn new(id: String, metadata: Map<String, Value>, ttl_ms: u64) -> Self {
        CreateSession {
            id,
            metadata,
            ttl_ms,
        }
    }
}

/// One state key of a session, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StateEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Json,
    /// The session `version` at which this key was last written. Versions
    /// only grow, and are never reused within a session (not after a delete
    /// and re-create), so a compare-and-set cannot suffer ABA.
    pub version: u64,
}

impl StateEntry {
    /// Build an entry (for backend implementations).
    pub fn new(key: String, value: Json, version: u64) -> Self {
        StateEntry {
            key,
            value,
            version,
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewEvent {
    /// The stream it is sent on (a POST request id, `_GET_stream`, …).
    pub stream_id: String,
    /// The payload; `None` for a priming event.
    pub data: Option<Json>,
    /// The SSE `event:` field.
    pub event_type: Option<String>,
    /// The SSE `retry:` field, in milliseconds.
    pub retry_ms: Option<u32>,
}

impl NewEvent {
    /// An event carrying `data` on `stream_id`.
    pub fn new(stream_id: impl Into<String>, data: impl Into<Json>) -> Self {
        NewEvent {
            stream_id: stream_id.into(),
            data: Some(data.into()),
            event_type: None,
            retry_ms: None,
        }
    }

    /// A priming event: an id with no data, stored so the id is a valid
    /// cursor, never replayed as a message by the SDK adapters.
    pub fn priming(stream_id: impl Into<String>) -> Self {
        NewEvent {
            stream_id: stream_id.into(),
            data: None,
            event_type: None,
            retry_ms: None,
        }
    }

    /// Set the SSE `event:` field.
    pub fn with_event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Set the SSE `retry:` field.
    pub fn with_retry_ms(mut self, retry_ms: u32) -> Self {
        self.retry_ms = Some(retry_ms);
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// The session it belongs to.
    pub session_id: String,
    /// Per-session, strictly increasing, never reused.
    pub seq: u64,
    /// The stream it was sent on.
    pub stream_id: String,
    /// The payload; `None` for a priming event.
    pub data: Option<Json>,
    /// The SSE `event:` field.
    pub event_type: Option<String>,
    /// The SSE `retry:` field, in milliseconds.
    pub retry_ms: Option<u32>,
    /// When it was appended.
    pub created_at: i64,
}

impl Event {
    /// Build an event (for backend implementations).
    pub fn new(session_id: String, seq: u64, new: NewEvent, created_at: i64) -> Self {
        Event {
            session_id,
            seq,
            stream_id: new.stream_id,
            data: new.data,
            event_type: new.event_type,
            retry_ms: new.retry_ms,
            created_at,
        }
    }

    /// This event's position, usable as a cursor.
    pub fn id(&self) -> EventId {
        EventId::new(self.stream_id.clone(), self.seq)
    }

    /// The wire id to send on the SSE `id:` line.
    pub fn wire_id(&self) -> String {
        EventId::new(self.stream_id.as_str(), self.seq).format(&self.session_id)
    }

    /// True for a priming event (no data).
    pub fn is_priming(&self) -> bool {
        self.data.is_none()
    }
}

/// One page of a paginated result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page. For
    /// events it is the wire id of the last item, for sessions the last id.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Build a page (for backend implementations).
    pub fn new(items: Vec<T>, next: Option<String>) -> Self {
        Page { items, next }
    }

    /// A page from a read of up to `limit + 1` items (for backend
    /// implementations): the first `limit` items, and, if there were more,
    /// `next` made from the last item kept.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        next_of: impl FnOnce(&T) -> String,
    ) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(next_of)
        } else {
            None
        };
        Page { items, next }
    }
}

/// What `cleanup_expired` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CleanupStats {
    /// Expired sessions removed.
    pub sessions: u64,
    /// State entries removed with them.
    pub state_entries: u64,
    /// Events removed with them.
    pub events: u64,
}

impl CleanupStats {
    /// Build stats (for backend implementations).
    pub fn new(sessions: u64, state_entries: u64, events: u64) -> Self {
        CleanupStats {
            sessions,
            state_entries,
            events,
        }
    }

    /// Add another batch's counts.
    pub fn add(&mut self, other: CleanupStats) {
        self.sessions += other.sessions;
        self.state_entries += other.state_entries;
        self.events += other.events;
    }
}
