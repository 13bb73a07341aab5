//! Per-session state: get, set, compare-and-set, the atomic update with a C
//! callback, delete, keys and every entry.

use std::ffi::{c_char, c_void};
use std::sync::mpsc;

use mss_core::{Error, ErrorKind};
use serde_json::Value;

use crate::args::{cstr, out, text, write, write_opt};
use crate::boundary::{FfiError, FfiResult, block_on, boundary, check_blocking, in_callback};
use crate::buffers::{mss_buf, to_buf};
use crate::json_io::{parse_json_value, parse_value, state_entries_json, string_list_json};
use crate::status::{mss_error, mss_status, status_from_i32};
use crate::store::{mss_store, store as get_store};

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

/// The callback itself (`mss_update_fn` without the NULL case).
type UpdateFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, usize, *mut *const c_char, *mut usize) -> i32;

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
        let store = get_store(store)?;
        // SAFETY: `session_id` and `key` are NULL or NUL-terminated strings
        // (the header's contract).
        let (id, key) = unsafe { (cstr(session_id, "session_id")?, cstr(key, "key")?) };
        let value_out = out(value_out, "value_out")?;
        let (id, k) = (id.to_owned(), key.to_owned());
        let entry = block_on(async move { store.get_state(&id, &k).await })??.ok_or_else(|| {
            FfiError::new(
                mss_status::MSS_NOT_FOUND,
                format!("state key {key:?} is not set"),
            )
        })?;
        // SAFETY: `value_out` was checked by `out` and points to a writable
        // `mss_buf`; `version_out` is NULL or points to a writable `u64` (the
        // header's contract).
        unsafe {
            write(value_out, to_buf(entry.value.as_str()));
            write_opt(version_out, entry.version);
        }
        Ok(())
    })
}

/// Set `key` to the JSON text at `value`, unconditionally or only at
/// `expected` version, and write the new version to `version_out`.
///
/// # Safety
/// The pointers as the header's contract of `mss_state_set`.
unsafe fn set(
    store: *const mss_store,
    session_id: *const c_char,
    key: *const c_char,
    value: *const c_char,
    value_len: usize,
    expected: Option<Option<u64>>,
    version_out: *mut u64,
) -> FfiResult<()> {
    let store = get_store(store)?;
    // SAFETY: `session_id` and `key` are NULL or NUL-terminated strings, and
    // `value` is NULL or points to `value_len` readable bytes (this
    // function's contract).
    let (id, key, value) = unsafe {
        (
            cstr(session_id, "session_id")?.to_owned(),
            cstr(key, "key")?.to_owned(),
            text(value, value_len, "value")?,
        )
    };
    let value = parse_value(&store, value, "value")?;
    let version = block_on(async move {
        match expected {
            None => store.set_state(&id, &key, value).await,
            Some(expected) => store.set_state_if_version(&id, &key, value, expected).await,
        }
    })??;
    // SAFETY: `version_out` is NULL or points to a writable `u64` (this
    // function's contract).
    unsafe { write_opt(version_out, version) };
    Ok(())
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
        // SAFETY: forwarded: the header's contract of this function.
        unsafe { set(store, session_id, key, value, value_len, None, version_out) }
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
        let expected = Some(Some(expected_version));
        // SAFETY: forwarded: the header's contract of this function.
        unsafe {
            set(
                store,
                session_id,
                key,
                value,
                value_len,
                expected,
                version_out,
            )
        }
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
        // SAFETY: forwarded: the header's contract of this function.
        unsafe {
            set(
                store,
                session_id,
                key,
                value,
                value_len,
                Some(None),
                version_out,
            )
        }
    })
}

/// One call of the callback that the update, running on the runtime, asks
/// the calling thread for: the current value's JSON text, and where the new
/// value (or the message that stopped the update) goes.
struct Turn {
    current: Option<String>,
    reply: mpsc::SyncSender<Result<Value, String>>,
}

