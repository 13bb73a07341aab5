//! The stable C ABI of mcp-session-store.
//!
//! Built as `libmcp_session_store.so` / `.a`; the header
//! `include/mcp_session_store.h` is generated from this crate by cbindgen.
//! Conventions (see the header's preamble): every function is `mss_*`,
//! returns an [`mss_status`] (0 = `MSS_OK`), writes its outputs only on
//! success, and on failure writes an optional [`mss_error`] object. Values
//! cross as UTF-8 JSON text.
//!
//! Layout: one module per object family, in the header's order (`status`,
//! `buffers`, `store`, `session`, `state`, `event`, `subscription`,
//! `expiry`), over the plumbing every entry point uses: the panic boundary
//! and blocking call (`boundary`, on the bridge's runtime), argument checks
//! (`args`), the handle registry (`handles`) and the JSON shapes
//! (`json_io`).

// C names, and `unsafe extern "C"` functions whose safety contract is the
// header's (documented once in its preamble).
#![allow(non_camel_case_types, clippy::missing_safety_doc)]
#![deny(clippy::undocumented_unsafe_blocks)]

// cbindgen reads the modules in the order they are declared, and that is the
// header's order: keep one declaration per group so rustfmt does not sort
// them.
mod status;
// The buffers text comes back in.
mod buffers;
// Stores, then what lives in them.
mod store;
// Sessions.
mod session;
// State.
mod state;
// Events and wire ids.
mod event;
// Subscriptions.
mod subscription;
// Expiry.
mod expiry;

mod args;
mod boundary;
mod handles;
mod json_io;

pub use buffers::{mss_buf, mss_buf_free};
pub use event::{
    mss_event_append, mss_event_append_json, mss_event_id_format, mss_event_id_parse,
    mss_events_after, mss_events_replay,
};
pub use expiry::{mss_cleanup_expired, mss_cleanup_stats};
pub use session::{
    mss_session_count, mss_session_create, mss_session_delete, mss_session_get, mss_session_list,
    mss_session_touch, mss_session_update,
};
pub use state::{
    mss_state_all, mss_state_delete, mss_state_get, mss_state_keys, mss_state_set,
    mss_state_set_if_absent, mss_state_set_if_version, mss_state_update, mss_update_fn,
};
pub use status::{
    mss_error, mss_error_code, mss_error_free, mss_error_message, mss_error_status, mss_status,
    mss_status_code, mss_version, mss_version_string,
};
pub use store::{
    mss_store, mss_store_backend, mss_store_free, mss_store_open, mss_store_open_with,
};
pub use subscription::{
    mss_subscribe, mss_subscription, mss_subscription_free, mss_subscription_next,
};

#[cfg(test)]
mod tests;
