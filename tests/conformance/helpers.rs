//! What the areas share: the hang guard, a runtime, and small helpers to
//! create sessions, read events and check error kinds.

use std::fmt::Debug;
use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewSession, Result, Store};
use serde_json::{Map, Value};

/// How long a test waits for something that must happen before it calls it
/// a hang: generous, because an emulator on a loaded machine is slow. It is
/// a guard, not a speed assertion.
pub(crate) const HANG: Duration = Duration::from_secs(180);

/// A runtime for the code that runs outside a test's own (the cross-process
/// child, the global tests).
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The kind of an error the call must have returned.
#[track_caller]
pub(crate) fn err_kind<T: Debug>(result: Result<T>) -> ErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// A JSON object from a `json!({...})` literal.
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A new session with default options; returns its id.
pub(crate) async fn session(store: &Store) -> String {
    store
        .create_session(NewSession::new())
        .await
        .expect("create session")
        .id
}

/// The seqs of every event of session `id` on `stream`, following pages.
pub(crate) async fn all_events(store: &Store, id: &str, stream: &str) -> Vec<u64> {
    let mut cursor = EventId::start(stream);
    let mut seqs = Vec::new();
    loop {
        let page = store
            .events_after(id, &cursor, 100)
            .await
            .expect("events_after");
        for e in &page.items {
            seqs.push(e.seq);
        }
        match page.items.last() {
            Some(last) if page.next.is_some() => cursor = last.id(),
            _ => return seqs,
        }
    }
}

/// Read `n` events from a subscription, failing after [`HANG`] without one.
pub(crate) async fn take(
    sub: &mut mcp_session_store::Subscription,
    n: usize,
) -> Vec<mcp_session_store::Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(HANG, sub.next()).await {
            Ok(Some(Ok(e))) => out.push(e),
            Ok(Some(Err(e))) => panic!("subscription failed after {} events: {e}", out.len()),
            Ok(None) => panic!("subscription ended after {} events", out.len()),
            Err(_) => panic!("no event within {HANG:?} after {} events", out.len()),
        }
    }
    out
}
