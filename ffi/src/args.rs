//! Arguments from C: NUL-terminated strings, pointer + length text, output
//! pointers, each checked and turned into a clear `MSS_INVALID_INPUT`.

use std::ffi::{CStr, c_char};

use crate::boundary::{FfiError, FfiResult};

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn cstr<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: `p` is not NULL, and by this function's contract points to a
    // NUL-terminated string that outlives `'a`.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| FfiError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// An optional NUL-terminated UTF-8 argument (NULL is `None`).
///
/// # Safety
/// As [`cstr`].
pub(crate) unsafe fn opt_cstr<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded: `p` is a NUL-terminated string (this
        // function's contract).
        unsafe { cstr(p, what) }.map(Some)
    }
}

/// A pointer + length UTF-8 argument (JSON text).
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn text<'a>(p: *const c_char, len: usize, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: `p` is not NULL and points to `len` readable bytes that outlive
    // `'a` (this function's contract); `len` fits in an `isize`.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes)
        .map_err(|e| FfiError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// Check that an output pointer is not NULL.
pub(crate) fn out<T>(p: *mut T, what: &str) -> FfiResult<*mut T> {
    if p.is_null() {
        Err(FfiError::invalid(format!("{what} is NULL")))
    } else {
        Ok(p)
    }
}

/// Write `value` to an output checked by [`out`].
///
/// # Safety
/// `p` came from [`out`] and points to writable memory for a `T`.
pub(crate) unsafe fn write<T>(p: *mut T, value: T) {
    // SAFETY: this function's contract; the old value is plain data owned by
    // the caller, so it is overwritten without being dropped.
    unsafe { p.write(value) }
}

/// Write to an optional output (NULL: nothing is written).
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn write_opt<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: `p` is not NULL, so by this function's contract it points
        // to writable memory for a `T`.
        unsafe { p.write(value) }
    }
}
