//! Stores: the `mss_store` handle, opening (options parsed by the bridge's
//! `OpenOptions`), closing, and the backend's name.

use std::ffi::{CStr, c_char};
use std::sync::Arc;

use mss_bridge::OpenOptions;
use mss_core::Store;

use crate::args::{cstr, out, text, write};
use crate::boundary::{FfiResult, block_on, boundary};
use crate::buffers::static_cstr;
use crate::handles::Registry;
use crate::status::{mss_error, mss_status};

/// An open store. Opaque: a handle number the library looks up on every
/// call, never dereferenced, so a handle used after `mss_store_free` is
/// reported as `MSS_INVALID_INPUT` rather than crashing. One handle may be
/// used from many threads at once.
pub struct mss_store {
    _opaque: [u8; 0],
}

/// Every open store.
static STORES: Registry<Store> = Registry::new("store");

/// The live store behind a handle.
pub(crate) fn store(handle: *const mss_store) -> FfiResult<Arc<Store>> {
    STORES.get(handle)
}

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
        // SAFETY: `url` is NULL or a NUL-terminated string (the header's
        // contract).
        let url = unsafe { cstr(url, "url") }?.to_owned();
        let options = if options.is_null() {
            OpenOptions::default()
        } else {
            // SAFETY: a non-NULL `options` points to `options_len` readable
            // bytes (the header's contract).
            OpenOptions::from_json(unsafe { text(options, options_len, "options") }?)?
        };
        let store_out = out(store_out, "store_out")?;
        let store =
            block_on(async move { Store::open_with(&url, options.to_store_options()).await })??;
        let handle = STORES.insert(store);
        // SAFETY: `store_out` was checked by `out` and points to writable
        // memory for a handle (the header's contract).
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
            let _ = block_on(async move { store.close().await })?;
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
        // SAFETY: `name_out` was checked by `out` and points to writable
        // memory for a pointer (the header's contract).
        unsafe { write(name_out, static_cstr(name)) };
        Ok(())
    })
}
