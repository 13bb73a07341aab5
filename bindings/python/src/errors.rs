//! One Python exception class per core `ErrorKind`, under `SessionStoreError`.

use mss_core::{Error, ErrorKind};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{PyTypeInfo, create_exception};

create_exception!(
    mcp_session_store,
    SessionStoreError,
    PyException,
    "Base class of every error the store raises; `.code` is the stable string code."
);
create_exception!(
    mcp_session_store,
    NotFoundError,
    SessionStoreError,
    "The session (or the event a cursor names) does not exist or has expired."
);
create_exception!(
    mcp_session_store,
    AlreadyExistsError,
    SessionStoreError,
    "A session with the requested id already exists."
);
create_exception!(
    mcp_session_store,
    ConflictError,
    SessionStoreError,
    "A compare-and-set lost: the stored version is not the expected one."
);
create_exception!(
    mcp_session_store,
    InvalidInputError,
    SessionStoreError,
    "The input is malformed: an invalid id, key, URL, JSON value or option."
);
create_exception!(
    mcp_session_store,
    LimitExceededError,
    SessionStoreError,
    "The input is over a configured limit (payload size, session count)."
);
create_exception!(
    mcp_session_store,
    CursorExpiredError,
    SessionStoreError,
    "The cursor points before what trimming kept."
);
create_exception!(
    mcp_session_store,
    UnavailableError,
    SessionStoreError,
    "The backend cannot be reached."
);
create_exception!(
    mcp_session_store,
    TimeoutError,
    SessionStoreError,
    "The backend did not answer in time."
);
create_exception!(
    mcp_session_store,
    BackendError,
    SessionStoreError,
    "The backend reported an unexpected error."
);
create_exception!(
    mcp_session_store,
    InternalError,
    SessionStoreError,
    "A bug in this library."
);

/// A core error as the Python exception of its kind.
pub fn to_py(err: Error) -> PyErr {
    let msg = err.message().to_string();
    match err.kind() {
        ErrorKind::NotFound => NotFoundError::new_err(msg),
        ErrorKind::AlreadyExists => AlreadyExistsError::new_err(msg),
        ErrorKind::Conflict => ConflictError::new_err(msg),
        ErrorKind::InvalidInput => InvalidInputError::new_err(msg),
        ErrorKind::LimitExceeded => LimitExceededError::new_err(msg),
        ErrorKind::CursorExpired => CursorExpiredError::new_err(msg),
        ErrorKind::Unavailable => UnavailableError::new_err(msg),
        ErrorKind::Timeout => TimeoutError::new_err(msg),
        ErrorKind::Backend => BackendError::new_err(msg),
        _ => InternalError::new_err(msg),
    }
}

/// `InvalidInputError(message)`.
pub fn invalid_input(msg: impl Into<String>) -> PyErr {
    InvalidInputError::new_err(msg.into())
}

/// Add the classes to the module, each with its `code` class attribute.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = SessionStoreError::type_object(py);
    base.setattr("code", py.None())?;
    m.add("SessionStoreError", base)?;
    let classes = [
        (ErrorKind::NotFound, NotFoundError::type_object(py)),
        (
            ErrorKind::AlreadyExists,
            AlreadyExistsError::type_object(py),
        ),
        (ErrorKind::Conflict, ConflictError::type_object(py)),
        (ErrorKind::InvalidInput, InvalidInputError::type_object(py)),
        (
            ErrorKind::LimitExceeded,
            LimitExceededError::type_object(py),
        ),
        (
            ErrorKind::CursorExpired,
            CursorExpiredError::type_object(py),
        ),
        (ErrorKind::Unavailable, UnavailableError::type_object(py)),
        (ErrorKind::Timeout, TimeoutError::type_object(py)),
        (ErrorKind::Backend, BackendError::type_object(py)),
        (ErrorKind::Internal, InternalError::type_object(py)),
    ];
    for (kind, class) in classes {
        class.setattr("code", kind.code())?;
        m.add(class.name()?, class)?;
    }
    Ok(())
}
