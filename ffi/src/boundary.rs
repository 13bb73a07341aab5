//! The panic boundary and the blocking call behind every entry point: the
//! error on its way to C, [`boundary`] (no panic unwinds into C) and
//! [`block_on`] (every store call runs on the bridge's runtime).

use std::cell::Cell;
use std::future::Future;

use mss_bridge::runtime::{call_blocking_fast, catch_panic};
use mss_core::Error;

use crate::status::{mss_error, mss_status, status_of};

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

/// Run `f` behind the panic boundary. On failure the status is returned and,
/// if `err_out` is not NULL, an error object is written to it.
pub(crate) fn boundary<F>(err_out: *mut *mut mss_error, f: F) -> mss_status
where
    F: FnOnce() -> FfiResult<()>,
{
    let result = catch_panic(|| Ok(f())).unwrap_or_else(|panic| Err(FfiError::from(panic)));
    match result {
        Ok(()) => mss_status::MSS_OK,
        Err(e) => {
            let status = e.status;
            if !err_out.is_null() {
                // Building the error object must not unwind into C either.
                if let Ok(boxed) = catch_panic(|| Ok(Box::new(mss_error::new(e)))) {
                    // SAFETY: the caller passes NULL or a valid `mss_error **`
                    // (the header's contract), and it is not NULL here.
                    unsafe { *err_out = Box::into_raw(boxed) };
                }
            }
            status
        }
    }
}

thread_local! {
    /// Set while an `mss_state_update` callback runs on this thread.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with this thread marked as inside an update callback, where
/// [`block_on`] refuses to run (the header: "it must not call `mss_*` store
/// functions itself").
pub(crate) fn in_callback<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_CALLBACK.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(IN_CALLBACK.with(|c| c.replace(true)));
    f()
}

/// Run a store call to completion and block the calling thread until it is
/// done: polled once on the caller's thread when it has at least 1 MiB of
/// stack left (a call that needs no I/O ends there), else and for the rest
/// on the bridge's runtime (a worker thread with an 8 MiB stack).
/// Refused with `MSS_INTERNAL` inside a tokio runtime and inside an update
/// callback.
pub(crate) fn block_on<F>(future: F) -> FfiResult<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    check_blocking()?;
    Ok(call_blocking_fast(future)?)
}

/// `MSS_INTERNAL` where a call must not block: inside a tokio runtime and
/// inside an update callback.
pub(crate) fn check_blocking() -> FfiResult<()> {
    if tokio::runtime::Handle::try_current().is_ok() || IN_CALLBACK.with(Cell::get) {
        return Err(FfiError::new(
            mss_status::MSS_INTERNAL,
            "mcp_session_store functions block: call them from a plain thread, not from inside a tokio runtime or an update callback",
        ));
    }
    Ok(())
}
