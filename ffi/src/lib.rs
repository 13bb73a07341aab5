//! The stable C ABI of mcp-session-store.
//!
//! Built as `libmcp_session_store.so` / `.a`; the header
//! `include/mcp_session_store.h` is generated from this crate by cbindgen.
//! Conventions (see the header's preamble): every function is `mss_*`,
//! returns an [`mss_status`] (0 = `MSS_OK`), writes its outputs only on
//! success, and on failure writes an optional [`mss_error`] object. Values
//! cross as UTF-8 JSON text.

// C names, and `unsafe extern "C"` functions whose safety contract is the
// header's (documented once in its preamble).
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

mod json_io;
mod runtime;

use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use mss_core::{EventId, NewEvent, NewSession, Store, Subscription};
use parking_lot::Mutex;

use crate::json_io::{
    event_json, event_page_json, parse_event, parse_json_value, parse_metadata, parse_new_session,
    parse_options, session_json, session_page_json, state_entries_json, string_list_json,
};
use crate::runtime::{
    FfiError, FfiResult, Registry, block_on, boundary, cstr, free_buf, message_cstring, opt_cstr,
    out, static_cstr, text, to_buf, write, write_opt,
};

/// The status every function returns. The numbers are stable and never
/// reused: 0 is success, 1–10 are the core's error kinds in their
/// documented order, and new kinds get new numbers.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mss_status {
    /// Success.
    MSS_OK = 0,
    /// The session (or the key, or the event a cursor names) does not exist
    /// or has expired.
    MSS_NOT_FOUND = 1,
    /// A session with the requested id already exists.
    MSS_ALREADY_EXISTS = 2,
    /// A compare-and-set lost: the stored version is not the expected one.
    MSS_CONFLICT = 3,
    /// Malformed input: a NULL argument, invalid UTF-8, invalid JSON, JSON of
    /// the wrong shape, an invalid id, key or URL, or a handle that is not
    /// open.
    MSS_INVALID_INPUT = 4,
    /// Well-formed input over a configured limit (payload size, session
    /// count).
    MSS_LIMIT_EXCEEDED = 5,
    /// The cursor points before what trimming kept.
    MSS_CURSOR_EXPIRED = 6,
    /// The backend cannot be reached.
    MSS_UNAVAILABLE = 7,
    /// The backend did not answer in time.
    MSS_TIMEOUT = 8,
    /// The backend reported an unexpected error.
    MSS_BACKEND = 9,
    /// A bug in the library, for example a caught panic.
    MSS_INTERNAL = 10,
    /// An error kind newer than this library's list; the message says more.
    MSS_OTHER_ERROR = 1000,
}

/// An error: its status, its stable code (`"not_found"`, …) and a message.
/// Owned by the caller once returned; free it with `mss_error_free`.
pub struct mss_error {
    status: mss_status,
    message: CString,
}

impl mss_error {
    fn new(e: FfiError) -> mss_error {
        mss_error {
            status: e.status,
            message: message_cstring(e.message),
        }
    }
}

/// An open store. Opaque: a handle number the library looks up on every
/// call, never dereferenced, so a handle used after `mss_store_free` is
/// reported as `MSS_INVALID_INPUT` rather than crashing. One handle may be
/// used from many threads at once.
pub struct mss_store {
    _opaque: [u8; 0],
}

/// A live subscription to one stream of a session. Opaque like
/// `mss_store`; free it with `mss_subscription_free`.
pub struct mss_subscription {
    _opaque: [u8; 0],
}

/// Bytes returned by the library: `len` bytes of UTF-8 at `data`, followed by
/// a NUL that `len` does not count. Free with `mss_buf_free`; do not change
/// `data` or `len`.
#[repr(C)]
#[derive(Debug)]
pub struct mss_buf {
    /// The text, NUL-terminated. NULL after `mss_buf_free`.
    pub data: *mut c_char,
    /// Its length in bytes, without the NUL.
    pub len: usize,
}

