//! Rust-side tests of the ABI's plumbing; the C programs in `ffi/tests/c`
//! test the API itself.

use std::ffi::CStr;
use std::ptr;

use mss_core::ErrorKind;

use super::*;
use crate::boundary::{FfiError, boundary};
use crate::status::{status_from_i32, status_of};

fn header() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/mcp_session_store.h");
    std::fs::read_to_string(path).expect("read the committed header")
}

/// The value of `#define NAME VALUE` in the header.
fn define(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the header defines {name}"))
        .trim()
        .to_string()
}

#[test]
fn header_version_macros_match_cargo_toml_and_mss_version() {
    let h = header();
    let version = env!("CARGO_PKG_VERSION");
    let parts: Vec<u32> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap())
        .collect();
    let major: u32 = define(&h, "MSS_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = define(&h, "MSS_VERSION_MINOR").parse().unwrap();
    let patch: u32 = define(&h, "MSS_VERSION_PATCH").parse().unwrap();
    assert_eq!([major, minor, patch], parts[..], "header vs Cargo.toml");
    assert_eq!(define(&h, "MSS_VERSION_STRING"), format!("\"{version}\""));
    // The packed number, as the header spells it.
    assert_eq!(
        define(&h, "MSS_VERSION_NUMBER"),
        "((MSS_VERSION_MAJOR << 16) | (MSS_VERSION_MINOR << 8) | MSS_VERSION_PATCH)"
    );
    let packed = (major << 16) | (minor << 8) | patch;
    assert_eq!(mss_version(), packed);
    // SAFETY: `mss_version_string` returns a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(mss_version_string()) };
    assert_eq!(s.to_str().unwrap(), version);
}

#[test]
fn every_error_kind_has_its_stable_status_and_code() {
    for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
        let status = status_of(kind);
        assert_eq!(status as i32, i as i32 + 1, "{kind:?}");
        // SAFETY: `mss_status_code` returns a static NUL-terminated string.
        let code = unsafe { CStr::from_ptr(mss_status_code(status as i32)) };
        assert_eq!(code.to_str().unwrap(), kind.code());
    }
    // SAFETY: as above.
    let ok = unsafe { CStr::from_ptr(mss_status_code(0)) };
    assert_eq!(ok.to_str().unwrap(), "ok");
    for unknown in [-1, 11, 999, 1000, i32::MAX] {
        // SAFETY: as above.
        let code = unsafe { CStr::from_ptr(mss_status_code(unknown)) };
        assert_eq!(code.to_str().unwrap(), "unknown");
    }
}

#[test]
fn the_header_names_every_status_with_its_number() {
    let h = header();
    for (name, n) in [
        ("MSS_OK", 0),
        ("MSS_NOT_FOUND", 1),
        ("MSS_ALREADY_EXISTS", 2),
        ("MSS_CONFLICT", 3),
        ("MSS_INVALID_INPUT", 4),
        ("MSS_LIMIT_EXCEEDED", 5),
        ("MSS_CURSOR_EXPIRED", 6),
        ("MSS_UNAVAILABLE", 7),
        ("MSS_TIMEOUT", 8),
        ("MSS_BACKEND", 9),
        ("MSS_INTERNAL", 10),
        ("MSS_OTHER_ERROR", 1000),
    ] {
        assert!(h.contains(&format!("{name} = {n},")), "{name} = {n}");
    }
}

#[test]
fn a_panic_becomes_mss_internal_with_an_error_object() {
    let mut err: *mut mss_error = ptr::null_mut();
    let status = boundary(&mut err, || panic!("boom"));
    assert_eq!(status, mss_status::MSS_INTERNAL);
    assert!(!err.is_null());
    // SAFETY: `err` is a live error object; its strings are NUL-terminated
    // and read before it is freed, once.
    unsafe {
        assert_eq!(mss_error_status(err), mss_status::MSS_INTERNAL);
        let msg = CStr::from_ptr(mss_error_message(err)).to_str().unwrap();
        assert!(msg.contains("boom"), "{msg}");
        let code = CStr::from_ptr(mss_error_code(err)).to_str().unwrap();
        assert_eq!(code, "internal");
        mss_error_free(err);
    }
    // Without an error pointer the status alone comes back.
    assert_eq!(
        boundary(ptr::null_mut(), || panic!("again")),
        mss_status::MSS_INTERNAL
    );
}

