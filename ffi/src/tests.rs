//! Rust-side tests of the ABI's plumbing; the C programs in `ffi/tests/c`
//! test the API itself.

use std::ffi::CStr;
use std::ptr;

use mss_core::ErrorKind;

use super::*;
use crate::runtime::{FfiError, boundary, status_of};

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
    let s = unsafe { CStr::from_ptr(mss_version_string()) };
    assert_eq!(s.to_str().unwrap(), version);
}

#[test]
fn every_error_kind_has_its_stable_status_and_code() {
    for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
        let status = status_of(kind);
        assert_eq!(status as i32, i as i32 + 1, "{kind:?}");
        let code = unsafe { CStr::from_ptr(mss_status_code(status as i32)) };
        assert_eq!(code.to_str().unwrap(), kind.code());
    }
    let ok = unsafe { CStr::from_ptr(mss_status_code(0)) };
    assert_eq!(ok.to_str().unwrap(), "ok");
    for unknown in [-1, 11, 999, 1000, i32::MAX] {
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
    let status = unsafe { mss_store_open(c"memory://".as_ptr(), &mut store, &mut err) };
    assert_eq!(status, mss_status::MSS_OK);
    let mut count = u64::MAX;
    assert_eq!(
        unsafe { mss_session_count(store, &mut count, ptr::null_mut()) },
        mss_status::MSS_OK
    );
    assert_eq!(count, 0);
    unsafe { mss_store_free(store) };
    let mut count = 7;
    assert_eq!(
        unsafe { mss_session_count(store, &mut count, ptr::null_mut()) },
        mss_status::MSS_INVALID_INPUT
    );
    assert_eq!(count, 7, "outputs are written only on success");
    // Freeing twice is ignored; a forged handle is refused.
    unsafe { mss_store_free(store) };
    let forged = std::ptr::without_provenance::<mss_store>(0xdead_bee0);
    assert_eq!(
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
