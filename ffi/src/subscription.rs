//! Subscriptions: the `mss_subscription` handle, following a stream of a
//! session, waiting for its next event, and freeing it.

use std::ffi::c_char;
use std::time::Duration;

use mss_core::{EventId, Subscription};
use tokio::sync::Mutex;

use crate::args::{cstr, out, write};
use crate::boundary::{FfiError, block_on, boundary};
use crate::buffers::{mss_buf, to_buf};
use crate::handles::Registry;
use crate::json_io::event_json;
use crate::status::{mss_error, mss_status};
use crate::store::{mss_store, store as get_store};

/// A live subscription to one stream of a session. Opaque like
/// `mss_store`; free it with `mss_subscription_free`.
pub struct mss_subscription {
    _opaque: [u8; 0],
}

/// Every live subscription; one call at a time waits on each.
static SUBSCRIPTIONS: Registry<Mutex<Subscription>> = Registry::new("subscription");

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
        let store = get_store(store)?;
        // SAFETY: `session_id` and `stream_id` are NULL or NUL-terminated
        // strings (the header's contract).
        let (id, stream) = unsafe {
            (
                cstr(session_id, "session_id")?.to_owned(),
                cstr(stream_id, "stream_id")?,
            )
        };
        let subscription_out = out(subscription_out, "subscription_out")?;
        let cursor = EventId::new(stream, after_seq);
        let sub = block_on(async move { store.subscribe(&id, cursor).await })??;
        let handle = SUBSCRIPTIONS.insert(Mutex::new(sub));
        // SAFETY: `subscription_out` was checked by `out` and points to
        // writable memory for a handle (the header's contract).
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
        let wait = Duration::from_millis(u64::from(timeout_ms));
        let next = block_on(async move {
            let mut sub = sub.lock().await;
            tokio::time::timeout(wait, sub.next()).await
        })?;
        match next {
            // SAFETY: `received_out` was checked by `out` and points to a
            // writable `bool` (the header's contract).
            Err(_elapsed) => unsafe { write(received_out, false) },
            Ok(None) => {
                return Err(FfiError::new(
                    mss_status::MSS_NOT_FOUND,
                    "the subscription has ended",
                ));
            }
            Ok(Some(event)) => {
                let json = event_json(&event?)?;
                // SAFETY: `event_out` and `received_out` were checked by
                // `out` and point to a writable `mss_buf` and `bool` (the
                // header's contract).
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
