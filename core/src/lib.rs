//! # mcp-session-store
//!
//! Storage for everything a stateful MCP (Model Context Protocol) server keeps
//! per client: the **session**, its per-key versioned **state**, and the SSE
//! **event log** that lets a client resume a stream with `Last-Event-ID`.
//!
//! One [`Store`] handle, opened from a URL, fronts every backend:
//!
//! | URL | backend | cargo feature |
//! |---|---|---|
//! | `memory://` | in-process, sharded maps | always |
//! | `sqlite://PATH` | SQLite file, WAL, group commit | `sqlite` (default) |
//! | `postgres://USER@HOST/DB` | PostgreSQL: a schema of its own, batched appends, `LISTEN/NOTIFY` wake-ups | `postgres` |
//! | `dynamodb://TABLE?region=…&endpoint=…` | DynamoDB (or a compatible server): one table, transactional appends, sharded session index | `dynamodb` |
//! | `redis://HOST:PORT`, `rediss://…` | Redis, a single server or a Redis Cluster (TLS by rustls): one Lua script per operation on one slot, pub/sub wake-ups | `redis` |
//!
//! ```no_run
//! # async fn demo() -> mcp_session_store::Result<()> {
//! use mcp_session_store::{EventId, NewEvent, NewSession, Store};
//! use serde_json::json;
//!
//! let store = Store::open("sqlite://sessions.db?ttl=30m").await?;
//! let session = store.create_session(NewSession::new()).await?;
//! let first = store
//!     .append_event(&session.id, NewEvent::new("_GET_stream", json!({"n": 1})))
//!     .await?;
//! store
//!     .append_event(&session.id, NewEvent::new("_GET_stream", json!({"n": 2})))
//!     .await?;
//! // A client reconnects with `Last-Event-ID: <first.wire_id()>`:
//! let missed = store.replay(&session.id, &first.wire_id(), 100).await?;
//! assert_eq!(missed.items.len(), 1);
//! # Ok(()) }
//! ```
//!
//! [`Store::subscribe`] turns a replay into a live tail of a stream.
//! Calls need a tokio runtime with its time driver (as `#[tokio::main]` sets
//! up); on `memory://` every call but `subscribe` and the sweeper also works
//! on other executors.
//!
//! The guarantees every backend keeps are listed on [`Backend`]; the
//! conformance suite in the repository's `tests/` checks them on each backend.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod backends;
mod error;
mod event_id;
mod hash;
mod json;
mod model;
mod options;
mod runtime;
mod store;
mod subscribe;
mod sweeper;
mod time;
pub mod validate;
mod wakers;

pub use backend::{AppendListener, Backend, BackendInfo, Expected};
pub use error::{Error, ErrorKind, Result};
pub use event_id::EventId;
pub use json::Json;
pub use model::{
    CleanupStats, CreateSession, Event, NewEvent, NewSession, Page, Session, StateEntry,
};
pub use options::{Limits, StoreOptions, StoreUrl, parse_duration};
pub use store::Store;
pub use subscribe::Subscription;
pub use sweeper::{Sweeper, SweeperStats};
pub use time::now_ms;

/// The crate version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