/// What `mss_cleanup_expired` removed.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mss_cleanup_stats {
    /// Expired sessions removed.
    pub sessions: u64,
    /// State entries removed with them.
    pub state_entries: u64,
    /// Events removed with them.
    pub events: u64,
}

/// The callback of `mss_state_update`: given the key's current value
/// (`current` = NULL and `current_len` = 0 when the key is not set), set
/// `*new_value` / `*new_len` to the new value's JSON text and return 0. The
/// text must stay valid until the callback is called again or
/// `mss_state_update` returns. Any other return value stops the update, and
/// `mss_state_update` returns it as its status (unknown numbers become
/// `MSS_OTHER_ERROR`). The callback may run several times (once per lost race)
/// and runs on the thread that called `mss_state_update`; it must not call
/// `mss_*` store functions itself (they are refused with `MSS_INTERNAL`).
pub type mss_update_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        current: *const c_char,
        current_len: usize,
        new_value: *mut *const c_char,
        new_len: *mut usize,
    ) -> i32,
>;

static STORES: Registry<Store> = Registry::new("store");
static SUBSCRIPTIONS: Registry<Mutex<Subscription>> = Registry::new("subscription");

const fn parse_version_part(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

const VERSION_MAJOR: u32 = parse_version_part(env!("CARGO_PKG_VERSION_MAJOR"));
const VERSION_MINOR: u32 = parse_version_part(env!("CARGO_PKG_VERSION_MINOR"));
const VERSION_PATCH: u32 = parse_version_part(env!("CARGO_PKG_VERSION_PATCH"));
const VERSION_STRING: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("the package version holds a NUL"),
    };

// ---- version, status, errors, buffers ---------------------------------------

/// The library's version packed as `(major << 16) | (minor << 8) | patch`,
/// like the header's `MSS_VERSION_NUMBER`: compare the two to detect a
/// header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn mss_version() -> u32 {
    (VERSION_MAJOR << 16) | (VERSION_MINOR << 8) | VERSION_PATCH
}

/// The library's version as a static string, e.g. `"0.1.0"` (as
/// `MSS_VERSION_STRING`). Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn mss_version_string() -> *const c_char {
    static_cstr(VERSION_STRING)
}

/// The stable string code of a status number: `"ok"`, `"not_found"`,
/// `"already_exists"`, `"conflict"`, `"invalid_input"`, `"limit_exceeded"`,
/// `"cursor_expired"`, `"unavailable"`, `"timeout"`, `"backend"`,
/// `"internal"`, or `"unknown"` for any other number. Static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn mss_status_code(status: i32) -> *const c_char {
    let code: &'static CStr = match status {
        0 => c"ok",
        1 => c"not_found",
        2 => c"already_exists",
        3 => c"conflict",
        4 => c"invalid_input",
        5 => c"limit_exceeded",
        6 => c"cursor_expired",
        7 => c"unavailable",
        8 => c"timeout",
        9 => c"backend",
        10 => c"internal",
        _ => c"unknown",
    };
    static_cstr(code)
}

/// The status of an error; `MSS_INVALID_INPUT` if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_status(err: *const mss_error) -> mss_status {
    if err.is_null() {
        return mss_status::MSS_INVALID_INPUT;
    }
    // SAFETY: a non-NULL `err` is a live error object of this library.
    unsafe { (*err).status }
}

/// The stable code of an error (as `mss_status_code`). Static; never free
/// it. `"invalid_input"` if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_code(err: *const mss_error) -> *const c_char {
    // SAFETY: forwarded contract.
    mss_status_code(unsafe { mss_error_status(err) } as i32)
}

/// The message of an error, NUL-terminated; valid until `mss_error_free`.
/// An empty string if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_message(err: *const mss_error) -> *const c_char {
    if err.is_null() {
        return static_cstr(c"");
    }
    // SAFETY: a non-NULL `err` is a live error object of this library.
    unsafe { (*err).message.as_ptr() }
}

