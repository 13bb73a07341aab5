//! `mcp_session_store._native`: the private native module under the Python
//! package `mcp_session_store`. The public API (`Store`, `BlockingStore`, the
//! `mcp` SDK adapter) is the hand-written Python around it.
//!
//! Every store call exists once here; a `NativeStore` opened with
//! `blocking=False` returns awaitables (run on the shared tokio runtime), one
//! opened with `blocking=True` runs the call to completion with the GIL
//! released.

mod errors;
mod json;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mss_core::{
    CleanupStats, Error, ErrorKind, Event, EventId, Json, NewEvent, NewSession, Page, Session,
    StateEntry, Store, StoreOptions, Subscription,
};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;

use crate::errors::invalid_input;

type CoreResult<T> = Result<T, Error>;

/// Run `fut`: as an awaitable, or (blocking) to completion with the GIL
/// released.
///
/// An awaitable call first polls the future once, here: a call that needs no
/// I/O (most calls on `memory://`) completes without a round trip through the
/// runtime's threads and is returned as an already-completed awaitable. A
/// call that is still pending continues on the runtime (futures re-register
/// their waker on every poll, so moving it there is sound).
fn run<F, T>(py: Python<'_>, blocking: bool, fut: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    if blocking {
        let out = py.detach(|| runtime.block_on(fut))?;
        return out.into_py_any(py);
    }
    let mut fut = Box::pin(fut);
    let first = {
        let _context = runtime.enter();
        let mut cx = Context::from_waker(Waker::noop());
        fut.as_mut().poll(&mut cx)
    };
    match first {
        Poll::Ready(result) => {
            let value = result?.into_py_any(py)?;
            Ok(Ready { value: Some(value) }.into_py_any(py)?)
        }
        Poll::Pending => Ok(pyo3_async_runtimes::tokio::future_into_py(py, fut)?.unbind()),
    }
}

/// An awaitable whose result is already known.
#[pyclass(module = "mcp_session_store._native")]
struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = self.value.take().unwrap_or_else(|| py.None());
        Err(pyo3::exceptions::PyStopIteration::new_err((value,)))
    }
}

fn core<T>(r: CoreResult<T>) -> PyResult<T> {
    r.map_err(errors::to_py)
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                invalid_input(format!(
                    "{what} must be a finite, non-negative number of seconds, not {s}"
                ))
            })
        })
        .transpose()
}

fn to_json_value(value: &Bound<'_, PyAny>) -> PyResult<Json> {
    Ok(Json::from(json::to_json(value)?))
}

// ---- value types -------------------------------------------------------

/// A client session.
#[pyclass(frozen, name = "Session", module = "mcp_session_store")]
struct PySession(Session);

#[pymethods]
impl PySession {
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    #[getter]
    fn created_at(&self) -> i64 {
        self.0.created_at
    }
    #[getter]
    fn last_activity(&self) -> i64 {
        self.0.last_activity
    }
    #[getter]
    fn expires_at(&self) -> i64 {
        self.0.expires_at
    }
    #[getter]
    fn ttl_ms(&self) -> u64 {
        self.0.ttl_ms
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::map_to_py(py, &self.0.metadata)
    }
    #[getter]
    fn version(&self) -> u64 {
        self.0.version
    }
    #[getter]
    fn last_seq(&self) -> u64 {
        self.0.last_seq
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PySession>()
            .map(|o| o.get().0 == self.0)
            .unwrap_or(false)
    }
    fn __repr__(&self) -> String {
        format!(
            "Session(id={:?}, version={}, last_seq={}, expires_at={}, metadata={})",
            self.0.id,
            self.0.version,
            self.0.last_seq,
            self.0.expires_at,
            Value::Object(self.0.metadata.clone())
        )
    }
}

/// One state key of a session, with its version.
#[pyclass(frozen, name = "StateEntry", module = "mcp_session_store")]
struct PyStateEntry(StateEntry);

#[pymethods]
impl PyStateEntry {
    #[getter]
    fn key(&self) -> &str {
        &self.0.key
    }
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_py(py, &self.0.value.to_value())
    }
    #[getter]
    fn version(&self) -> u64 {
        self.0.version
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyStateEntry>()
            .map(|o| o.get().0 == self.0)
            .unwrap_or(false)
    }
    fn __repr__(&self) -> String {
        format!(
            "StateEntry(key={:?}, version={}, value={})",
            self.0.key,
            self.0.version,
            truncate(self.0.value.as_str())
        )
    }
}

/// A stored event.
#[pyclass(frozen, name = "Event", module = "mcp_session_store")]
struct PyEvent(Event);

