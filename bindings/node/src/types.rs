//! The objects that cross the JS boundary: the plain result objects
//! (`SessionInfo`, `EventInfo`, pages, stats) built from the core's types,
//! and the checks that turn JS numbers into counts, page sizes and
//! durations (with the bridge's rules and limits).

use std::time::Duration;

use mss_core::{CleanupStats, Event, Page, Session, StateEntry};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{Map, Value};

use crate::json::{JsonIn, JsonOut};
use crate::{err, invalid};

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

// ---- numbers from JS ----------------------------------------------------

/// A non-negative integer count or size from JS (a double: integral,
/// finite, at most 2^53 - 1).
pub(crate) fn count(name: &str, n: f64) -> Result<u64> {
    mss_bridge::options::whole_number(name, n).map_err(err)
}

pub(crate) fn duration_ms(name: &str, ms: f64) -> Result<Duration> {
    Ok(Duration::from_millis(count(name, ms)?))
}

pub(crate) fn metadata(value: Option<JsonIn>, what: &str) -> Result<Map<String, Value>> {
    match value {
        None => Ok(Map::new()),
        Some(JsonIn(Value::Object(map))) => Ok(map),
        Some(_) => Err(invalid(format!("{what} must be a plain object"))),
    }
}

/// A page size: absent, the core's default page limit (100); else checked
/// to be 1-10 000.
pub(crate) fn limit(n: Option<f64>) -> Result<usize> {
    let n = n.map(|n| count("limit", n)).transpose()?;
    mss_bridge::limits::page_limit(n).map_err(err)
}

pub(crate) fn seq(n: f64) -> Result<u64> {
    count("seq", n)
}
