//! Native layer of the `mcp-session-store` npm package.
//!
//! Every store call is a `#[napi] async fn` that returns a Promise. Its
//! arguments are checked on the JS thread; the store's future runs on the
//! bridge's runtime (`mss_bridge::runtime`, worker threads with 8 MiB
//! stacks), and napi-rs's runtime only waits for it (see [`run`]). Errors carry the core's stable code as a
//! message prefix, `"not_found: session 'x' not found"`; the package's
//! `lib/errors.js` turns them into `SessionStoreError` subclasses with
//! `.code`. Use the package entry point, not this layer directly: it also
//! checks argument types (`TypeError`).
//!
//! - [`store`]: `openStore` and the store handle, one method per operation;
//! - [`subscription`]: live subscriptions and expiry sweepers;
//! - [`types`]: the result objects, the open options, JS number checks;
//! - [`json`]: JS values to and from JSON.

#![deny(clippy::all)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod json;
pub mod store;
pub mod subscription;
pub mod types;

use std::future::Future;

use mss_core::EventId;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::types::EventPosition;

/// A core error as a JS error whose message starts with the stable code.
fn err(e: mss_core::Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        mss_bridge::errors::coded_message(&e),
    )
}

/// Run a store call on the bridge's runtime and wait for it: the future is
/// polled on a bridge worker (8 MiB of stack), never on napi-rs's threads or
/// the JS thread. A panic in it is an `internal` error.
async fn run<T, F>(future: F) -> Result<T>
where
    F: Future<Output = mss_core::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    mss_bridge::runtime::call(future)
        .await
        .and_then(|result| result)
        .map_err(err)
}

/// An `invalid_input` error for bad arguments found here.
fn invalid(message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("invalid_input: {message}"))
}

/// Format the wire id of position (`streamId`, `seq`) in a session.
#[napi]
pub fn format_event_id(session_id: String, stream_id: String, seq: f64) -> Result<String> {
    mss_core::validate::session_id(&session_id).map_err(err)?;
    mss_core::validate::stream_id(&stream_id).map_err(err)?;
    Ok(EventId::new(stream_id, types::seq(seq)?).format(&session_id))
}

/// Parse a wire id that `sessionId` handed out; a foreign, altered or
/// malformed id is `invalid_input`.
#[napi]
pub fn parse_event_id(wire: String, session_id: String) -> Result<EventPosition> {
    mss_core::validate::session_id(&session_id).map_err(err)?;
    let id = EventId::parse(&wire, &session_id).map_err(err)?;
    Ok(EventPosition {
        stream_id: id.stream_id,
        seq: id.seq as i64,
    })
}

/// A new session id as the store mints them: a UUID v4 (122 random bits
/// from the OS CSPRNG). Synchronous, for the SDK's `sessionIdGenerator`.
#[napi]
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The core library's version.
#[napi]
pub fn core_version() -> String {
    mss_core::VERSION.to_string()
}

/// One error kind: the stable code and the class the package gives it.
#[napi(object, object_from_js = false)]
pub struct ErrorKindInfo {
    /// The stable code, e.g. `"not_found"` (the error's `.code`).
    pub code: String,
    /// The class name, e.g. `"NotFoundError"`.
    pub class_name: String,
}

/// Every error kind of the core, in its order (`ErrorKind::ALL`, through
/// the bridge's table): the package builds one error class per entry.
#[napi]
pub fn error_kinds() -> Vec<ErrorKindInfo> {
    mss_bridge::errors::kinds()
        .iter()
        .map(|k| ErrorKindInfo {
            code: k.code().to_string(),
            class_name: k.class_name().to_string(),
        })
        .collect()
}