/// Free an error object. NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_free(err: *mut mss_error) {
    if err.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `err` came from `Box::into_raw` in this library.
        drop(unsafe { Box::from_raw(err) });
    });
}

/// Free a buffer's data and set it to `{NULL, 0}`, so freeing it again does
/// nothing. NULL, and a buffer whose `data` is NULL, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_buf_free(buf: *mut mss_buf) {
    if buf.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `buf` points to a buffer this library filled.
        unsafe { free_buf(&mut *buf) }
    });
}

// ---- stores -------------------------------------------------------------------

/// Open the store at `url` (`memory://`, `sqlite://PATH`, `postgres://…`,
/// `redis://…`, `dynamodb://TABLE?…`); options come as URL query parameters
/// (`?ttl=30m&max_events_per_session=1000`). On success `*store_out` is a new
/// handle, to be freed with `mss_store_free`. An unknown scheme or option is
/// `MSS_INVALID_INPUT`, a backend that cannot be reached `MSS_UNAVAILABLE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_store_open(
    url: *const c_char,
    store_out: *mut *mut mss_store,
    err_out: *mut *mut mss_error,
) -> mss_status {
    // SAFETY: forwarded contract; NULL options mean none.
    unsafe { mss_store_open_with(url, std::ptr::null(), 0, store_out, err_out) }
}

/// `mss_store_open` with options as a JSON object (`options` may be NULL for
/// none): `{"ttl_ms": 1800000, "max_events_per_session": 1000,
/// "max_payload_bytes": 1048576, "max_sessions": 10000, "poll_interval_ms":
/// 250}`, every field optional. Query parameters in the URL win. An unknown
/// field or a wrong type is `MSS_INVALID_INPUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_store_open_with(
    url: *const c_char,
    options: *const c_char,
    options_len: usize,
    store_out: *mut *mut mss_store,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        // SAFETY: the caller's contract on each pointer.
        let url = unsafe { cstr(url, "url") }?;
        let options = if options.is_null() {
            mss_core::StoreOptions::default()
        } else {
            parse_options(unsafe { text(options, options_len, "options") }?)?
        };
        let store_out = out(store_out, "store_out")?;
        let store = block_on(Store::open_with(url, options))??;
        let handle = STORES.insert(store);
        unsafe { write(store_out, handle) };
        Ok(())
    })
}

/// Close and free a store: pending writes are finished and connections
/// released. NULL, and a handle already freed, are ignored. Calls still
/// running on other threads keep the store open until they return. Free the
/// store's subscriptions first: once it is closed, their calls may fail
/// (`MSS_UNAVAILABLE` on SQLite).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_store_free(store: *mut mss_store) {
    boundary(std::ptr::null_mut(), || {
        if let Some(store) = STORES.remove(store)
            && let Some(store) = Arc::into_inner(store)
        {
            // Errors on close leave nothing to report: the handle is gone.
            let _ = block_on(store.close())?;
        }
        Ok(())
    });
}

/// The backend's name (`"memory"`, `"sqlite"`, …), static: never free it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_store_backend(
    store: *const mss_store,
    name_out: *mut *const c_char,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let name_out = out(name_out, "name_out")?;
        let name: &'static CStr = match store.backend_name() {
            "memory" => c"memory",
            "sqlite" => c"sqlite",
            "postgres" => c"postgres",
            "redis" => c"redis",
            "dynamodb" => c"dynamodb",
            _ => c"other",
        };
        unsafe { write(name_out, static_cstr(name)) };
        Ok(())
    })
}

// ---- sessions -----------------------------------------------------------------

