//! The plumbing behind every entry point: the panic boundary, the error
//! object, argument checks, the shared tokio runtime and the handle registry.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll, Waker};

use mss_core::{Error, ErrorKind};
use parking_lot::RwLock;

use crate::{mss_buf, mss_error, mss_status};

/// An error on its way to C: a status and a message.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: mss_status,
    pub(crate) message: String,
}

pub(crate) type FfiResult<T> = Result<T, FfiError>;

impl FfiError {
    pub(crate) fn new(status: mss_status, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(mss_status::MSS_INVALID_INPUT, message)
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        FfiError::new(status_of(e.kind()), e.message().to_string())
    }
}

/// The status of an error kind: `ErrorKind::ALL[i]` is status `i + 1`.
pub(crate) fn status_of(kind: ErrorKind) -> mss_status {
    use mss_status::*;
    match kind {
        ErrorKind::NotFound => MSS_NOT_FOUND,
        ErrorKind::AlreadyExists => MSS_ALREADY_EXISTS,
        ErrorKind::Conflict => MSS_CONFLICT,
        ErrorKind::InvalidInput => MSS_INVALID_INPUT,
        ErrorKind::LimitExceeded => MSS_LIMIT_EXCEEDED,
        ErrorKind::CursorExpired => MSS_CURSOR_EXPIRED,
        ErrorKind::Unavailable => MSS_UNAVAILABLE,
        ErrorKind::Timeout => MSS_TIMEOUT,
        ErrorKind::Backend => MSS_BACKEND,
        ErrorKind::Internal => MSS_INTERNAL,
        // A kind added to the core after this ABI was built.
        _ => MSS_OTHER_ERROR,
    }
}

/// Run `f` behind the panic boundary. On failure the status is returned and,
/// if `err_out` is not NULL, an error object is written to it.
pub(crate) fn boundary<F>(err_out: *mut *mut mss_error, f: F) -> mss_status
where
    F: FnOnce() -> FfiResult<()>,
{
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(FfiError::new(
            mss_status::MSS_INTERNAL,
            format!("internal error (caught panic): {what}"),
        ))
    });
    match result {
        Ok(()) => mss_status::MSS_OK,
        Err(e) => {
            let status = e.status;
            if !err_out.is_null() {
                // Building the error object must not unwind into C either.
                if let Ok(boxed) = catch_unwind(AssertUnwindSafe(|| Box::new(mss_error::new(e)))) {
                    // SAFETY: the caller passes NULL or a valid `mss_error **`.
                    unsafe { *err_out = Box::into_raw(boxed) };
                }
            }
            status
        }
    }
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn cstr<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: see above.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| FfiError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// An optional NUL-terminated UTF-8 argument (NULL is `None`).
///
/// # Safety
/// As [`cstr`].
pub(crate) unsafe fn opt_cstr<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: see above.
        unsafe { cstr(p, what) }.map(Some)
    }
}

/// A pointer + length UTF-8 argument (JSON text).
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn text<'a>(p: *const c_char, len: usize, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: see above.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes)
        .map_err(|e| FfiError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// Check that an output pointer is not NULL.
pub(crate) fn out<T>(p: *mut T, what: &str) -> FfiResult<*mut T> {
    if p.is_null() {
        Err(FfiError::invalid(format!("{what} is NULL")))
    } else {
        Ok(p)
    }
}

/// Write `value` to an output checked by [`out`].
///
/// # Safety
/// `p` came from [`out`] and points to writable memory for a `T`.
pub(crate) unsafe fn write<T>(p: *mut T, value: T) {
    // SAFETY: see above; the old value is plain data owned by the caller.
    unsafe { p.write(value) }
}

/// Write to an optional output (NULL: nothing is written).
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn write_opt<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: see above.
        unsafe { p.write(value) }
    }
}

/// Text handed to C in an [`mss_buf`]: NUL-terminated, freed by `mss_buf_free`.
pub(crate) fn to_buf(s: &str) -> mss_buf {
    // Exactly the text and its NUL: no reallocation when boxed.
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    bytes.push(0);
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len() - 1;
    mss_buf {
        data: Box::into_raw(boxed).cast::<c_char>(),
        len,
    }
}

