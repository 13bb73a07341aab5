//! What every binding of mcp-session-store shares, written once: the C ABI
//! (`ffi/`), Python, Node and Elixir all build on this crate.
//!
//! - [`runtime`]: one process-wide tokio runtime whose worker threads have
//!   8 MiB stacks. Every store call runs there ([`runtime::call_blocking`],
//!   [`runtime::call`], [`runtime::spawn`]), never on a caller's or a
//!   language scheduler's small stack; a panic becomes an `Internal` error.
//!   [`runtime::call_blocking_fast`] and [`runtime::poll_once`] first poll a
//!   call once on the caller's thread when it has at least 1 MiB of stack
//!   left, so a call that needs no I/O does not hop threads.
//! - [`options`]: [`OpenOptions`], the one parser of the options a store is
//!   opened with, whatever the language wrote them in.
//! - [`limits`]: the default page size and the JSON depth limit, from the
//!   core.
//! - [`errors`]: the error-kind table (codes, C status numbers, class names)
//!   built from `ErrorKind::ALL`.

#![forbid(unsafe_code)]

pub mod errors;
pub mod limits;
pub mod options;
pub mod runtime;

pub use options::{DurationUnit, OpenOptions};
