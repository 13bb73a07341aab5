//! The error kinds, from one source: a table built from
//! [`ErrorKind::ALL`] that every binding iterates to build what it shows
//! (Python's exception classes, Node's `errorKinds()`, the C status codes,
//! Elixir's atoms), so a kind added to the core reaches every binding.

use std::ffi::{CStr, CString};
use std::sync::LazyLock;

use mss_core::ErrorKind;

/// The C status of success.
pub const STATUS_OK: i32 = 0;

/// The C status of a kind newer than a binding's own list (never a kind's
/// number: those are 1, 2, … in [`ErrorKind::ALL`] order).
pub const STATUS_OTHER: i32 = 1000;

/// One error kind and every name it goes by.
#[derive(Debug)]
pub struct KindInfo {
    kind: ErrorKind,
    status: i32,
    code_c: CString,
    name: String,
    class_name: String,
}

impl KindInfo {
    fn new(index: usize, kind: ErrorKind) -> KindInfo {
        let code = kind.code();
        let name: String = code
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        KindInfo {
            kind,
            status: i32::try_from(index + 1).unwrap_or(STATUS_OTHER),
            code_c: CString::new(code).unwrap_or_default(),
            class_name: format!("{name}Error"),
            name,
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its stable C status number: its place in [`ErrorKind::ALL`], from 1.
    pub fn status(&self) -> i32 {
        self.status
    }

    /// Its stable code, e.g. `"not_found"` (Node's `.code`, Elixir's atom).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The code as a static C string.
    pub fn code_cstr(&'static self) -> &'static CStr {
        &self.code_c
    }

    /// The code in CamelCase, e.g. `"NotFound"`.
    pub fn name(&'static self) -> &'static str {
        &self.name
    }

    /// The exception / error class name, e.g. `"NotFoundError"` (Python,
    /// Node).
    pub fn class_name(&'static self) -> &'static str {
        &self.class_name
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

static KINDS: LazyLock<Vec<KindInfo>> = LazyLock::new(|| {
    ErrorKind::ALL
        .into_iter()
        .enumerate()
        .map(|(i, kind)| KindInfo::new(i, kind))
        .collect()
});

/// Every kind, in [`ErrorKind::ALL`] order (so in status order).
pub fn kinds() -> &'static [KindInfo] {
    &KINDS
}

/// The entry of `kind`; `None` only for a kind missing from
/// [`ErrorKind::ALL`].
pub fn info(kind: ErrorKind) -> Option<&'static KindInfo> {
    kinds().iter().find(|k| k.kind == kind)
}

/// The C status of `kind` ([`STATUS_OTHER`] for a kind not in the table).
pub fn status_of(kind: ErrorKind) -> i32 {
    info(kind).map_or(STATUS_OTHER, KindInfo::status)
}

/// The kind of a C status number; `None` for [`STATUS_OK`], [`STATUS_OTHER`]
/// and any unknown number.
pub fn kind_of_status(status: i32) -> Option<ErrorKind> {
    kinds()
        .iter()
        .find(|k| k.status == status)
        .map(KindInfo::kind)
}

/// The kind of a stable code (`"not_found"`, …).
pub fn kind_of_code(code: &str) -> Option<ErrorKind> {
    ErrorKind::from_code(code)
}

/// The stable code of a C status number as a static C string: `"ok"` for
/// [`STATUS_OK`], a kind's code, or `"unknown"`.
pub fn status_code(status: i32) -> &'static CStr {
    if status == STATUS_OK {
        return c"ok";
    }
    kinds()
        .iter()
        .find(|k| k.status == status)
        .map_or(c"unknown", KindInfo::code_cstr)
}

/// An `InvalidInput` error with `message`.
pub fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> mss_core::Error {
    mss_core::Error::new(ErrorKind::InvalidInput, message)
}

/// An `Internal` error with `message`.
pub fn internal(message: impl Into<std::borrow::Cow<'static, str>>) -> mss_core::Error {
    mss_core::Error::new(ErrorKind::Internal, message)
}

/// `"code: message"`, the form a binding uses when its errors can carry only
/// a message (the code stays machine-readable at the front).
pub fn coded_message(error: &mss_core::Error) -> String {
    format!("{}: {}", error.code(), error.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_error_kind_all() {
        assert_eq!(kinds().len(), ErrorKind::ALL.len());
        for (i, (info, kind)) in kinds().iter().zip(ErrorKind::ALL).enumerate() {
            assert_eq!(info.kind(), kind);
            assert_eq!(info.status(), i as i32 + 1);
            assert_eq!(info.code(), kind.code());
            assert_eq!(info.code_cstr().to_str().unwrap(), kind.code());
            assert_eq!(status_of(kind), info.status());
            assert_eq!(kind_of_status(info.status()), Some(kind));
            assert_eq!(kind_of_code(kind.code()), Some(kind));
            assert_eq!(status_code(info.status()).to_str().unwrap(), kind.code());
            assert_eq!(info.is_retryable(), kind.is_retryable());
        }
    }

    #[test]
    fn names_and_class_names() {
        let names: Vec<_> = kinds().iter().map(|k| k.class_name()).collect();
        assert_eq!(
            names,
            [
                "NotFoundError",
                "AlreadyExistsError",
                "ConflictError",
                "InvalidInputError",
                "LimitExceededError",
                "CursorExpiredError",
                "UnavailableError",
                "TimeoutError",
                "BackendError",
                "InternalError",
            ]
        );
        assert_eq!(
            info(ErrorKind::CursorExpired).unwrap().name(),
            "CursorExpired"
        );
    }

    #[test]
    fn statuses_outside_the_table() {
        assert_eq!(status_code(STATUS_OK), c"ok");
        for n in [-1, 11, 999, STATUS_OTHER, i32::MAX] {
            assert_eq!(status_code(n), c"unknown");
            assert_eq!(kind_of_status(n), None);
        }
        assert_eq!(kind_of_status(STATUS_OK), None);
        assert_eq!(kind_of_code("nope"), None);
    }

    #[test]
    fn coded_message_puts_the_code_first() {
        let e = mss_core::Error::new(ErrorKind::Conflict, "lost a race");
        assert_eq!(coded_message(&e), "conflict: lost a race");
    }
}
