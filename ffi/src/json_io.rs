//! JSON in and out of the C ABI: the documented shapes, and the checks on
//! values and page sizes that come before a store call.

use std::time::Duration;

use mss_core::{Event, Json, NewEvent, NewSession, Page, Session, StateEntry, Store};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::boundary::{FfiError, FfiResult};
use crate::status::mss_status;

/// Parse `text` as `T`, telling invalid JSON apart from JSON of the wrong
/// shape.
fn parse<'a, T: Deserialize<'a>>(text: &'a str, what: &str) -> FfiResult<T> {
    serde_json::from_str(text).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => FfiError::invalid(format!("{what} has the wrong shape: {e}")),
            Category::Io | Category::Syntax | Category::Eof => {
                FfiError::invalid(format!("{what} is not valid JSON: {e}"))
            }
        }
    })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> FfiResult<String> {
    serde_json::to_string(value).map_err(|e| {
        FfiError::new(
            mss_status::MSS_INTERNAL,
            format!("cannot encode the result as JSON: {e}"),
        )
    })
}

/// A page size: the bridge's check (1–`MAX_PAGE_LIMIT`), the core's
/// message.
pub(crate) fn page_limit(limit: usize) -> FfiResult<usize> {
    Ok(mss_bridge::limits::page_limit(Some(
        u64::try_from(limit).unwrap_or(u64::MAX),
    ))?)
}

/// `MSS_LIMIT_EXCEEDED` if `len` bytes are over the store's payload limit.
pub(crate) fn check_payload(store: &Store, len: usize, what: &str) -> FfiResult<()> {
    let max = store.options().max_payload_bytes;
    if len > max {
        return Err(FfiError::new(
            mss_status::MSS_LIMIT_EXCEEDED,
            format!("{what} is {len} bytes, over the limit of {max}"),
        ));
    }
    Ok(())
}

/// A JSON value given as text, checked against the store's payload limit.
pub(crate) fn parse_value(store: &Store, value: &str, what: &str) -> FfiResult<Json> {
    check_payload(store, value.len(), what)?;
    Ok(Json::parse(value)?)
}

/// Any JSON value.
pub(crate) fn parse_json_value(text: &str, what: &str) -> FfiResult<Value> {
    parse(text, what)
}

/// A JSON object (metadata or a metadata patch).
pub(crate) fn parse_metadata(text: &str, what: &str) -> FfiResult<Map<String, Value>> {
    match parse_json_value(text, what)? {
        Value::Object(map) => Ok(map),
        other => Err(FfiError::invalid(format!(
            "{what} has the wrong shape: expected a JSON object, got {}",
            kind_of(&other)
        ))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSessionIn {
    id: Option<String>,
    metadata: Option<Map<String, Value>>,
    ttl_ms: Option<u64>,
}

/// The options object of `mss_session_create`.
pub(crate) fn parse_new_session(text: &str) -> FfiResult<NewSession> {
    let o: NewSessionIn = parse(text, "session options")?;
    let mut new = NewSession::new();
    if let Some(id) = o.id {
        new = new.with_id(id);
    }
    if let Some(metadata) = o.metadata {
        new = new.with_metadata(metadata);
    }
    if let Some(ms) = o.ttl_ms {
        new = new.with_ttl(Duration::from_millis(ms));
    }
    Ok(new)
}

/// `Some(raw)` for any present value, `null` included.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEventIn<'a> {
    stream_id: String,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    event_type: Option<String>,
    retry_ms: Option<u32>,
}

/// The event object of `mss_event_append_json`.
pub(crate) fn parse_event(text: &str, max_payload_bytes: usize) -> FfiResult<NewEvent> {
    let o: NewEventIn<'_> = parse(text, "event")?;
    let mut new = match o.data {
        Some(raw) => {
            let data = raw.get();
            if data.len() > max_payload_bytes {
                return Err(FfiError::new(
                    mss_status::MSS_LIMIT_EXCEEDED,
                    format!(
                        "event data is {} bytes, over the limit of {max_payload_bytes}",
                        data.len()
                    ),
                ));
            }
            NewEvent::new(o.stream_id, Json::parse(data)?)
        }
        None => NewEvent::priming(o.stream_id),
    };
    if let Some(t) = o.event_type {
        new = new.with_event_type(t);
    }
    if let Some(ms) = o.retry_ms {
        new = new.with_retry_ms(ms);
    }
    Ok(new)
}

/// A session as JSON.
pub(crate) fn session_json(session: &Session) -> FfiResult<String> {
    encode(session)
}

#[derive(Serialize)]
struct PageOut<'a, T: Serialize> {
    items: &'a [T],
    next: Option<&'a str>,
}

/// A page of sessions as JSON.
pub(crate) fn session_page_json(page: &Page<Session>) -> FfiResult<String> {
    encode(&PageOut {
        items: &page.items,
        next: page.next.as_deref(),
    })
}

#[derive(Serialize)]
struct EventOut<'a> {
    id: String,
    session_id: &'a str,
    seq: u64,
    stream_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Json>,
    event_type: Option<&'a str>,
    retry_ms: Option<u32>,
    created_at: i64,
}

impl<'a> EventOut<'a> {
    fn new(e: &'a Event) -> EventOut<'a> {
        EventOut {
            id: e.wire_id(),
            session_id: &e.session_id,
            seq: e.seq,
            stream_id: &e.stream_id,
            data: e.data.as_ref(),
            event_type: e.event_type.as_deref(),
            retry_ms: e.retry_ms,
            created_at: e.created_at,
        }
    }
}

/// One event as JSON, with its wire id as `"id"`.
pub(crate) fn event_json(event: &Event) -> FfiResult<String> {
    encode(&EventOut::new(event))
}

/// A page of events as JSON.
pub(crate) fn event_page_json(page: &Page<Event>) -> FfiResult<String> {
    let items: Vec<EventOut<'_>> = page.items.iter().map(EventOut::new).collect();
    encode(&PageOut {
        items: &items,
        next: page.next.as_deref(),
    })
}

/// A list of strings as a JSON array.
pub(crate) fn string_list_json(items: &[String]) -> FfiResult<String> {
    encode(items)
}

/// State entries as a JSON array of `{"key", "value", "version"}`.
pub(crate) fn state_entries_json(entries: &[StateEntry]) -> FfiResult<String> {
    encode(entries)
}
