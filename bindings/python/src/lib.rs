//! `mcp_session_store._native`: the private native module under the Python
//! package `mcp_session_store`. The public API (`Store`, `BlockingStore`, the
//! `mcp` SDK adapter) is the hand-written Python around it.
//!
//! Every store call exists once, on [`store::NativeStore`]: a handle opened
//! with `blocking=False` returns awaitables, one opened with `blocking=True`
//! runs the call to completion with the GIL released ([`call`]).
//!
//! - [`store`]: the store handle and its calls;
//! - [`types`]: the value classes it returns;
//! - [`subscription`]: live subscriptions;
//! - [`errors`]: one exception class per error kind;
//! - [`json`]: Python objects to and from JSON.

mod call;
mod errors;
mod json;
mod store;
mod subscription;
mod types;

use mss_core::EventId;
use pyo3::prelude::*;

use crate::call::core;

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
    m.add_class::<store::NativeStore>()?;
    m.add_class::<subscription::NativeSubscription>()?;
    m.add_class::<call::Ready>()?;
    m.add_class::<types::PySession>()?;
    m.add_class::<types::PyStateEntry>()?;
    m.add_class::<types::PyEvent>()?;
    m.add_class::<types::PyPage>()?;
    m.add_class::<types::PyCleanupStats>()?;
    m.add_function(wrap_pyfunction!(format_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(parse_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(encode_json, m)?)?;
    m.add("CORE_VERSION", mss_core::VERSION)?;
    Ok(())
}
