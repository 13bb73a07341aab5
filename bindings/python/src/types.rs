//! The value types the store returns, as frozen Python classes: `Session`,
//! `StateEntry`, `Event`, `Page` and `CleanupStats`. Each wraps the core value
//! and converts JSON to Python objects only when a getter asks for it.

use mss_core::{CleanupStats, Event, Page, Session, StateEntry};
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;

use crate::json;

/// A client session.
#[pyclass(frozen, name = "Session", module = "mcp_session_store")]
pub struct PySession(pub Session);

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
pub struct PyStateEntry(pub StateEntry);

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
pub struct PyEvent(pub Event);

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
pub struct PyPage {
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
pub struct PyCleanupStats {
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