/// Take back a buffer made by [`to_buf`].
///
/// # Safety
/// `buf` was returned by this library and not freed since.
pub(crate) unsafe fn free_buf(buf: &mut mss_buf) {
    if buf.data.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(buf.data.cast::<u8>(), buf.len + 1);
    // SAFETY: `to_buf` made this allocation as a `Box<[u8]>` of `len + 1`.
    drop(unsafe { Box::from_raw(slice) });
    buf.data = std::ptr::null_mut();
    buf.len = 0;
}

/// A static NUL-terminated string for C.
pub(crate) fn static_cstr(s: &'static CStr) -> *const c_char {
    s.as_ptr()
}

/// A message as a C string (interior NULs replaced).
pub(crate) fn message_cstring(message: String) -> CString {
    CString::new(message).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|&b| b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

// ---- the runtime ----------------------------------------------------------

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Stack a call may need while it is polled on the calling thread (the AWS
/// SDK's futures of the DynamoDB backend need up to about 768 KiB in a debug
/// build, 256 KiB in a release build).
const RED_ZONE: usize = 1 << 20;

/// The stack a call runs on when its thread has less than [`RED_ZONE`] left
/// (a small thread stack: musl's 128 KiB default, a language runtime's
/// worker threads).
const GROWN_STACK: usize = 8 << 20;

/// Run a future to completion on the library's runtime, from the calling
/// thread; on a fresh stack segment of [`GROWN_STACK`] if the thread has
/// less than [`RED_ZONE`] of stack left, so no caller's stack overflows.
pub(crate) fn block_on<F: Future>(future: F) -> FfiResult<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(FfiError::new(
            mss_status::MSS_INTERNAL,
            "mcp_session_store functions block: call them from a plain thread, not from inside a tokio runtime",
        ));
    }
    let runtime = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("mss-runtime")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| FfiError::new(mss_status::MSS_INTERNAL, e.clone()))?;
    Ok(stacker::maybe_grow(RED_ZONE, GROWN_STACK, move || {
        // Most calls on memory:// finish at their first poll: try that
        // without setting up a parked wait, then wait properly if the future
        // is pending (every future re-registers its waker when polled again).
        let mut future = std::pin::pin!(future);
        {
            let _entered = runtime.enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        runtime.block_on(future)
    }))
}

// ---- handles ----------------------------------------------------------------

/// Handle numbers are never reused, so a freed handle can never alias a newer
/// one. One counter serves every handle type, so a handle of one type is not
/// a valid handle of another.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(1);

/// Live handles of one type. A handle is an opaque number that C sees as a
/// pointer; the library never dereferences it, so a freed, forged or
/// mistyped handle is reported as `MSS_INVALID_INPUT`, never undefined
/// behaviour.
pub(crate) struct Registry<T> {
    what: &'static str,
    live: LazyLock<RwLock<HashMap<usize, Arc<T>, foldhash::fast::RandomState>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(what: &'static str) -> Registry<T> {
        Registry {
            what,
            live: LazyLock::new(|| RwLock::new(HashMap::default())),
        }
    }

    /// Register `value`; returns its handle.
    pub(crate) fn insert<H>(&self, value: T) -> *mut H {
        // Step by 16 so handles look like aligned pointers and never hit 0.
        let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed).wrapping_mul(16);
        self.live.write().insert(id, Arc::new(value));
        std::ptr::without_provenance_mut(id)
    }

    /// The live object behind `handle`.
    pub(crate) fn get<H>(&self, handle: *const H) -> FfiResult<Arc<T>> {
        if handle.is_null() {
            return Err(FfiError::invalid(format!("{} is NULL", self.what)));
        }
        self.live
            .read()
            .get(&handle.addr())
            .cloned()
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "{} handle is not open (already freed, or not a {})",
                    self.what, self.what
                ))
            })
    }

    /// Unregister `handle`; `None` if it was not live.
    pub(crate) fn remove<H>(&self, handle: *const H) -> Option<Arc<T>> {
        if handle.is_null() {
            return None;
        }
        self.live.write().remove(&handle.addr())
    }
}
