//! How a native call runs. A call is first polled once on the caller's
//! thread, but only when that thread has at least 1 MiB of stack left
//! ([`mss_bridge::runtime::poll_once`]): a call that needs no I/O (most calls
//! on `memory://`) ends there, without a hop to another thread. Whatever is
//! left runs on the bridge runtime's worker threads (8 MiB stacks):
//!
//! - blocking (`BlockingStore`): the caller releases the GIL and waits for
//!   the worker ([`mss_bridge::runtime::call_blocking`]);
//! - asyncio (`Store`): the call returns an `asyncio.Future` at once; the
//!   worker resolves it on the event loop (pyo3-async-runtimes, set up on
//!   the bridge runtime by [`init`]). A call that ended in the first poll
//!   returns an already-completed awaitable instead.
//!
//! A call's future returns a [`CallError`] on failure, turned into the
//! Python exception only where the GIL is held anyway (a worker never waits
//! for the GIL to build an exception). A panic in the call is an
//! `InternalError`.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mss_core::{Error, ErrorKind, Json};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;

use crate::errors;
use crate::json;

/// Make pyo3-async-runtimes resolve awaitables from the bridge runtime.
/// Called once, when the module loads.
pub fn init(py: Python<'_>) -> PyResult<()> {
    let runtime = errors::core(py, mss_bridge::runtime::runtime())?;
    // Err only if it already has a runtime, which can only be this one.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime);
    Ok(())
}

/// Why a call failed: a store error, or a Python exception already raised
/// (by a callback, or by a conversion).
pub enum CallError {
    Core(Error),
    Py(PyErr),
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        CallError::Core(e)
    }
}

impl From<PyErr> for CallError {
    fn from(e: PyErr) -> Self {
        CallError::Py(e)
    }
}

impl CallError {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            CallError::Core(e) => errors::to_py(py, e),
            CallError::Py(e) => e,
        }
    }
}

/// Run `fut` on a worker: as an awaitable, or (blocking) to completion with
/// the GIL released.
pub fn run<F, T, E>(py: Python<'_>, blocking: bool, fut: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
    E: Into<CallError> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    // The first poll holds the GIL: it never blocks (a pending call returns
    // at once), and the GIL keeps the Python objects the call reads alive.
    let first = match mss_bridge::runtime::poll_once(&mut fut) {
        Ok(first) => first,
        Err(panicked) => return Err(errors::to_py(py, panicked)),
    };
    if let Some(result) = first {
        let value = Outcome(result.map_err(Into::into)).into_py_any(py)?;
        if blocking {
            return Ok(value);
        }
        return Ready { value: Some(value) }.into_py_any(py);
    }
    if blocking {
        let out = py.detach(|| mss_bridge::runtime::call_blocking(fut));
        return Outcome(
            out.map_err(CallError::from)
                .and_then(|r| r.map_err(Into::into)),
        )
        .into_py_any(py);
    }
    let fut = Guarded(fut);
    Ok(pyo3_async_runtimes::tokio::future_into_py(py, fut)?.unbind())
}

/// An awaitable whose result is already known: what an asyncio call that
/// finished in its first poll returns.
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

/// The result of a call, converted to Python (value or exception) with the
/// GIL that setting the asyncio future's result holds.
struct Outcome<T>(Result<T, CallError>);

impl<'py, T: IntoPyObject<'py>> IntoPyObject<'py> for Outcome<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Ok(value) => value.into_bound_py_any(py),
            Err(e) => Err(e.into_py(py)),
        }
    }
}

/// A call's future as pyo3-async-runtimes takes it: the outcome is always
/// `Ok` (converted later, see [`Outcome`]), and a panic is an `Internal`
/// error with the message `call_blocking` gives.
struct Guarded<F>(Pin<Box<F>>);

impl<F, T, E> Future for Guarded<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<CallError>,
{
    type Output = PyResult<Outcome<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        let polled = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        Poll::Ready(Ok(Outcome(match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result.map_err(Into::into),
            Err(payload) => Err(CallError::Core(Error::new(
                ErrorKind::Internal,
                format!(
                    "the store call panicked: {}",
                    mss_bridge::runtime::panic_message(&*payload)
                ),
            ))),
        })))
    }
}

/// Seconds as a `Duration`; negative, NaN or infinite is `InvalidInputError`.
pub fn seconds(py: Python<'_>, value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                errors::invalid_input(
                    py,
                    format!("{what} must be a finite, non-negative number of seconds, not {s}"),
                )
            })
        })
        .transpose()
}

/// A Python value as stored JSON.
pub fn to_json_value(value: &Bound<'_, PyAny>) -> PyResult<Json> {
    Ok(Json::from(json::to_json(value)?))
}
