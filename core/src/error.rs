//! The error taxonomy shared by every backend and every language binding.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, as a stable category.
///
/// Every surface maps this exhaustively: the C status enum, the Python
/// exception classes, the JS `.code` and the Elixir error atoms all derive
/// from [`ErrorKind::code`], which never changes for an existing kind.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The session (or the event a cursor names) does not exist or has expired.
    NotFound,
    /// A session with the requested id already exists.
    AlreadyExists,
    /// A compare-and-set lost: the stored version is not the expected one.
    Conflict,
    /// The input is malformed: an invalid id, key, URL, JSON text or option.
    InvalidInput,
    /// The input is well-formed but over a configured limit (payload size,
    /// session count).
    LimitExceeded,
    /// The cursor points before what trimming kept: events after it are gone,
    /// so a replay would silently skip some.
    CursorExpired,
    /// The backend cannot be reached.
    Unavailable,
    /// The backend did not answer in time (or stayed busy).
    Timeout,
    /// The backend reported an error it should not have (corrupt data,
    /// unexpected SQL error).
    Backend,
    /// A bug in this library (for example a caught panic at an FFI boundary).
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of their stable numbers (C status = index + 1).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Conflict,
        ErrorKind::InvalidInput,
        ErrorKind::LimitExceeded,
        ErrorKind::CursorExpired,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Backend,
        ErrorKind::Internal,
    ];

    /// The stable string code, e.g. `"not_found"`.
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::CursorExpired => "cursor_expired",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Backend => "backend",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind for a stable string code.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether retrying the same call later may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict | ErrorKind::Unavailable | ErrorKind::Timeout
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error from the store: a [`ErrorKind`], a message for humans and,
/// optionally, the underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable string code of the category.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// `NotFound` for a session that does not exist or has expired, with
    /// the message every surface uses.
    pub fn session_not_found(id: &str) -> Self {
        Error::not_found(format!("session '{id}' not found (or expired)"))
    }

    pub(crate) fn session_exists(id: &str) -> Self {
        Error::new(
            ErrorKind::AlreadyExists,
            format!("session '{id}' already exists"),
        )
    }

    pub(crate) fn session_limit(max: u64) -> Self {
        Error::new(
            ErrorKind::LimitExceeded,
            format!("the store holds its maximum of {max} live sessions"),
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.code()), "duplicate code {}", kind.code());
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ErrorKind::from_code("nope"), None);
    }

    #[test]
    fn display_carries_code_and_message() {
        let e = Error::new(ErrorKind::Conflict, "version 3 expected, found 4");
        assert_eq!(e.to_string(), "conflict: version 3 expected, found 4");
        assert_eq!(e.code(), "conflict");
    }
}