/// Create a session. `options` (may be NULL for defaults) is a JSON object
/// `{"id": "…", "metadata": {…}, "ttl_ms": 60000}`, every field optional; no
/// id generates a UUID v4. On success `*session_out` holds the session as
/// JSON: `{"id", "created_at", "last_activity", "expires_at", "ttl_ms",
/// "metadata", "version", "last_seq"}` (times in ms since the Unix epoch). A
/// live id is `MSS_ALREADY_EXISTS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_create(
    store: *const mss_store,
    options: *const c_char,
    options_len: usize,
    session_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let new = if options.is_null() {
            NewSession::new()
        } else {
            parse_new_session(unsafe { text(options, options_len, "options") }?)?
        };
        let session_out = out(session_out, "session_out")?;
        let session = block_on(store.create_session(new))??;
        unsafe { write(session_out, to_buf(&session_json(&session)?)) };
        Ok(())
    })
}

/// Read a session as JSON (shape as `mss_session_create`). A session that
/// does not exist or has expired is `MSS_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_get(
    store: *const mss_store,
    session_id: *const c_char,
    session_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let session_out = out(session_out, "session_out")?;
        let session = block_on(store.get_session(id))??
            .ok_or_else(|| FfiError::from(mss_core::Error::session_not_found(id)))?;
        unsafe { write(session_out, to_buf(&session_json(&session)?)) };
        Ok(())
    })
}

/// Shallow-merge `patch` (a JSON object) into the session's metadata and
/// renew its TTL; `*session_out` is the updated session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_update(
    store: *const mss_store,
    session_id: *const c_char,
    patch: *const c_char,
    patch_len: usize,
    session_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let patch = parse_metadata(unsafe { text(patch, patch_len, "patch") }?, "patch")?;
        let session_out = out(session_out, "session_out")?;
        let session = block_on(store.update_session(id, patch))??;
        unsafe { write(session_out, to_buf(&session_json(&session)?)) };
        Ok(())
    })
}

/// Renew the session's TTL; `*session_out` is the session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_touch(
    store: *const mss_store,
    session_id: *const c_char,
    session_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let session_out = out(session_out, "session_out")?;
        let session = block_on(store.touch_session(id))??;
        unsafe { write(session_out, to_buf(&session_json(&session)?)) };
        Ok(())
    })
}

/// Delete a session with its state and events. Idempotent: `*deleted_out`
/// (may be NULL) tells whether a live session was deleted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_delete(
    store: *const mss_store,
    session_id: *const c_char,
    deleted_out: *mut bool,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let deleted = block_on(store.delete_session(id))??;
        unsafe { write_opt(deleted_out, deleted) };
        Ok(())
    })
}

/// Live sessions in id order, at most `limit` (1–10000), after the id `after`
/// (NULL: from the start). `*page_out` is `{"items": [session, …], "next":
/// "ID" | null}`; pass `next` as `after` to continue.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_list(
    store: *const mss_store,
    after: *const c_char,
    limit: usize,
    page_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let after = unsafe { opt_cstr(after, "after") }?;
        let page_out = out(page_out, "page_out")?;
        let page = block_on(store.list_sessions(after, limit))??;
        unsafe { write(page_out, to_buf(&session_page_json(&page)?)) };
        Ok(())
    })
}

/// How many sessions are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_session_count(
    store: *const mss_store,
    count_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let count_out = out(count_out, "count_out")?;
        let count = block_on(store.count_sessions())??;
        unsafe { write(count_out, count) };
        Ok(())
    })
}

// ---- state --------------------------------------------------------------------

/// Read one state key: `*value_out` is its JSON value and `*version_out` (may
/// be NULL) its version. A key that is not set, and a session that does not
/// exist, are `MSS_NOT_FOUND` (the message says which).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_get(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    value_out: *mut mss_buf,
    version_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let value_out = out(value_out, "value_out")?;
        let entry = block_on(store.get_state(id, key))??.ok_or_else(|| {
            FfiError::new(
                mss_status::MSS_NOT_FOUND,
                format!("state key {key:?} is not set"),
            )
        })?;
        unsafe {
            write(value_out, to_buf(entry.value.as_str()));
            write_opt(version_out, entry.version);
        }
        Ok(())
    })
}

