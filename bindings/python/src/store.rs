//! `NativeStore`: the one native store handle behind both `Store` (asyncio)
//! and `BlockingStore`. Every store call is defined once here and runs
//! through [`crate::call::run`] in the handle's calling mode.

use std::sync::{Arc, Mutex};

use mss_core::{Error, ErrorKind, EventId, Json, NewEvent, NewSession, Store, StoreOptions};
use pyo3::prelude::*;

use crate::call::{core, run, seconds, to_json_value};
use crate::errors;
use crate::json;
use crate::subscription::NativeSubscription;
use crate::types::{PyCleanupStats, PyEvent, PyPage, PySession, PyStateEntry};

/// The native store handle (private; use `mcp_session_store.Store`).
#[pyclass(frozen, module = "mcp_session_store._native")]
pub struct NativeStore {
    store: Store,
    blocking: bool,
}

#[pymethods]
impl NativeStore {
    /// Open a store; durations in seconds.
    #[staticmethod]
    #[pyo3(signature = (url, blocking, ttl=None, max_events_per_session=None, max_payload_bytes=None, max_sessions=None, poll_interval=None))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        url: String,
        blocking: bool,
        ttl: Option<f64>,
        max_events_per_session: Option<u64>,
        max_payload_bytes: Option<usize>,
        max_sessions: Option<u64>,
        poll_interval: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let mut options = StoreOptions::default();
        if let Some(ttl) = seconds(ttl, "ttl")? {
            options = options.with_ttl(ttl);
        }
        if let Some(n) = max_events_per_session {
            options = options.with_max_events_per_session(n);
        }
        if let Some(n) = max_payload_bytes {
            options = options.with_max_payload_bytes(n);
        }
        if max_sessions.is_some() {
            options = options.with_max_sessions(max_sessions);
        }
        if let Some(p) = seconds(poll_interval, "poll_interval")? {
            options = options.with_poll_interval(p);
        }
        run(py, blocking, async move {
            let store = core(Store::open_with(&url, options).await)?;
            Ok(NativeStore { store, blocking })
        })
    }

    /// The same store, in the other calling mode.
    fn with_blocking(&self, blocking: bool) -> NativeStore {
        NativeStore {
            store: self.store.clone(),
            blocking,
        }
    }

    #[getter]
    fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    #[getter]
    fn blocking(&self) -> bool {
        self.blocking
    }

    /// `(ttl_s, max_events_per_session, max_payload_bytes, max_sessions, poll_interval_s)`.
    fn options(&self) -> (f64, u64, usize, Option<u64>, f64) {
        let o = self.store.options();
        (
            o.ttl.as_secs_f64(),
            o.max_events_per_session,
            o.max_payload_bytes,
            o.max_sessions,
            o.poll_interval.as_secs_f64(),
        )
    }

    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move { core(store.close().await) })
    }

    // ---- sessions ------------------------------------------------------

    #[pyo3(signature = (id=None, metadata=None, ttl=None))]
    fn create_session(
        &self,
        py: Python<'_>,
        id: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        ttl: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let mut new = NewSession::new();
        if let Some(id) = id {
            new = new.with_id(id);
        }
        if let Some(m) = metadata.filter(|m| !m.is_none()) {
            new = new.with_metadata(json::to_json_object(m, "metadata")?);
        }
        if let Some(ttl) = seconds(ttl, "ttl")? {
            new = new.with_ttl(ttl);
        }
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.create_session(new).await).map(PySession)
        })
    }

    fn get_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.get_session(&id).await).map(|s| s.map(PySession))
        })
    }

    fn update_session(
        &self,
        py: Python<'_>,
        id: String,
        patch: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let patch = json::to_json_object(patch, "patch")?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.update_session(&id, patch).await).map(PySession)
        })
    }

    fn touch_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.touch_session(&id).await).map(PySession)
        })
    }

    fn delete_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.delete_session(&id).await)
        })
    }

    #[pyo3(signature = (after=None, limit=100))]
    fn list_sessions(
        &self,
        py: Python<'_>,
        after: Option<String>,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.list_sessions(after.as_deref(), limit).await).map(PyPage::from)
        })
    }

    fn count_sessions(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.count_sessions().await)
        })
    }

    // ---- state ---------------------------------------------------------

    fn get_state(&self, py: Python<'_>, id: String, key: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.get_state(&id, &key).await).map(|e| e.map(PyStateEntry))
        })
    }

    fn set_state(
        &self,
        py: Python<'_>,
        id: String,
        key: String,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let value = to_json_value(value)?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.set_state(&id, &key, value).await)
        })
    }

    /// Compare-and-set; `expected=None` writes only if the key is absent.
    #[pyo3(signature = (id, key, value, expected))]
    fn set_state_if_version(
        &self,
        py: Python<'_>,
        id: String,
        key: String,
        value: &Bound<'_, PyAny>,
        expected: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let value = to_json_value(value)?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.set_state_if_version(&id, &key, value, expected).await)
        })
    }

    /// Atomic read-modify-write: `fn(current_or_None) -> new value`, retried
    /// on conflict. An exception raised by `fn` stops the update and is
    /// re-raised as is.
    fn update_state(
        &self,
        py: Python<'_>,
        id: String,
        key: String,
        func: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        if !func.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "update_state needs a callable: fn(current) -> new value",
            ));
        }
        let store = self.store.clone();
        let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let raised_in = raised.clone();
        run(py, self.blocking, async move {
            let result = store
                .update_state(&id, &key, move |current| {
                    Python::attach(|py| {
                        let arg = match &current {
                            Some(v) => json::to_py(py, v)?,
                            None => py.None().into_bound(py),
                        };
                        let out = func.bind(py).call1((arg,))?;
                        json::to_json(&out)
                    })
                    .map_err(|e| {
                        let message = format!("update function raised: {e}");
                        if let Ok(mut slot) = raised_in.lock() {
                            *slot = Some(e);
                        }
                        Error::new(ErrorKind::InvalidInput, message)
                    })
                })
                .await;
            match result {
                Ok(entry) => Ok(PyStateEntry(entry)),
                Err(e) => {
                    let stashed = raised.lock().ok().and_then(|mut s| s.take());
                    Err(stashed.unwrap_or_else(|| errors::to_py(e)))
                }
            }
        })
    }

    fn delete_state(&self, py: Python<'_>, id: String, key: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.delete_state(&id, &key).await)
        })
    }

    fn state_keys(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.state_keys(&id).await)
        })
    }

    fn state_all(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.state_all(&id).await)
                .map(|v| v.into_iter().map(PyStateEntry).collect::<Vec<_>>())
        })
    }

    // ---- events --------------------------------------------------------

    /// Append `data` (a JSON-encodable Python value) on `stream_id`.
    #[pyo3(signature = (id, stream_id, data, event_type=None, retry_ms=None))]
    fn append_event(
        &self,
        py: Python<'_>,
        id: String,
        stream_id: String,
        data: &Bound<'_, PyAny>,
        event_type: Option<String>,
        retry_ms: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let event = NewEvent::new(stream_id, to_json_value(data)?);
        self.append(py, id, event, event_type, retry_ms)
    }

    /// Append already-encoded JSON text (validated, not re-encoded).
    #[pyo3(signature = (id, stream_id, data_json, event_type=None, retry_ms=None))]
    fn append_event_json(
        &self,
        py: Python<'_>,
        id: String,
        stream_id: String,
        data_json: &str,
        event_type: Option<String>,
        retry_ms: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let event = NewEvent::new(stream_id, core(Json::parse(data_json))?);
        self.append(py, id, event, event_type, retry_ms)
    }

    /// Append a priming event (no data) on `stream_id`.
    fn append_priming(&self, py: Python<'_>, id: String, stream_id: String) -> PyResult<Py<PyAny>> {
        self.append(py, id, NewEvent::priming(stream_id), None, None)
    }

    #[pyo3(signature = (id, stream_id, after_seq=0, limit=100))]
    fn events_after(
        &self,
        py: Python<'_>,
        id: String,
        stream_id: String,
        after_seq: u64,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            let cursor = EventId::new(stream_id, after_seq);
            core(store.events_after(&id, &cursor, limit).await).map(PyPage::from)
        })
    }

    #[pyo3(signature = (id, last_event_id, limit=100))]
    fn replay(
        &self,
        py: Python<'_>,
        id: String,
        last_event_id: String,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.replay(&id, &last_event_id, limit).await).map(PyPage::from)
        })
    }

    #[pyo3(signature = (id, stream_id, after_seq=0))]
    fn subscribe(
        &self,
        py: Python<'_>,
        id: String,
        stream_id: String,
        after_seq: u64,
    ) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        let blocking = self.blocking;
        run(py, blocking, async move {
            let sub = core(
                store
                    .subscribe(&id, EventId::new(stream_id, after_seq))
                    .await,
            )?;
            Ok(NativeSubscription::new(sub, blocking))
        })
    }

    fn cleanup_expired(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.cleanup_expired().await).map(PyCleanupStats::from)
        })
    }
}

impl NativeStore {
    fn append(
        &self,
        py: Python<'_>,
        id: String,
        mut event: NewEvent,
        event_type: Option<String>,
        retry_ms: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        if let Some(t) = event_type {
            event = event.with_event_type(t);
        }
        if let Some(r) = retry_ms {
            event = event.with_retry_ms(r);
        }
        let store = self.store.clone();
        run(py, self.blocking, async move {
            core(store.append_event(&id, event).await).map(PyEvent)
        })
    }
}