#[test]
fn errors_keep_their_status_and_a_message_without_nuls() {
    let mut err: *mut mss_error = ptr::null_mut();
    let status = boundary(&mut err, || {
        Err(FfiError::new(mss_status::MSS_CONFLICT, "a\0b"))
    });
    assert_eq!(status, mss_status::MSS_CONFLICT);
    // SAFETY: `err` is a live error object, freed once after its message is
    // read.
    unsafe {
        let msg = CStr::from_ptr(mss_error_message(err)).to_str().unwrap();
        assert_eq!(msg, "ab");
        mss_error_free(err);
    }
}

#[test]
fn a_freed_or_forged_store_handle_is_invalid_input() {
    let mut store: *mut mss_store = ptr::null_mut();
    let mut err: *mut mss_error = ptr::null_mut();
    // SAFETY: a NUL-terminated URL and valid output pointers.
    let status = unsafe { mss_store_open(c"memory://".as_ptr(), &mut store, &mut err) };
    assert_eq!(status, mss_status::MSS_OK);
    let mut count = u64::MAX;
    assert_eq!(
        // SAFETY: a handle (live or not, never dereferenced) and a valid
        // output pointer.
        unsafe { mss_session_count(store, &mut count, ptr::null_mut()) },
        mss_status::MSS_OK
    );
    assert_eq!(count, 0);
    // SAFETY: a handle from `mss_store_open`.
    unsafe { mss_store_free(store) };
    let mut count = 7;
    assert_eq!(
        // SAFETY: as above.
        unsafe { mss_session_count(store, &mut count, ptr::null_mut()) },
        mss_status::MSS_INVALID_INPUT
    );
    assert_eq!(count, 7, "outputs are written only on success");
    // Freeing twice is ignored; a forged handle is refused.
    // SAFETY: a freed handle is looked up, never dereferenced.
    unsafe { mss_store_free(store) };
    let forged = std::ptr::without_provenance::<mss_store>(0xdead_bee0);
    assert_eq!(
        // SAFETY: as above.
        unsafe { mss_session_count(forged, &mut count, ptr::null_mut()) },
        mss_status::MSS_INVALID_INPUT
    );
}

#[test]
fn a_callback_status_maps_onto_known_statuses() {
    assert_eq!(status_from_i32(3), mss_status::MSS_CONFLICT);
    assert_eq!(status_from_i32(10), mss_status::MSS_INTERNAL);
    assert_eq!(status_from_i32(0), mss_status::MSS_OTHER_ERROR);
    assert_eq!(status_from_i32(-5), mss_status::MSS_OTHER_ERROR);
    assert_eq!(status_from_i32(77), mss_status::MSS_OTHER_ERROR);
}

#[test]
fn status_numbers_and_codes_come_from_the_bridge_table() {
    for info in mss_bridge::errors::kinds() {
        let status = status_of(info.kind());
        assert_eq!(status as i32, info.status());
        assert_eq!(status_from_i32(info.status()), status);
        // SAFETY: `mss_status_code` returns a static NUL-terminated string.
        let code = unsafe { CStr::from_ptr(mss_status_code(info.status())) };
        assert_eq!(code, info.code_cstr());
    }
}

/// Open a memory store for a test.
fn memory_store(options: Option<&str>) -> Result<*mut mss_store, String> {
    let mut store: *mut mss_store = ptr::null_mut();
    let mut err: *mut mss_error = ptr::null_mut();
    let (p, len) = options.map_or((ptr::null(), 0), |o| (o.as_ptr().cast(), o.len()));
    // SAFETY: a NUL-terminated URL, options text of `len` bytes (or NULL),
    // and valid output pointers.
    let status =
        unsafe { mss_store_open_with(c"memory://".as_ptr(), p, len, &mut store, &mut err) };
    if status == mss_status::MSS_OK {
        return Ok(store);
    }
    // SAFETY: on failure `err` is a live error object, freed once after its
    // message is copied.
    let message = unsafe {
        let m = CStr::from_ptr(mss_error_message(err))
            .to_string_lossy()
            .into_owned();
        mss_error_free(err);
        m
    };
    Err(message)
}