fn check_payload(store: &Store, len: usize, what: &str) -> FfiResult<()> {
    let max = store.options().max_payload_bytes;
    if len > max {
        return Err(FfiError::new(
            mss_status::MSS_LIMIT_EXCEEDED,
            format!("{what} is {len} bytes, over the limit of {max}"),
        ));
    }
    Ok(())
}

fn parse_value(store: &Store, value: &str, what: &str) -> FfiResult<mss_core::Json> {
    check_payload(store, value.len(), what)?;
    Ok(mss_core::Json::parse(value)?)
}

/// Set one state key to `value` (JSON text); `*version_out` (may be NULL) is
/// its new version.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_set(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    value: *const c_char,
    value_len: usize,
    version_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let value = parse_value(&store, unsafe { text(value, value_len, "value") }?, "value")?;
        let version = block_on(store.set_state(id, key, value))??;
        unsafe { write_opt(version_out, version) };
        Ok(())
    })
}

/// Compare-and-set: write only if the key is at `expected_version`. A
/// mismatch (also a key that is not set) is `MSS_CONFLICT` and writes
/// nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_set_if_version(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    value: *const c_char,
    value_len: usize,
    expected_version: u64,
    version_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let value = parse_value(&store, unsafe { text(value, value_len, "value") }?, "value")?;
        let version =
            block_on(store.set_state_if_version(id, key, value, Some(expected_version)))??;
        unsafe { write_opt(version_out, version) };
        Ok(())
    })
}

/// Compare-and-set on absence: write only if the key is not set; otherwise
/// `MSS_CONFLICT` and nothing is written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_set_if_absent(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    value: *const c_char,
    value_len: usize,
    version_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let value = parse_value(&store, unsafe { text(value, value_len, "value") }?, "value")?;
        let version = block_on(store.set_state_if_version(id, key, value, None))??;
        unsafe { write_opt(version_out, version) };
        Ok(())
    })
}

struct Callback {
    f: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        usize,
        *mut *const c_char,
        *mut usize,
    ) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the callback runs on the calling thread only: `block_on` polls the
// update on that thread, and `update_state` spawns nothing.
unsafe impl Send for Callback {}

fn status_from_i32(code: i32) -> mss_status {
    use mss_status::*;
    [
        MSS_NOT_FOUND,
        MSS_ALREADY_EXISTS,
        MSS_CONFLICT,
        MSS_INVALID_INPUT,
        MSS_LIMIT_EXCEEDED,
        MSS_CURSOR_EXPIRED,
        MSS_UNAVAILABLE,
        MSS_TIMEOUT,
        MSS_BACKEND,
        MSS_INTERNAL,
    ]
    .into_iter()
    .find(|s| *s as i32 == code)
    .unwrap_or(MSS_OTHER_ERROR)
}

