//! `NativeSubscription`: a live subscription to one stream of a session,
//! iterated by `Subscription` (asyncio) and `BlockingSubscription`.

use std::sync::Arc;

use mss_core::{Error, Subscription};
use pyo3::prelude::*;

use crate::call::run;
use crate::types::PyEvent;

/// A live subscription (private; iterate `Store.subscribe(...)`).
#[pyclass(frozen, module = "mcp_session_store._native")]
pub struct NativeSubscription {
    inner: Arc<tokio::sync::Mutex<Option<Subscription>>>,
    blocking: bool,
}

impl NativeSubscription {
    pub fn new(sub: Subscription, blocking: bool) -> Self {
        NativeSubscription {
            inner: Arc::new(tokio::sync::Mutex::new(Some(sub))),
            blocking,
        }
    }
}

#[pymethods]
impl NativeSubscription {
    /// The next event, or `None` once closed.
    fn next(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = self.inner.clone();
        run(py, self.blocking, async move {
            let mut guard = inner.lock().await;
            let Some(sub) = guard.as_mut() else {
                return Ok(None);
            };
            match sub.next().await {
                Some(Ok(e)) => Ok(Some(PyEvent(e))),
                Some(Err(e)) => Err::<_, Error>(e),
                None => {
                    *guard = None;
                    Ok(None)
                }
            }
        })
    }

    /// Stop following: later `next` calls return `None`.
    fn close(&self) {
        if let Ok(mut guard) = self.inner.try_lock() {
            *guard = None;
        } else {
            // A `next` holds the lock: close once it returns.
            let inner = self.inner.clone();
            let _ = mss_bridge::runtime::spawn(async move {
                *inner.lock().await = None;
            });
        }
    }
}
