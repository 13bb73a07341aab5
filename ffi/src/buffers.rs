//! Text handed to C: the `mss_buf` type, its free function, and the
//! helpers that build buffers and C strings.

use std::ffi::{CStr, CString, c_char};

use mss_bridge::runtime::catch_panic;

/// Bytes returned by the library: `len` bytes of UTF-8 at `data`, followed by
/// a NUL that `len` does not count. Free with `mss_buf_free`; do not change
/// `data` or `len`.
#[repr(C)]
#[derive(Debug)]
pub struct mss_buf {
    /// The text, NUL-terminated. NULL after `mss_buf_free`.
    pub data: *mut c_char,
    /// Its length in bytes, without the NUL.
    pub len: usize,
}

/// Free a buffer's data and set it to `{NULL, 0}`, so freeing it again does
/// nothing. NULL, and a buffer whose `data` is NULL, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_buf_free(buf: *mut mss_buf) {
    if buf.is_null() {
        return;
    }
    let _ = catch_panic(|| {
        // SAFETY: `buf` is not NULL and points to a buffer this library
        // filled (the header's contract), so it is valid to borrow here.
        let buf = unsafe { &mut *buf };
        // SAFETY: its `data` came from `to_buf` and was not freed since
        // (`free_buf` sets it to NULL).
        unsafe { free_buf(buf) };
        Ok(())
    });
}

/// Text handed to C in an [`mss_buf`]: NUL-terminated, freed by `mss_buf_free`.
pub(crate) fn to_buf(s: &str) -> mss_buf {
    // Exactly the text and its NUL: no reallocation when boxed.
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    bytes.push(0);
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len() - 1;
    mss_buf {
        data: Box::into_raw(boxed).cast::<c_char>(),
        len,
    }
}

/// Take back a buffer made by [`to_buf`].
///
/// # Safety
/// `buf` was returned by this library and not freed since.
pub(crate) unsafe fn free_buf(buf: &mut mss_buf) {
    if buf.data.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(buf.data.cast::<u8>(), buf.len + 1);
    // SAFETY: `to_buf` made this allocation as a `Box<[u8]>` of `len + 1`
    // (this function's contract), and it is freed only here.
    drop(unsafe { Box::from_raw(slice) });
    buf.data = std::ptr::null_mut();
    buf.len = 0;
}

/// A static NUL-terminated string for C.
pub(crate) fn static_cstr(s: &'static CStr) -> *const c_char {
    s.as_ptr()
}

/// A message as a C string (interior NULs replaced).
pub(crate) fn message_cstring(message: String) -> CString {
    CString::new(message).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|&b| b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}