/// Atomically replace a key's value with what `callback` computes from the
/// current one, retrying when another writer got in between (compare-and-set
/// on the version), so N concurrent increments give N. On success
/// `*value_out` (may be NULL) is the value written and `*version_out` (may be
/// NULL) its version. Gives up with `MSS_CONFLICT` after 1000 lost races.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_update(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    callback: mss_update_fn,
    user_data: *mut c_void,
    value_out: *mut mss_buf,
    version_out: *mut u64,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let Some(f) = callback else {
            return Err(FfiError::invalid("callback is NULL"));
        };
        let callback = Callback { f, user_data };
        let max = store.options().max_payload_bytes;
        // The callback's own status, kept apart from the store's errors.
        let mut stopped: Option<FfiError> = None;
        let stopped_ref = &mut stopped;
        let result = block_on(store.update_state(id, key, move |current| {
            let callback = &callback;
            let current = current.map(|v| v.to_string());
            let (ptr, len) = match &current {
                Some(s) => (s.as_ptr().cast::<c_char>(), s.len()),
                None => (std::ptr::null(), 0),
            };
            let mut new_ptr: *const c_char = std::ptr::null();
            let mut new_len: usize = 0;
            // SAFETY: the caller vouches for the callback and its user data.
            let code =
                unsafe { (callback.f)(callback.user_data, ptr, len, &mut new_ptr, &mut new_len) };
            let outcome: FfiResult<serde_json::Value> = if code != 0 {
                Err(FfiError::new(
                    status_from_i32(code),
                    format!("the update callback stopped the update with status {code}"),
                ))
            } else {
                // SAFETY: the callback's contract: valid until it returns to us
                // and we copy it here.
                unsafe { text(new_ptr, new_len, "the callback's new value") }.and_then(|s| {
                    if s.len() > max {
                        return Err(FfiError::new(
                            mss_status::MSS_LIMIT_EXCEEDED,
                            format!(
                                "the callback's new value is {} bytes, over the limit of {max}",
                                s.len()
                            ),
                        ));
                    }
                    parse_json_value(s, "the callback's new value")
                })
            };
            // The core sees a plain error that stops the update; the
            // callback's own status is kept for the caller.
            outcome.map_err(|e| {
                let stop =
                    mss_core::Error::new(mss_core::ErrorKind::InvalidInput, e.message.clone());
                *stopped_ref = Some(e);
                stop
            })
        }))?;
        let entry = match result {
            Ok(entry) => entry,
            Err(e) => return Err(stopped.unwrap_or_else(|| FfiError::from(e))),
        };
        unsafe {
            if !value_out.is_null() {
                write(value_out, to_buf(entry.value.as_str()));
            }
            write_opt(version_out, entry.version);
        }
        Ok(())
    })
}

/// Delete one state key; `*deleted_out` (may be NULL) tells whether it
/// existed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_delete(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    deleted_out: *mut bool,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let key = unsafe { cstr(key, "key") }?;
        let deleted = block_on(store.delete_state(id, key))??;
        unsafe { write_opt(deleted_out, deleted) };
        Ok(())
    })
}

/// Every state key of the session, sorted, as a JSON array of strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_keys(
    store: *const mss_store,
    session_id: *const c_char,
    keys_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let keys_out = out(keys_out, "keys_out")?;
        let keys = block_on(store.state_keys(id))??;
        unsafe { write(keys_out, to_buf(&string_list_json(&keys)?)) };
        Ok(())
    })
}

/// Every state entry of the session, sorted by key, as a JSON array of
/// `{"key": "…", "value": <JSON>, "version": N}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_state_all(
    store: *const mss_store,
    session_id: *const c_char,
    entries_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let entries_out = out(entries_out, "entries_out")?;
        let entries = block_on(store.state_all(id))??;
        unsafe { write(entries_out, to_buf(&state_entries_json(&entries)?)) };
        Ok(())
    })
}

// ---- events -------------------------------------------------------------------

fn append(store: &Store, session_id: &str, event: NewEvent) -> FfiResult<String> {
    let event = block_on(store.append_event(session_id, event))??;
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
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let stream = unsafe { cstr(stream_id, "stream_id") }?;
        let data = parse_value(
            &store,
            unsafe { text(data, data_len, "data") }?,
            "event data",
        )?;
        let event_out = out(event_out, "event_out")?;
        let json = append(&store, id, NewEvent::new(stream, data))?;
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
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let event_text = unsafe { text(event, event_len, "event") }?;
        let new = parse_event(event_text, store.options().max_payload_bytes)?;
        let event_out = out(event_out, "event_out")?;
        let json = append(&store, id, new)?;
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
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let stream = unsafe { cstr(stream_id, "stream_id") }?;
        let page_out = out(page_out, "page_out")?;
        let cursor = EventId::new(stream, after_seq);
        let page = block_on(store.events_after(id, &cursor, limit))??;
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
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let wire = unsafe { cstr(last_event_id, "last_event_id") }?;
        let page_out = out(page_out, "page_out")?;
        let page = block_on(store.replay(id, wire, limit))??;
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
        let id = unsafe { cstr(session_id, "session_id") }?;
        let stream = unsafe { cstr(stream_id, "stream_id") }?;
        mss_core::validate::session_id(id)?;
        mss_core::validate::stream_id(stream)?;
        let wire_out = out(wire_out, "wire_out")?;
        let wire = EventId::new(stream, seq).format(id);
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
        let wire = unsafe { cstr(wire, "wire") }?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let stream_out = out(stream_out, "stream_out")?;
        let seq_out = out(seq_out, "seq_out")?;
        let parsed = EventId::parse(wire, id)?;
        unsafe {
            write(stream_out, to_buf(&parsed.stream_id));
            write(seq_out, parsed.seq);
        }
        Ok(())
    })
}