#[test]
fn open_options_are_parsed_by_the_bridge() {
    let store = memory_store(Some(r#"{"ttl_ms": 60000, "max_sessions": 2}"#)).unwrap();
    // SAFETY: a handle from `mss_store_open_with`.
    unsafe { mss_store_free(store) };
    let e = memory_store(Some(r#"{"bogus": 1}"#)).unwrap_err();
    assert!(e.contains("unknown option \"bogus\""), "{e}");
    let e = memory_store(Some(r#"{"ttl_ms": "soon"}"#)).unwrap_err();
    assert!(e.contains("ttl_ms"), "{e}");
    let e = memory_store(Some("{not json")).unwrap_err();
    assert!(e.contains("options is not valid JSON"), "{e}");
    let e = memory_store(Some(r#"{"ttl_ms": 0}"#)).unwrap_err();
    assert!(e.contains("ttl"), "{e}");
}

/// What the update callback saw.
struct Seen {
    thread: Option<std::thread::ThreadId>,
    nested: Option<mss_status>,
    store: *const mss_store,
}

unsafe extern "C" fn record_and_increment(
    user_data: *mut std::ffi::c_void,
    current: *const std::ffi::c_char,
    current_len: usize,
    new_value: *mut *const std::ffi::c_char,
    new_len: *mut usize,
) -> i32 {
    // SAFETY: `user_data` is the `Seen` the test passed, alive for the call.
    let seen = unsafe { &mut *user_data.cast::<Seen>() };
    seen.thread = Some(std::thread::current().id());
    let mut count = 0;
    // SAFETY: a live store handle and a valid output pointer.
    seen.nested = Some(unsafe { mss_session_count(seen.store, &mut count, ptr::null_mut()) });
    let n: u64 = if current.is_null() {
        0
    } else {
        // SAFETY: the library passes `current_len` readable bytes.
        let text = unsafe { std::slice::from_raw_parts(current.cast::<u8>(), current_len) };
        std::str::from_utf8(text).unwrap().parse().unwrap()
    };
    let next: &'static str = if n == 0 { "1" } else { "2" };
    // SAFETY: the library passes valid output pointers; the text is static.
    unsafe {
        *new_value = next.as_ptr().cast();
        *new_len = next.len();
    }
    0
}

#[test]
fn the_update_callback_runs_on_the_calling_thread_and_cannot_call_the_store() {
    let store = memory_store(None).unwrap();
    let mut session = mss_buf {
        data: ptr::null_mut(),
        len: 0,
    };
    let options = r#"{"id": "cb"}"#;
    // SAFETY: a live store, options text of its length, a writable buffer.
    let status = unsafe {
        mss_session_create(
            store,
            options.as_ptr().cast(),
            options.len(),
            &mut session,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, mss_status::MSS_OK);
    // SAFETY: a buffer this library filled, freed once.
    unsafe { mss_buf_free(&mut session) };
    let mut seen = Seen {
        thread: None,
        nested: None,
        store,
    };
    let mut value = mss_buf {
        data: ptr::null_mut(),
        len: 0,
    };
    // SAFETY: a live store, NUL-terminated strings, a callback and its user
    // data alive for the call, and valid output pointers.
    let status = unsafe {
        mss_state_update(
            store,
            c"cb".as_ptr(),
            c"n".as_ptr(),
            Some(record_and_increment),
            (&raw mut seen).cast(),
            &mut value,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(status, mss_status::MSS_OK);
    // SAFETY: a buffer this library filled: NUL-terminated, freed once.
    unsafe {
        assert_eq!(CStr::from_ptr(value.data).to_str().unwrap(), "1");
        mss_buf_free(&mut value);
    }
    assert_eq!(seen.thread, Some(std::thread::current().id()));
    assert_eq!(seen.nested, Some(mss_status::MSS_INTERNAL));
    // SAFETY: a handle from `mss_store_open_with`.
    unsafe { mss_store_free(store) };
}

#[test]
fn calls_work_from_a_thread_with_a_small_stack() {
    let store = memory_store(None).unwrap() as usize;
    let count = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            let mut count = u64::MAX;
            let store = std::ptr::without_provenance::<mss_store>(store);
            // SAFETY: a live store handle and a valid output pointer.
            let status = unsafe { mss_session_count(store, &mut count, ptr::null_mut()) };
            (status, count)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(count, (mss_status::MSS_OK, 0));
    // SAFETY: a handle from `mss_store_open_with`.
    unsafe { mss_store_free(std::ptr::without_provenance_mut(store)) };
}
