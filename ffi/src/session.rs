//! Sessions: create, read, update, touch, delete, list and count.

use std::ffi::c_char;

use mss_core::NewSession;

use crate::args::{cstr, opt_cstr, out, text, write, write_opt};
use crate::boundary::{FfiError, block_on, boundary};
use crate::buffers::{mss_buf, to_buf};
use crate::json_io::{
    page_limit, parse_metadata, parse_new_session, session_json, session_page_json,
};
use crate::status::{mss_error, mss_status};
use crate::store::{mss_store, store as get_store};

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
        let store = get_store(store)?;
        let new = if options.is_null() {
            NewSession::new()
        } else {
            // SAFETY: a non-NULL `options` points to `options_len` readable
            // bytes (the header's contract).
            parse_new_session(unsafe { text(options, options_len, "options") }?)?
        };
        let session_out = out(session_out, "session_out")?;
        let session = block_on(async move { store.create_session(new).await })??;
        // SAFETY: `session_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        let session_out = out(session_out, "session_out")?;
        let (id, session) = block_on(async move {
            let session = store.get_session(&id).await;
            (id, session)
        })?;
        let session =
            session?.ok_or_else(|| FfiError::from(mss_core::Error::session_not_found(&id)))?;
        // SAFETY: `session_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        // SAFETY: `patch` is NULL or points to `patch_len` readable bytes
        // (the header's contract).
        let patch = parse_metadata(unsafe { text(patch, patch_len, "patch") }?, "patch")?;
        let session_out = out(session_out, "session_out")?;
        let session = block_on(async move { store.update_session(&id, patch).await })??;
        // SAFETY: `session_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        let session_out = out(session_out, "session_out")?;
        let session = block_on(async move { store.touch_session(&id).await })??;
        // SAFETY: `session_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        let deleted = block_on(async move { store.delete_session(&id).await })??;
        // SAFETY: `deleted_out` is NULL or points to a writable `bool` (the
        // header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `after` is NULL or a NUL-terminated string (the header's
        // contract).
        let after = unsafe { opt_cstr(after, "after") }?.map(str::to_owned);
        let page_out = out(page_out, "page_out")?;
        let limit = page_limit(limit)?;
        let page = block_on(async move { store.list_sessions(after.as_deref(), limit).await })??;
        // SAFETY: `page_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        let count_out = out(count_out, "count_out")?;
        let count = block_on(async move { store.count_sessions().await })??;
        // SAFETY: `count_out` was checked by `out` and points to a writable
        // `u64` (the header's contract).
        unsafe { write(count_out, count) };
        Ok(())
    })
}
