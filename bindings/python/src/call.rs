//! How a native call runs: as an awaitable on the asyncio side, or to
//! completion with the GIL released on the blocking side. Every store method
//! goes through [`run`].

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mss_core::{Error, Json};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;

use crate::errors::{self, invalid_input};
use crate::json;

/// Run `fut`: as an awaitable, or (blocking) to completion with the GIL
/// released.
///
/// An awaitable call first polls the future once, here: a call that needs no
/// I/O (most calls on `memory://`) completes without a round trip through the
/// runtime's threads and is returned as an already-completed awaitable. A
/// call that is still pending continues on the runtime (futures re-register
/// their waker on every poll, so moving it there is sound).
pub fn run<F, T>(py: Python<'_>, blocking: bool, fut: F) -> PyResult<Py<PyAny>>
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
pub struct Ready {
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

/// A core result as a Python result.
pub fn core<T>(r: Result<T, Error>) -> PyResult<T> {
    r.map_err(errors::to_py)
}

/// Seconds as a `Duration`; negative, NaN or infinite is `InvalidInputError`.
pub fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
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

/// A Python value as stored JSON.
pub fn to_json_value(value: &Bound<'_, PyAny>) -> PyResult<Json> {
    Ok(Json::from(json::to_json(value)?))
}
