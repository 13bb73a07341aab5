//! Statuses and errors: the `mss_status` enum (its numbers from the
//! bridge's error-kind table), the `mss_error` object, the version
//! functions and the status and error accessors.

use std::ffi::{CStr, CString, c_char};

use mss_bridge::errors::{STATUS_OTHER, kind_of_status};
use mss_bridge::runtime::catch_panic;
use mss_core::ErrorKind;

use crate::boundary::FfiError;
use crate::buffers::{message_cstring, static_cstr};

/// The status every function returns. The numbers are stable and never
/// reused: 0 is success, 1–10 are the core's error kinds in their
/// documented order, and new kinds get new numbers.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mss_status {
    /// Success.
    MSS_OK = 0,
    /// The session (or the key, or the event a cursor names) does not exist
    /// or has expired.
    MSS_NOT_FOUND = 1,
    /// A session with the requested id already exists.
    MSS_ALREADY_EXISTS = 2,
    /// A compare-and-set lost: the stored version is not the expected one.
    MSS_CONFLICT = 3,
    /// Malformed input: a NULL argument, invalid UTF-8, invalid JSON, JSON of
    /// the wrong shape, an invalid id, key or URL, or a handle that is not
    /// open.
    MSS_INVALID_INPUT = 4,
    /// Well-formed input over a configured limit (payload size, session
    /// count).
    MSS_LIMIT_EXCEEDED = 5,
    /// The cursor points before what trimming kept.
    MSS_CURSOR_EXPIRED = 6,
    /// The backend cannot be reached.
    MSS_UNAVAILABLE = 7,
    /// The backend did not answer in time.
    MSS_TIMEOUT = 8,
    /// The backend reported an unexpected error.
    MSS_BACKEND = 9,
    /// A bug in the library, for example a caught panic.
    MSS_INTERNAL = 10,
    /// An error kind newer than this library's list; the message says more.
    MSS_OTHER_ERROR = 1000,
}

/// Every error status, in the order of `ErrorKind::ALL` (status = index + 1,
/// as the bridge's table numbers them).
const ERROR_STATUSES: [mss_status; 10] = [
    mss_status::MSS_NOT_FOUND,
    mss_status::MSS_ALREADY_EXISTS,
    mss_status::MSS_CONFLICT,
    mss_status::MSS_INVALID_INPUT,
    mss_status::MSS_LIMIT_EXCEEDED,
    mss_status::MSS_CURSOR_EXPIRED,
    mss_status::MSS_UNAVAILABLE,
    mss_status::MSS_TIMEOUT,
    mss_status::MSS_BACKEND,
    mss_status::MSS_INTERNAL,
];

/// The status of an error kind: its number in the bridge's table
/// (`ErrorKind::ALL[i]` is status `i + 1`); `MSS_OTHER_ERROR` for a kind
/// newer than this enum.
pub(crate) fn status_of(kind: ErrorKind) -> mss_status {
    status_from_i32(mss_bridge::errors::status_of(kind))
}

/// The status with number `code`, if it is an error kind's;
/// `MSS_OTHER_ERROR` otherwise (0 included: it is not an error).
pub(crate) fn status_from_i32(code: i32) -> mss_status {
    if kind_of_status(code).is_none() {
        return mss_status::MSS_OTHER_ERROR;
    }
    ERROR_STATUSES
        .into_iter()
        .find(|s| *s as i32 == code)
        .unwrap_or(mss_status::MSS_OTHER_ERROR)
}

const _: () = assert!(mss_status::MSS_OTHER_ERROR as i32 == STATUS_OTHER);

/// An error: its status, its stable code (`"not_found"`, …) and a message.
/// Owned by the caller once returned; free it with `mss_error_free`.
pub struct mss_error {
    status: mss_status,
    message: CString,
}

impl mss_error {
    pub(crate) fn new(e: FfiError) -> mss_error {
        mss_error {
            status: e.status,
            message: message_cstring(e.message),
        }
    }
}

const fn parse_version_part(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

const VERSION_MAJOR: u32 = parse_version_part(env!("CARGO_PKG_VERSION_MAJOR"));
const VERSION_MINOR: u32 = parse_version_part(env!("CARGO_PKG_VERSION_MINOR"));
const VERSION_PATCH: u32 = parse_version_part(env!("CARGO_PKG_VERSION_PATCH"));
const VERSION_STRING: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("the package version holds a NUL"),
    };

// ---- functions ------------------------------------------------------------

/// The library's version packed as `(major << 16) | (minor << 8) | patch`,
/// like the header's `MSS_VERSION_NUMBER`: compare the two to detect a
/// header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn mss_version() -> u32 {
    (VERSION_MAJOR << 16) | (VERSION_MINOR << 8) | VERSION_PATCH
}

/// The library's version as a static string, e.g. `"0.1.0"` (as
/// `MSS_VERSION_STRING`). Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn mss_version_string() -> *const c_char {
    static_cstr(VERSION_STRING)
}

/// The stable string code of a status number: `"ok"`, `"not_found"`,
/// `"already_exists"`, `"conflict"`, `"invalid_input"`, `"limit_exceeded"`,
/// `"cursor_expired"`, `"unavailable"`, `"timeout"`, `"backend"`,
/// `"internal"`, or `"unknown"` for any other number. Static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn mss_status_code(status: i32) -> *const c_char {
    static_cstr(mss_bridge::errors::status_code(status))
}

/// The status of an error; `MSS_INVALID_INPUT` if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_status(err: *const mss_error) -> mss_status {
    if err.is_null() {
        return mss_status::MSS_INVALID_INPUT;
    }
    // SAFETY: `err` is not NULL, so it is a live error object of this
    // library (the header's contract).
    unsafe { (*err).status }
}

/// The stable code of an error (as `mss_status_code`). Static; never free
/// it. `"invalid_input"` if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_code(err: *const mss_error) -> *const c_char {
    // SAFETY: forwarded: `err` is NULL or a live error object (the header's
    // contract).
    let status = unsafe { mss_error_status(err) };
    mss_status_code(status as i32)
}

/// The message of an error, NUL-terminated; valid until `mss_error_free`.
/// An empty string if `err` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_message(err: *const mss_error) -> *const c_char {
    if err.is_null() {
        return static_cstr(c"");
    }
    // SAFETY: `err` is not NULL, so it is a live error object of this
    // library (the header's contract).
    unsafe { (*err).message.as_ptr() }
}

/// Free an error object. NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_error_free(err: *mut mss_error) {
    if err.is_null() {
        return;
    }
    let _ = catch_panic(|| {
        // SAFETY: a non-NULL `err` came from `Box::into_raw` in `boundary`
        // and was not freed since (the header's contract).
        drop(unsafe { Box::from_raw(err) });
        Ok(())
    });
}
