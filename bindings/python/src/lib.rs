//! `mcp_session_store._native`: the private native module under the Python
//! package `mcp_session_store`. The public API (`Store`, `BlockingStore`, the
//! `mcp` SDK adapter) is the hand-written Python around it.
//!
//! Every store call exists once, on [`store::NativeStore`]: a handle opened
//! with `blocking=False` returns awaitables, one opened with `blocking=True`
//! runs the call to completion with the GIL released; either way the call
//! runs on the bridge runtime's workers ([`call`]).
//!
//! - [`store`]: the store handle and its calls;
//! - [`types`]: the value classes it returns;
//! - [`subscription`]: live subscriptions;
//! - [`sweeper`]: the background expiry sweeper;
//! - [`errors`]: one exception class per error kind;
//! - [`json`]: Python objects to and from JSON;
//! - [`logging`]: the core's `tracing` events, forwarded to `logging`.

mod call;
mod errors;
mod json;
mod logging;
mod store;
mod subscription;
mod sweeper;
mod types;

use mss_core::EventId;
use pyo3::prelude::*;

use crate::errors::core;

/// The wire id of event `seq` of `stream_id` in `session_id`.
#[pyfunction]
fn format_event_id(
    py: Python<'_>,
    session_id: &str,
    stream_id: &str,
    seq: u64,
) -> PyResult<String> {
    core(py, mss_core::validate::session_id(session_id))?;
    core(py, mss_core::validate::stream_id(stream_id))?;
    Ok(EventId::new(stream_id, seq).format(session_id))
}

/// `(stream_id, seq)` of a wire id that `session_id` handed out; anything
/// else (malformed, foreign, altered) is `InvalidInputError`.
#[pyfunction]
fn parse_event_id(py: Python<'_>, wire: &str, session_id: &str) -> PyResult<(String, u64)> {
    let id = core(py, EventId::parse(wire, session_id))?;
    Ok((id.stream_id, id.seq))
}

/// Encode a Python value to JSON text the way the store does.
#[pyfunction]
fn encode_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(json::to_json(value)?.to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    call::init(py)?;
    errors::register(m)?;
    m.add_class::<store::NativeStore>()?;
    m.add_class::<subscription::NativeSubscription>()?;
    m.add_class::<sweeper::NativeSweeper>()?;
    m.add_class::<sweeper::PySweeperStats>()?;
    m.add_class::<types::PySession>()?;
    m.add_class::<types::PyStateEntry>()?;
    m.add_class::<types::PyEvent>()?;
    m.add_class::<types::PyPage>()?;
    m.add_class::<types::PyCleanupStats>()?;
    m.add_function(wrap_pyfunction!(format_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(parse_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(encode_json, m)?)?;
    m.add_function(wrap_pyfunction!(logging::emit_log, m)?)?;
    m.add("CORE_VERSION", mss_core::VERSION)?;
    m.add("DEFAULT_PAGE_LIMIT", mss_bridge::limits::DEFAULT_PAGE_LIMIT)?;
    m.add("MAX_JSON_DEPTH", mss_bridge::limits::MAX_JSON_DEPTH)?;
    m.add("LOG_FORWARDING", logging::install())?;
    Ok(())
}