// ---- subscriptions -------------------------------------------------------------

/// Follow stream `stream_id` of a session: the events after `after_seq`,
/// then each new one as it is appended (also by other processes on a shared
/// backend). An unknown session is `MSS_NOT_FOUND`. Free the subscription
/// with `mss_subscription_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_subscribe(
    store: *const mss_store,
    session_id: *const c_char,
    stream_id: *const c_char,
    after_seq: u64,
    subscription_out: *mut *mut mss_subscription,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let id = unsafe { cstr(session_id, "session_id") }?;
        let stream = unsafe { cstr(stream_id, "stream_id") }?;
        let subscription_out = out(subscription_out, "subscription_out")?;
        let sub = block_on(store.subscribe(id, EventId::new(stream, after_seq)))??;
        let handle = SUBSCRIPTIONS.insert(Mutex::new(sub));
        unsafe { write(subscription_out, handle) };
        Ok(())
    })
}

/// Wait up to `timeout_ms` for the subscription's next event. If one came,
/// `*received_out` is true and `*event_out` holds it (shape as
/// `mss_event_append`); if the wait timed out, `*received_out` is false and
/// `*event_out` is not written. When the session is deleted or expires the
/// call fails with `MSS_NOT_FOUND` (and with `MSS_CURSOR_EXPIRED` if the
/// subscriber fell behind trimming); the subscription has ended then, and
/// every later call is `MSS_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_subscription_next(
    subscription: *const mss_subscription,
    timeout_ms: u32,
    received_out: *mut bool,
    event_out: *mut mss_buf,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let sub = SUBSCRIPTIONS.get(subscription)?;
        let received_out = out(received_out, "received_out")?;
        let event_out = out(event_out, "event_out")?;
        let mut sub = sub.lock();
        let wait = Duration::from_millis(u64::from(timeout_ms));
        let next = block_on(async { tokio::time::timeout(wait, sub.next()).await })?;
        match next {
            Err(_elapsed) => unsafe { write(received_out, false) },
            Ok(None) => {
                return Err(FfiError::new(
                    mss_status::MSS_NOT_FOUND,
                    "the subscription has ended",
                ));
            }
            Ok(Some(event)) => {
                let json = event_json(&event?)?;
                unsafe {
                    write(event_out, to_buf(&json));
                    write(received_out, true);
                }
            }
        }
        Ok(())
    })
}

/// Free a subscription. NULL, and a handle already freed, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_subscription_free(subscription: *mut mss_subscription) {
    boundary(std::ptr::null_mut(), || {
        drop(SUBSCRIPTIONS.remove(subscription));
        Ok(())
    });
}

// ---- expiry -------------------------------------------------------------------

/// Delete every expired session with its state and events; `*stats_out`
/// (may be NULL) counts what was removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_cleanup_expired(
    store: *const mss_store,
    stats_out: *mut mss_cleanup_stats,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = STORES.get(store)?;
        let stats = block_on(store.cleanup_expired())??;
        unsafe {
            write_opt(
                stats_out,
                mss_cleanup_stats {
                    sessions: stats.sessions,
                    state_entries: stats.state_entries,
                    events: stats.events,
                },
            )
        };
        Ok(())
    })
}

#[cfg(test)]
mod tests;
