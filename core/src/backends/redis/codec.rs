//! Between the scripts and the store's types: driver errors onto the
//! taxonomy, script replies into sessions, state entries and events, and
//! events into the records the append script stores.

use redis::Value;

use crate::backends::common;
use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
use crate::model::{Event, NewEvent, Session, StateEntry};

/// Map a driver error onto the taxonomy; the driver type stays private.
pub(super) fn map_err(e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        // A cluster still redirecting after the redis crate's retries: a
        // slot moving, or a failover under way.
        || e.is_cluster_error()
    {
        ErrorKind::Unavailable
    } else {
        match e.code() {
            Some("BUSY") => ErrorKind::Timeout,
            Some("LOADING" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "READONLY") => {
                ErrorKind::Unavailable
            }
            _ => match e.kind() {
                // The URL or its TLS files (a CA file that is no PEM, seed
                // nodes with different credentials).
                redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidInput,
                redis::ErrorKind::AuthenticationFailed => ErrorKind::Unavailable,
                _ if e.is_unrecoverable_error() => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            },
        }
    };
    Error::new(kind, format!("Redis: {e}"))
}

/// A reply of a shape the scripts never give.
pub(super) fn corrupt(what: &str) -> Error {
    common::corrupt(format!("unexpected reply from Redis: {what}"))
}

pub(super) fn as_int(v: &Value) -> Result<i64> {
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

pub(super) fn into_text(v: Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| corrupt("text is not UTF-8")),
        Value::SimpleString(s) => Ok(s),
        Value::Int(n) => Ok(n.to_string()),
        _ => Err(corrupt("text was expected")),
    }
}

pub(super) fn into_array(v: Value) -> Result<Option<Vec<Value>>> {
    match v {
        Value::Nil => Ok(None),
        Value::Array(items) => Ok(Some(items)),
        _ => Err(corrupt("an array was expected")),
    }
}

/// A session from the 7 fields of `session_reply` in the scripts.
pub(super) fn session_from(id: &str, fields: Vec<Value>) -> Result<Session> {
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
        metadata: common::parse_metadata(&metadata)?,
        version,
        last_seq,
    })
}

/// A state hash value `"VERSION JSON"`.
pub(super) fn state_entry(key: String, stored: Value) -> Result<StateEntry> {
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
pub(super) fn encode_event(event: &NewEvent) -> Vec<u8> {
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
pub(super) fn decode_event(session_id: &str, seq: u64, record: Value) -> Result<Event> {
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
pub(super) fn status_reply(v: Value) -> Result<(i64, Vec<Value>)> {
    let items = into_array(v)?.ok_or_else(|| corrupt("a status was expected"))?;
    let mut it = items.into_iter();
    let status = as_int(&it.next().ok_or_else(|| corrupt("a status was expected"))?)?;
    Ok((status, it.collect()))
}
