//! `NativeStore`: the one native store handle behind both `Store` (asyncio)
//! and `BlockingStore`. Every store call is defined once here and runs
//! through [`crate::call::run`] in the handle's calling mode; open options
//! go through the bridge's `OpenOptions`, page sizes through its limits.

use std::sync::{Arc, Mutex};

use mss_bridge::limits::page_limit;
use mss_bridge::{DurationUnit, OpenOptions};
use mss_core::{Error, ErrorKind, EventId, Json, NewEvent, NewSession, Store};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::call::{CallError, run, seconds, to_json_value};
use crate::errors::core;
use crate::json;
use crate::subscription::NativeSubscription;
use crate::sweeper::NativeSweeper;
use crate::types::{PyCleanupStats, PyEvent, PyPage, PySession, PyStateEntry};

/// The native store handle (private; use `mcp_session_store.Store`).
#[pyclass(frozen, module = "mcp_session_store._native")]
pub struct NativeStore {
    store: Store,
    blocking: bool,
}

#[pymethods]
impl NativeStore {
    /// Open a store. The keyword arguments are the open options (durations
    /// in seconds; `None` keeps the default), parsed by the bridge.
    #[staticmethod]
    #[pyo3(signature = (url, blocking, **options))]
    fn open(
        py: Python<'_>,
        url: String,
        blocking: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let options = match options {
            Some(options) => json::to_json(options.as_any())?,
            None => serde_json::Value::Null,
        };
        let options =
            core(py, OpenOptions::from_value(&options, DurationUnit::Seconds))?.to_store_options();
        run(py, blocking, async move {
            let store = Store::open_with(&url, options).await?;
            Ok::<_, Error>(NativeStore { store, blocking })
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
        run(py, self.blocking, async move { store.close().await })
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
        if let Some(ttl) = seconds(py, ttl, "ttl")? {
            new = new.with_ttl(ttl);
        }
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store.create_session(new).await.map(PySession)
        })
    }

    fn get_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store.get_session(&id).await.map(|s| s.map(PySession))
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
            store.update_session(&id, patch).await.map(PySession)
        })
    }

    fn touch_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store.touch_session(&id).await.map(PySession)
        })
    }

    fn delete_session(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(
            py,
            self.blocking,
            async move { store.delete_session(&id).await },
        )
    }

    /// `limit=None` is the default page size.
    #[pyo3(signature = (after=None, limit=None))]
    fn list_sessions(
        &self,
        py: Python<'_>,
        after: Option<String>,
        limit: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let limit = core(py, page_limit(limit))?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store
                .list_sessions(after.as_deref(), limit)
                .await
                .map(PyPage::from)
        })
    }

    fn count_sessions(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(
            py,
            self.blocking,
            async move { store.count_sessions().await },
        )
    }

    // ---- state ---------------------------------------------------------

    fn get_state(&self, py: Python<'_>, id: String, key: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store
                .get_state(&id, &key)
                .await
                .map(|e| e.map(PyStateEntry))
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
            store.set_state(&id, &key, value).await
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
            store.set_state_if_version(&id, &key, value, expected).await
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
            result.map(PyStateEntry).map_err(|e| {
                match raised.lock().ok().and_then(|mut s| s.take()) {
                    Some(raised) => CallError::Py(raised),
                    None => CallError::Core(e),
                }
            })
        })
    }

    fn delete_state(&self, py: Python<'_>, id: String, key: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store.delete_state(&id, &key).await
        })
    }

    fn state_keys(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(
            py,
            self.blocking,
            async move { store.state_keys(&id).await },
        )
    }

    fn state_all(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store
                .state_all(&id)
                .await
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
        let event = NewEvent::new(stream_id, core(py, Json::parse(data_json))?);
        self.append(py, id, event, event_type, retry_ms)
    }

    /// Append a priming event (no data) on `stream_id`.
    fn append_priming(&self, py: Python<'_>, id: String, stream_id: String) -> PyResult<Py<PyAny>> {
        self.append(py, id, NewEvent::priming(stream_id), None, None)
    }

    #[pyo3(signature = (id, stream_id, after_seq=0, limit=None))]
    fn events_after(
        &self,
        py: Python<'_>,
        id: String,
        stream_id: String,
        after_seq: u64,
        limit: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let limit = core(py, page_limit(limit))?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            let cursor = EventId::new(stream_id, after_seq);
            store
                .events_after(&id, &cursor, limit)
                .await
                .map(PyPage::from)
        })
    }

    #[pyo3(signature = (id, last_event_id, limit=None))]
    fn replay(
        &self,
        py: Python<'_>,
        id: String,
        last_event_id: String,
        limit: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let limit = core(py, page_limit(limit))?;
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store
                .replay(&id, &last_event_id, limit)
                .await
                .map(PyPage::from)
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
            let cursor = EventId::new(stream_id, after_seq);
            let sub = store.subscribe(&id, cursor).await?;
            Ok::<_, Error>(NativeSubscription::new(sub, blocking))
        })
    }

    fn cleanup_expired(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        run(py, self.blocking, async move {
            store.cleanup_expired().await.map(PyCleanupStats::from)
        })
    }

    /// Run `cleanup_expired` every `interval` seconds on the bridge runtime
    /// until the returned sweeper is stopped or dropped.
    fn spawn_sweeper(&self, py: Python<'_>, interval: f64) -> PyResult<NativeSweeper> {
        let interval = seconds(py, Some(interval), "interval")?.unwrap_or_default();
        let runtime = core(py, mss_bridge::runtime::handle())?;
        // Spawning needs the runtime's context; nothing is polled here.
        let _context = runtime.enter();
        core(py, self.store.spawn_sweeper(interval)).map(NativeSweeper::new)
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
            store.append_event(&id, event).await.map(PyEvent)
        })
    }
}