/// Call the C callback on `current` and read the new value it returns.
fn run_callback(
    f: UpdateFn,
    user_data: *mut c_void,
    current: Option<&str>,
    max: usize,
) -> FfiResult<Value> {
    let (ptr, len) = match current {
        Some(s) => (s.as_ptr().cast::<c_char>(), s.len()),
        None => (std::ptr::null(), 0),
    };
    let mut new_ptr: *const c_char = std::ptr::null();
    let mut new_len: usize = 0;
    // SAFETY: the caller vouches for the callback and its user data (the
    // header's contract); `ptr`/`len` describe `current`, alive for the call,
    // and the outputs are locals.
    let code = unsafe { f(user_data, ptr, len, &mut new_ptr, &mut new_len) };
    if code != 0 {
        return Err(FfiError::new(
            status_from_i32(code),
            format!("the update callback stopped the update with status {code}"),
        ));
    }
    // SAFETY: the callback's contract: `new_ptr` is NULL or points to
    // `new_len` bytes that stay valid until it is called again or
    // `mss_state_update` returns; they are copied before either.
    let s = unsafe { text(new_ptr, new_len, "the callback's new value") }?;
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
        let store = get_store(store)?;
        // SAFETY: `session_id` and `key` are NULL or NUL-terminated strings
        // (the header's contract).
        let (id, key) = unsafe {
            (
                cstr(session_id, "session_id")?.to_owned(),
                cstr(key, "key")?.to_owned(),
            )
        };
        let Some(f) = callback else {
            return Err(FfiError::invalid("callback is NULL"));
        };
        check_blocking()?;
        let max = store.options().max_payload_bytes;
        // The update runs on the runtime; each time it needs a new value it
        // hands the current one to this thread, which calls the callback, so
        // the callback runs on the caller's thread as documented.
        let (turns, next_turn) = mpsc::channel::<Turn>();
        let task = mss_bridge::runtime::spawn(async move {
            store
                .update_state(&id, &key, move |current| {
                    let gone = || Error::new(ErrorKind::Internal, "the update's caller is gone");
                    let (reply, answer) = mpsc::sync_channel(1);
                    let current = current.map(|v| v.to_string());
                    turns.send(Turn { current, reply }).map_err(|_| gone())?;
                    // The caller's thread runs the callback meanwhile.
                    match tokio::task::block_in_place(|| answer.recv()) {
                        Ok(Ok(value)) => Ok(value),
                        Ok(Err(message)) => Err(Error::new(ErrorKind::InvalidInput, message)),
                        Err(_) => Err(gone()),
                    }
                })
                .await
        })?;
        // The callback's own status, kept apart from the store's errors.
        let mut stopped: Option<FfiError> = None;
        // Ends when the update is done and drops its sender.
        for turn in next_turn {
            let outcome = in_callback(|| run_callback(f, user_data, turn.current.as_deref(), max));
            let answer = outcome.map_err(|e| {
                let message = e.message.clone();
                stopped = Some(e);
                message
            });
            // The update may have ended already (a panic): nothing waits.
            let _ = turn.reply.send(answer);
        }
        let entry = match block_on(mss_bridge::runtime::join(task))?? {
            Ok(entry) => entry,
            Err(e) => return Err(stopped.unwrap_or_else(|| FfiError::from(e))),
        };
        // SAFETY: `value_out` is NULL or points to a writable `mss_buf`, and
        // `version_out` is NULL or points to a writable `u64` (the header's
        // contract).
        unsafe {
            // Built only when asked for: an `mss_buf` dropped here would leak.
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
        let store = get_store(store)?;
        // SAFETY: `session_id` and `key` are NULL or NUL-terminated strings
        // (the header's contract).
        let (id, key) = unsafe {
            (
                cstr(session_id, "session_id")?.to_owned(),
                cstr(key, "key")?.to_owned(),
            )
        };
        let deleted = block_on(async move { store.delete_state(&id, &key).await })??;
        // SAFETY: `deleted_out` is NULL or points to a writable `bool` (the
        // header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        let keys_out = out(keys_out, "keys_out")?;
        let keys = block_on(async move { store.state_keys(&id).await })??;
        // SAFETY: `keys_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
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
        let store = get_store(store)?;
        // SAFETY: `session_id` is NULL or a NUL-terminated string (the
        // header's contract).
        let id = unsafe { cstr(session_id, "session_id") }?.to_owned();
        let entries_out = out(entries_out, "entries_out")?;
        let entries = block_on(async move { store.state_all(&id).await })??;
        // SAFETY: `entries_out` was checked by `out` and points to a writable
        // `mss_buf` (the header's contract).
        unsafe { write(entries_out, to_buf(&state_entries_json(&entries)?)) };
        Ok(())
    })
}
