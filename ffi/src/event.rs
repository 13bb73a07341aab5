//! Events: append, replay by stream and seq or by wire id, and the wire ids
//! themselves (format and parse).

use std::ffi::c_char;
use std::sync::Arc;

use mss_core::{EventId, NewEvent, Store};

use crate::args::{cstr, out, text, write};
use crate::boundary::{FfiResult, block_on, boundary};
use crate::buffers::{mss_buf, to_buf};
use crate::json_io::{event_json, event_page_json, page_limit, parse_event, parse_value};
use crate::status::{mss_error, mss_status};
use crate::store::{mss_store, store as get_store};

fn append(store: Arc<Store>, session_id: String, event: NewEvent) -> FfiResult<String> {
    let event = block_on(async move { store.append_event(&session_id, event).await })??;
    event_json(&event)
}

/// Append an event carrying `data` (JSON text) on stream `stream_id`.
/// `*event_out` is the stored event as JSON: `{"id": "WIRE-ID",
/// "session_id", "seq", "stream_id", "data", "event_type", "retry_ms",
/// "created_at"}` where `id` is the wire id to send on the SSE `id:` line and
/// `data` is absent for a priming event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_event_append(
    store: *const mss_store,
    session_id: *const c_char,
    stream_id: *const c_char,
    data: *const c_char,
    data_len: usize,
    event_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = get_store(store)?;
        // SAFETY: `session_id` and `stream_id` are NULL or NUL-terminated
        // strings, and `data` is NULL or points to `data_len` readable bytes
        // (the header's contract).
        let (id, stream, data) = unsafe {
            (
                cstr(session_id, "session_id")?,
                cstr(stream_id, "stream_id")?,
                text(data, data_len, "data")?,
            )
        };
        let data = parse_value(&store, data, "event data")?;
        let event_out = out(event_out, "event_out")?;
        let json = append(store, id.to_owned(), NewEvent::new(stream, data))?;
        // SAFETY: `event_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(event_out, to_buf(&json)) };
        Ok(())
    })
}

/// Append an event described by a JSON object: `{"stream_id": "…", "data":
/// <JSON>, "event_type": "…", "retry_ms": N}`; `stream_id` is required, no
/// `data` makes a priming event (an id with no message). `*event_out` as
/// `mss_event_append`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_event_append_json(
    store: *const mss_store,
    session_id: *const c_char,
    event: *const c_char,
    event_len: usize,
    event_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string, and
        // `event` is NULL or points to `event_len` readable bytes (the
        // header's contract).
        let (id, event_text) = unsafe {
            (
                cstr(session_id, "session_id")?,
                text(event, event_len, "event")?,
            )
        };
        let new = parse_event(event_text, store.options().max_payload_bytes)?;
        let event_out = out(event_out, "event_out")?;
        let json = append(store, id.to_owned(), new)?;
        // SAFETY: `event_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(event_out, to_buf(&json)) };
        Ok(())
    })
}

/// Replay: the events of stream `stream_id` with a seq above `after_seq`
/// (0: from the start of the stream), oldest first, at most `limit`
/// (1–10000). `*page_out` is `{"items": [event, …], "next": "WIRE-ID" |
/// null}`. `MSS_CURSOR_EXPIRED` if trimming removed events after the cursor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_events_after(
    store: *const mss_store,
    session_id: *const c_char,
    stream_id: *const c_char,
    after_seq: u64,
    limit: usize,
    page_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = get_store(store)?;
        // SAFETY: `session_id` and `stream_id` are NULL or NUL-terminated
        // strings (the header's contract).
        let (id, stream) = unsafe {
            (
                cstr(session_id, "session_id")?.to_owned(),
                cstr(stream_id, "stream_id")?,
            )
        };
        let page_out = out(page_out, "page_out")?;
        let cursor = EventId::new(stream, after_seq);
        let limit = page_limit(limit)?;
        let page = block_on(async move { store.events_after(&id, &cursor, limit).await })??;
        // SAFETY: `page_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(page_out, to_buf(&event_page_json(&page)?)) };
        Ok(())
    })
}

/// Replay after a wire id (an SSE `Last-Event-ID`): the events of that id's
/// stream after it, as `mss_events_after`. An id from another session, or
/// altered, is `MSS_INVALID_INPUT` and replays nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_events_replay(
    store: *const mss_store,
    session_id: *const c_char,
    last_event_id: *const c_char,
    limit: usize,
    page_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = get_store(store)?;
        // SAFETY: `session_id` and `last_event_id` are NULL or
        // NUL-terminated strings (the header's contract).
        let (id, wire) = unsafe {
            (
                cstr(session_id, "session_id")?.to_owned(),
                cstr(last_event_id, "last_event_id")?.to_owned(),
            )
        };
        let page_out = out(page_out, "page_out")?;
        let limit = page_limit(limit)?;
        let page = block_on(async move { store.replay(&id, &wire, limit).await })??;
        // SAFETY: `page_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(page_out, to_buf(&event_page_json(&page)?)) };
        Ok(())
    })
}

/// The wire id of event `seq` on `stream_id` in `session_id` (what
/// `mss_event_append` returns as `"id"`): `SEQ.STREAM.TAG`, only
/// `[0-9A-Za-z._-]`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_event_id_format(
    session_id: *const c_char,
    stream_id: *const c_char,
    seq: u64,
    wire_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        // SAFETY: `session_id` and `stream_id` are NULL or NUL-terminated
        // strings (the header's contract).
        let (id, stream) = unsafe {
            (
                cstr(session_id, "session_id")?,
                cstr(stream_id, "stream_id")?,
            )
        };
        mss_core::validate::session_id(id)?;
        mss_core::validate::stream_id(stream)?;
        let wire_out = out(wire_out, "wire_out")?;
        let wire = EventId::new(stream, seq).format(id);
        // SAFETY: `wire_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(wire_out, to_buf(&wire)) };
        Ok(())
    })
}

/// Parse a wire id that `session_id` handed out: `*stream_out` is its stream
/// id and `*seq_out` its seq. Malformed, foreign or altered ids are
/// `MSS_INVALID_INPUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_event_id_parse(
    wire: *const c_char,
    session_id: *const c_char,
    stream_out: *mut mss_buf,
    seq_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        // SAFETY: `wire` and `session_id` are NULL or NUL-terminated strings
        // (the header's contract).
        let (wire, id) = unsafe { (cstr(wire, "wire")?, cstr(session_id, "session_id")?) };
        let stream_out = out(stream_out, "stream_out")?;
        let seq_out = out(seq_out, "seq_out")?;
        let parsed = EventId::parse(wire, id)?;
        // SAFETY: `stream_out` and `seq_out` were checked by `out` and point
        // to a writable `mss_buf` and `u64` (the header's contract).
        unsafe {
            write(stream_out, to_buf(&parsed.stream_id));
            write(seq_out, parsed.seq);
        }
        Ok(())
    })
}
