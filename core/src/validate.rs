//! Input validation, in one place for every backend and every binding.
//!
//! [`crate::Store`] runs these checks before a call reaches a backend, so a
//! backend only ever sees well-formed ids, keys and sizes.

use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
pub use crate::json::MAX_DEPTH as MAX_JSON_DEPTH;
use serde_json::{Map, Value};

/// Longest session id, state key, stream id and event type, in bytes.
pub const MAX_ID_BYTES: usize = 255;
/// Largest page a paginated call returns.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// The page size the bindings use when the caller gives none.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Longest TTL accepted (100 years), so `now + ttl` never overflows.
pub const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A session id: 1–255 bytes of visible ASCII (0x21–0x7E).
pub fn session_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(format!(
            "session id must be 1-{MAX_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    if let Some(pos) = id.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(Error::invalid(format!(
            "session id may only hold visible ASCII (0x21-0x7E); byte {pos} is not"
        )));
    }
    Ok(())
}

fn text(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_ID_BYTES {
        return Err(Error::invalid(format!(
            "{what} must be 1-{MAX_ID_BYTES} bytes, got {}",
            value.len()
        )));
    }
    if let Some(pos) = value.chars().position(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} may not hold control characters; character {pos} is one"
        )));
    }
    Ok(())
}

/// A state key: 1–255 bytes of UTF-8 without control characters.
pub fn state_key(key: &str) -> Result<()> {
    text("state key", key)
}

/// A stream id: 1–255 bytes of UTF-8 without control characters.
pub fn stream_id(stream: &str) -> Result<()> {
    text("stream id", stream)
}

/// An SSE event type: 1–255 bytes of UTF-8 without control characters (so
/// no CR, LF or NUL can break the SSE framing).
pub fn event_type(event_type: &str) -> Result<()> {
    text("event type", event_type)
}

/// A JSON payload within `max_bytes`; over it is `LimitExceeded`.
pub fn payload(what: &str, json: &Json, max_bytes: usize) -> Result<()> {
    if json.len() > max_bytes {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "{what} is {} bytes, over the limit of {max_bytes}",
                json.len()
            ),
        ));
    }
    crate::json::check_depth(json.as_str())
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("{what}: {}", e.message())))
}

/// Metadata whose JSON encoding is within `max_bytes` and nests at most
/// [`crate::json::MAX_DEPTH`] levels.
pub fn metadata(metadata: &Map<String, Value>, max_bytes: usize) -> Result<()> {
    let text = serde_json::to_string(metadata)
        .map_err(|e| Error::invalid(format!("metadata cannot be encoded as JSON: {e}")))?;
    crate::json::check_depth(&text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("metadata: {}", e.message()),
        )
    })?;
    let size = text.len();
    if size > max_bytes {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("metadata is {size} bytes, over the limit of {max_bytes}"),
        ));
    }
    Ok(())
}

/// A page size: 1–[`MAX_PAGE_LIMIT`].
pub fn limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(Error::invalid(format!(
            "limit must be 1-{MAX_PAGE_LIMIT}, got {limit}"
        )));
    }
    Ok(())
}

/// A TTL: 1 ms – 100 years.
pub fn ttl_ms(ttl_ms: u64) -> Result<()> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(Error::invalid(format!(
            "ttl must be 1 ms to 100 years, got {ttl_ms} ms"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        assert!(session_id("a").is_ok());
        assert!(session_id(&"x".repeat(255)).is_ok());
        assert!(session_id("~!#$%&'()*+,-./:;<=>?@[]^_`{|}").is_ok());
        for bad in ["", " ", "a b", "tab\t", "é", "nul\0", &"x".repeat(256)] {
            assert_eq!(
                session_id(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_and_streams() {
        assert!(state_key("counter").is_ok());
        assert!(state_key("ünï còde").is_ok());
        assert!(stream_id("_GET_stream").is_ok());
        for bad in ["", "line\nbreak", "cr\r", "nul\0", &"k".repeat(256)] {
            assert!(state_key(bad).is_err(), "{bad:?}");
            assert!(stream_id(bad).is_err(), "{bad:?}");
            assert!(event_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        let j = Json::parse("\"0123456789\"").unwrap();
        assert!(payload("data", &j, 12).is_ok());
        assert_eq!(
            payload("data", &j, 11).unwrap_err().kind(),
            ErrorKind::LimitExceeded
        );
        assert!(limit(0).is_err());
        assert!(limit(MAX_PAGE_LIMIT + 1).is_err());
        assert!(limit(1).is_ok());
        assert!(ttl_ms(0).is_err());
        assert!(ttl_ms(MAX_TTL_MS + 1).is_err());
    }
}