#[pymethods]
impl PyEvent {
    #[getter]
    fn session_id(&self) -> &str {
        &self.0.session_id
    }
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    #[getter]
    fn stream_id(&self) -> &str {
        &self.0.stream_id
    }
    /// The payload as Python objects (`None` for a priming event).
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0.data {
            Some(d) => json::to_py(py, &d.to_value()),
            None => Ok(py.None().into_bound(py)),
        }
    }
    /// The payload as JSON text (`None` for a priming event).
    #[getter]
    fn data_json(&self) -> Option<&str> {
        self.0.data.as_ref().map(|d| d.as_str())
    }
    #[getter]
    fn event_type(&self) -> Option<&str> {
        self.0.event_type.as_deref()
    }
    #[getter]
    fn retry_ms(&self) -> Option<u32> {
        self.0.retry_ms
    }
    #[getter]
    fn created_at(&self) -> i64 {
        self.0.created_at
    }
    /// The id to send on the SSE `id:` line.
    #[getter]
    fn wire_id(&self) -> String {
        self.0.wire_id()
    }
    #[getter]
    fn is_priming(&self) -> bool {
        self.0.is_priming()
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyEvent>()
            .map(|o| o.get().0 == self.0)
            .unwrap_or(false)
    }
    fn __repr__(&self) -> String {
        let data = match &self.0.data {
            Some(d) => truncate(d.as_str()),
            None => "None (priming)".to_string(),
        };
        format!(
            "Event(seq={}, stream_id={:?}, data={})",
            self.0.seq, self.0.stream_id, data
        )
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_string();
    }
    let mut end = 77;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

enum Items {
    Sessions(Vec<Session>),
    Events(Vec<Event>),
}

/// One page of a paginated result: `items`, and `next` to continue from.
#[pyclass(frozen, name = "Page", module = "mcp_session_store")]
struct PyPage {
    items: Items,
    next: Option<String>,
}

#[pymethods]
impl PyPage {
    #[getter]
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match &self.items {
            Items::Sessions(v) => PyList::new(py, v.iter().map(|s| PySession(s.clone()))),
            Items::Events(v) => PyList::new(py, v.iter().map(|e| PyEvent(e.clone()))),
        }
    }
    #[getter]
    fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }
    fn __len__(&self) -> usize {
        match &self.items {
            Items::Sessions(v) => v.len(),
            Items::Events(v) => v.len(),
        }
    }
    fn __repr__(&self) -> String {
        let (kind, n) = match &self.items {
            Items::Sessions(v) => ("sessions", v.len()),
            Items::Events(v) => ("events", v.len()),
        };
        format!("Page({n} {kind}, next={:?})", self.next)
    }
}

impl From<Page<Session>> for PyPage {
    fn from(p: Page<Session>) -> Self {
        PyPage {
            items: Items::Sessions(p.items),
            next: p.next,
        }
    }
}

impl From<Page<Event>> for PyPage {
    fn from(p: Page<Event>) -> Self {
        PyPage {
            items: Items::Events(p.items),
            next: p.next,
        }
    }
}

/// What `cleanup_expired` removed.
#[pyclass(frozen, get_all, name = "CleanupStats", module = "mcp_session_store")]
struct PyCleanupStats {
    sessions: u64,
    state_entries: u64,
    events: u64,
}

#[pymethods]
impl PyCleanupStats {
    fn __repr__(&self) -> String {
        format!(
            "CleanupStats(sessions={}, state_entries={}, events={})",
            self.sessions, self.state_entries, self.events
        )
    }
}

impl From<CleanupStats> for PyCleanupStats {
    fn from(s: CleanupStats) -> Self {
        PyCleanupStats {
            sessions: s.sessions,
            state_entries: s.state_entries,
            events: s.events,
        }
    }
}

// ---- the store ---------------------------------------------------------

/// The native store handle (private; use `mcp_session_store.Store`).
#[pyclass(frozen, module = "mcp_session_store._native")]
struct NativeStore {
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
            Ok(NativeSubscription {
                inner: Arc::new(tokio::sync::Mutex::new(Some(sub))),
                blocking,
            })
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

/// A live subscription (private; iterate `Store.subscribe(...)`).
#[pyclass(frozen, module = "mcp_session_store._native")]
struct NativeSubscription {
    inner: Arc<tokio::sync::Mutex<Option<Subscription>>>,
    blocking: bool,
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
                Some(Err(e)) => Err(errors::to_py(e)),
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
            let inner = self.inner.clone();
            pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
                *inner.lock().await = None;
            });
        }
    }
}

// ---- event ids ---------------------------------------------------------

/// The wire id of event `seq` of `stream_id` in `session_id`.
#[pyfunction]
fn format_event_id(session_id: &str, stream_id: &str, seq: u64) -> PyResult<String> {
    core(mss_core::validate::session_id(session_id))?;
    core(mss_core::validate::stream_id(stream_id))?;
    Ok(EventId::new(stream_id, seq).format(session_id))
}

/// `(stream_id, seq)` of a wire id that `session_id` handed out; anything
/// else (malformed, foreign, altered) is `InvalidInputError`.
#[pyfunction]
fn parse_event_id(wire: &str, session_id: &str) -> PyResult<(String, u64)> {
    let id = core(EventId::parse(wire, session_id))?;
    Ok((id.stream_id, id.seq))
}

/// Encode a Python value to JSON text the way the store does.
#[pyfunction]
fn encode_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(json::to_json(value)?.to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<NativeStore>()?;
    m.add_class::<NativeSubscription>()?;
    m.add_class::<Ready>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyStateEntry>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyPage>()?;
    m.add_class::<PyCleanupStats>()?;
    m.add_function(wrap_pyfunction!(format_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(parse_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(encode_json, m)?)?;
    m.add("CORE_VERSION", mss_core::VERSION)?;
    Ok(())
}
