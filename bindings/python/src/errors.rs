//! One Python exception class per core `ErrorKind`, under `SessionStoreError`.
//!
//! The classes are built when the module loads, one per entry of the
//! bridge's error-kind table (itself built from `ErrorKind::ALL`):
//! `NotFound` becomes `NotFoundError` with `code = "not_found"`.
//! [`class_for`] is the only way from a kind to its class, so a kind added
//! to the core gets its class without a change here; `ERROR_CLASSES` maps
//! each code to its class. `TimeoutError` also subclasses the builtin
//! `TimeoutError`, so `except TimeoutError` catches it whichever of the two
//! names is in scope.

use mss_bridge::errors::kinds;
use mss_core::{Error, ErrorKind};
use pyo3::exceptions::{PyException, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{PyTypeInfo, create_exception};

create_exception!(
    mcp_session_store,
    SessionStoreError,
    PyException,
    "Base class of every error the store raises; `.code` is the stable string code."
);

/// The classes, in the order of the kind table.
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// The docstring of a kind's class.
fn doc(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => {
            "The session (or the event a cursor names) does not exist or has expired."
        }
        ErrorKind::AlreadyExists => "A session with the requested id already exists.",
        ErrorKind::Conflict => {
            "A compare-and-set lost: the stored version is not the expected one."
        }
        ErrorKind::InvalidInput => {
            "The input is malformed: an invalid id, key, URL, JSON value or option."
        }
        ErrorKind::LimitExceeded => {
            "The input is over a configured limit (payload size, session count)."
        }
        ErrorKind::CursorExpired => "The cursor points before what trimming kept.",
        ErrorKind::Unavailable => "The backend cannot be reached.",
        ErrorKind::Timeout => "The backend did not answer in time.",
        ErrorKind::Backend => "The backend reported an unexpected error.",
        ErrorKind::Internal => "A bug in this library.",
        _ => "An error of the store; `.code` says which.",
    }
}

/// One class per kind of the table, in its order.
fn build(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let base = SessionStoreError::type_object(py);
    let make_type = py.get_type::<PyType>();
    kinds()
        .iter()
        .map(|info| {
            let bases = if info.kind() == ErrorKind::Timeout {
                PyTuple::new(py, [base.clone(), PyTimeoutError::type_object(py)])?
            } else {
                PyTuple::new(py, [base.clone()])?
            };
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "mcp_session_store")?;
            namespace.set_item("__doc__", doc(info.kind()))?;
            namespace.set_item("code", info.code())?;
            let class = make_type.call1((info.class_name(), bases, namespace))?;
            Ok(class.cast_into::<PyType>()?.unbind())
        })
        .collect()
}

/// The exception class of `kind` (that of `Internal` for a kind missing
/// from the table, which its construction from `ErrorKind::ALL` rules out).
pub fn class_for(py: Python<'_>, kind: ErrorKind) -> PyResult<Bound<'_, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || build(py))?;
    let position = |kind: ErrorKind| kinds().iter().position(|k| k.kind() == kind);
    let index = position(kind)
        .or_else(|| position(ErrorKind::Internal))
        .unwrap_or(0);
    Ok(classes[index].bind(py).clone())
}

/// The exception of `kind` with `message`.
pub fn new_err(py: Python<'_>, kind: ErrorKind, message: String) -> PyErr {
    match class_for(py, kind) {
        Ok(class) => PyErr::from_type(class, message),
        Err(e) => e,
    }
}

/// A core error as the Python exception of its kind.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    new_err(py, err.kind(), err.message().to_string())
}

/// A core result as a Python result.
pub fn core<T>(py: Python<'_>, result: Result<T, Error>) -> PyResult<T> {
    result.map_err(|e| to_py(py, e))
}

/// `InvalidInputError(message)`.
pub fn invalid_input(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, ErrorKind::InvalidInput, msg.into())
}

/// Add `SessionStoreError`, the class of each kind and `ERROR_CLASSES` to
/// the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = SessionStoreError::type_object(py);
    base.setattr("code", py.None())?;
    m.add("SessionStoreError", base)?;
    let table = PyDict::new(py);
    for info in kinds() {
        let class = class_for(py, info.kind())?;
        m.add(info.class_name(), &class)?;
        table.set_item(info.code(), class)?;
    }
    m.add("ERROR_CLASSES", table)?;
    Ok(())
}
