//! The NIF behind the Elixir module `McpSessionStore`.
//!
//! Every function that does I/O runs on a dirty I/O scheduler, hands its
//! work to a task on one shared tokio runtime and waits for the result (the
//! future never runs on the scheduler's small stack); the store handle is a
//! `ResourceArc`. Arguments arrive as raw terms and are decoded here, so bad
//! input of any type becomes `{:error, {:invalid_input, message}}` instead of
//! a `badarg`. Results are `{:ok, value}` or `{:error, {kind, message}}` with
//! one atom per `ErrorKind`.

mod json;

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mss_core::{
    CleanupStats, Error, ErrorKind, Event, EventId, NewEvent, NewSession, Page, Session,
    StateEntry, Store, StoreOptions, Sweeper,
};
use rustler::{
    Atom, Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term, TermType,
};
use serde_json::Value;

use crate::json::{atom_name, describe, invalid, utf8};

rustler::atoms! {
    ok,
    error,
}

// ---- runtime ---------------------------------------------------------------

/// Stack size of the runtime's worker threads. Every store future is polled
/// there, never on a BEAM scheduler's thread: the AWS SDK's futures (the
/// DynamoDB backend) need far more stack than a dirty scheduler thread has
/// (a few hundred KiB), and overflowing it kills the whole VM.
const WORKER_STACK_BYTES: usize = 8 << 20;

fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            // Every store call is polled here, not on the scheduler thread
            // that waits for it: one worker per core, at least two.
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("mcp-session-store")
                .thread_stack_size(WORKER_STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start the tokio runtime: {e}"),
            )
        })
}

/// Run the future that `make` builds as a task on the shared runtime and
/// block the calling dirty scheduler thread until it is done.
///
/// The future is built and polled on a runtime worker thread (its stack is
/// [`WORKER_STACK_BYTES`]), so neither its size nor the depth of its poll
/// reaches the scheduler's stack; the arguments are owned data moved into
/// `make`. A panic in the future comes back as an `Internal` error.
///
/// Refuses to run on a normal BEAM scheduler: every I/O NIF is declared
/// `DirtyIo`, and this check keeps it that way (the test suite exercises it
/// on every call).
fn block_on<T, Fut, Make>(make: Make) -> Result<T, Error>
where
    Make: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `enif_thread_type` only reads the calling thread's type.
    let thread_type = unsafe { rustler::sys::enif_thread_type() };
    if thread_type == rustler::sys::ERL_NIF_THR_NORMAL_SCHEDULER {
        return Err(Error::new(
            ErrorKind::Internal,
            "a blocking store call reached a normal BEAM scheduler",
        ));
    }
    let (done, result) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        // Built here, on the worker, and boxed: the task itself stays a few
        // words large whatever the size of the store's future.
        let outcome = CatchUnwind(Box::pin(async move { make().await })).await;
        // The caller waits for this; it cannot have gone away.
        let _ = done.send(outcome);
    });
    match result.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(Error::new(
                ErrorKind::Internal,
                format!("the store call panicked: {message}"),
            ))
        }
        Err(_) => Err(Error::new(
            ErrorKind::Internal,
            "the store call was dropped before it finished (runtime shutting down)",
        )),
    }
}

/// A future that turns a panic while polling `F` into `Err(payload)`.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(value)) => std::task::Poll::Ready(Ok(value)),
            Err(payload) => std::task::Poll::Ready(Err(payload)),
        }
    }
}

// ---- resources -------------------------------------------------------------

/// An open store.
pub struct StoreResource {
    store: Option<Store>,
}

#[rustler::resource_impl]
impl Resource for StoreResource {}

impl Drop for StoreResource {
    fn drop(&mut self) {
        // The BEAM garbage collector drops resources on a scheduler thread:
        // hand the last reference to the runtime, where backends may spawn
        // their shutdown work.
        if let (Some(store), Ok(rt)) = (self.store.take(), runtime()) {
            rt.spawn(async move { drop(store) });
        }
    }
}

/// A running background expiry sweeper; it stops when stopped explicitly or
/// when the handle is garbage collected.
pub struct SweeperResource {
    sweeper: Mutex<Option<Sweeper>>,
}

#[rustler::resource_impl]
impl Resource for SweeperResource {}

/// A live subscription: a task on the runtime forwards events to a process.
/// It stops on `unsubscribe`, when the subscriber process exits (monitor),
/// or when the subscription ends (session deleted or expired, fell behind
/// trimming). The task holds a reference, so garbage collection of the
/// Elixir handle does not stop it.
pub struct SubscriptionResource {
    cancel: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SubscriptionResource {
    /// Stop the forwarding task; false if it was already stopped.
    fn cancel(&self) -> bool {
        // Dropping the sender wakes the task's `cancel` branch.
        self.cancel
            .lock()
            .map(|mut sender| sender.take().is_some())
            .unwrap_or(false)
    }
}

#[rustler::resource_impl]
impl Resource for SubscriptionResource {
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.cancel();
    }
}

// ---- argument decoding -----------------------------------------------------

fn store_arg(term: Term) -> Result<Store, Error> {
    let resource: ResourceArc<StoreResource> = term.decode().map_err(|_| {
        invalid(format!(
            "expected a store opened by McpSessionStore.open/2, got {}",
            describe(term)
        ))
    })?;
    resource
        .store
        .clone()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the store handle was released"))
}

fn string_arg(term: Term, what: &str) -> Result<String, Error> {
    utf8(term, what)
}

fn opt_string_arg(term: Term, what: &str) -> Result<Option<String>, Error> {
    if is_nil(term) {
        Ok(None)
    } else {
        string_arg(term, what).map(Some)
    }
}

fn is_nil(term: Term) -> bool {
    atom_name(term).as_deref() == Some("nil")
}

fn u64_arg(term: Term, what: &str) -> Result<u64, Error> {
    if term.get_type() != TermType::Integer {
        return Err(invalid(format!(
            "{what} must be a non-negative integer, got {}",
            describe(term)
        )));
    }
    term.decode::<u64>()
        .map_err(|_| invalid(format!("{what} must be a non-negative 64-bit integer")))
}

fn usize_arg(term: Term, what: &str) -> Result<usize, Error> {
    let n = u64_arg(term, what)?;
    usize::try_from(n).map_err(|_| invalid(format!("{what} is too large")))
}

/// A duration: milliseconds as an integer, or a string with a unit
/// (`"500ms"`, `"30s"`, `"30m"`, `"2h"`, `"7d"`).
fn duration_arg(term: Term, what: &str) -> Result<Duration, Error> {
    match term.get_type() {
        TermType::Integer => u64_arg(term, what).map(Duration::from_millis),
        TermType::Binary => {
            let text = string_arg(term, what)?;
            mss_core::parse_duration(&text).map_err(|e| invalid(format!("{what}: {}", e.message())))
        }
        _ => Err(invalid(format!(
            "{what} must be milliseconds (integer) or a string such as \"30m\", got {}",
            describe(term)
        ))),
    }
}

/// A keyword list or a map with atom keys, as (name, value) pairs.
fn options_arg<'a>(term: Term<'a>, what: &str) -> Result<Vec<(String, Term<'a>)>, Error> {
    let bad = || {
        invalid(format!(
            "{what} must be a keyword list or a map with atom keys"
        ))
    };
    let mut out = Vec::new();
    match term.get_type() {
        TermType::List => {
            let mut rest = term;
            while !rest.is_empty_list() {
                let (head, tail) = rest.list_get_cell().map_err(|_| bad())?;
                let pair = rustler::types::tuple::get_tuple(head).map_err(|_| bad())?;
                if pair.len() != 2 {
                    return Err(bad());
                }
                let name = atom_name(pair[0]).ok_or_else(bad)?;
                out.push((name, pair[1]));
                rest = tail;
            }
        }
        TermType::Map => {
            let iter = rustler::MapIterator::new(term).ok_or_else(bad)?;
            for (key, value) in iter {
                out.push((atom_name(key).ok_or_else(bad)?, value));
            }
        }
        _ => return Err(bad()),
    }
    Ok(out)
}

fn unknown_option(what: &str, name: &str, known: &str) -> Error {
    invalid(format!("unknown {what} option :{name} (known: {known})"))
}

/// A cursor: `%McpSessionStore.EventId{stream_id: s, seq: n}`, any map with
/// those keys, or a `{stream_id, seq}` tuple.
fn cursor_arg(term: Term) -> Result<EventId, Error> {
    let bad = || {
        invalid(format!(
            "cursor must be %McpSessionStore.EventId{{}} or {{stream_id, seq}}, got {}",
            describe(term)
        ))
    };
    let (stream, seq) = match term.get_type() {
        TermType::Tuple => {
            let items = rustler::types::tuple::get_tuple(term).map_err(|_| bad())?;
            if items.len() != 2 {
                return Err(bad());
            }
            (items[0], items[1])
        }
        TermType::Map => {
            let env = term.get_env();
            let stream_key = Atom::from_str(env, "stream_id").map_err(|_| bad())?;
            let seq_key = Atom::from_str(env, "seq").map_err(|_| bad())?;
            (
                term.map_get(stream_key).map_err(|_| bad())?,
                term.map_get(seq_key).map_err(|_| bad())?,
            )
        }
        _ => return Err(bad()),
    };
    Ok(EventId::new(
        string_arg(stream, "cursor stream id")?,
        u64_arg(seq, "cursor seq")?,
    ))
}

// ---- result encoding -------------------------------------------------------

fn reply<'a>(env: Env<'a>, result: Result<Term<'a>, Error>) -> Term<'a> {
    match result {
        Ok(value) => (ok(), value).encode(env),
        Err(e) => error_term(env, &e),
    }
}

fn error_term<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    let kind = Atom::from_str(env, e.code())
        .map(|a| a.encode(env))
        .unwrap_or_else(|_| e.code().encode(env));
    (error(), (kind, e.message())).encode(env)
}

/// Struct modules and field names, created once when the NIF loads.
mod keys {
    rustler::atoms! {
        created_at,
        data,
        errors,
        event_type,
        events,
        expires_at,
        id,
        items,
        key,
        last_activity,
        last_seq,
        metadata,
        next,
        priming,
        retry_ms,
        runs,
        seq,
        session_id,
        sessions,
        sessions_removed,
        state_entries,
        stream_id,
        ttl_ms,
        value,
        version,
        wire_id,
        module_cleanup_stats = "Elixir.McpSessionStore.CleanupStats",
        module_event = "Elixir.McpSessionStore.Event",
        module_event_id = "Elixir.McpSessionStore.EventId",
        module_page = "Elixir.McpSessionStore.Page",
        module_session = "Elixir.McpSessionStore.Session",
        module_state_entry = "Elixir.McpSessionStore.StateEntry",
        module_sweeper_stats = "Elixir.McpSessionStore.SweeperStats",
        struct_ = "__struct__",
    }
}

fn make_struct<'a>(env: Env<'a>, module: Atom, fields: &[(Atom, Term<'a>)]) -> Term<'a> {
    let mut keys = Vec::with_capacity(fields.len() + 1);
    let mut values = Vec::with_capacity(fields.len() + 1);
    keys.push(keys::struct_().encode(env));
    values.push(module.encode(env));
    for (key, value) in fields {
        keys.push(key.encode(env));
        values.push(*value);
    }
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
}

fn session_term<'a>(env: Env<'a>, s: &Session) -> Term<'a> {
    make_struct(
        env,
        keys::module_session(),
        &[
            (keys::id(), s.id.encode(env)),
            (keys::created_at(), s.created_at.encode(env)),
            (keys::last_activity(), s.last_activity.encode(env)),
            (keys::expires_at(), s.expires_at.encode(env)),
            (keys::ttl_ms(), s.ttl_ms.encode(env)),
            (keys::metadata(), json::object_to_term(env, &s.metadata)),
            (keys::version(), s.version.encode(env)),
            (keys::last_seq(), s.last_seq.encode(env)),
        ],
    )
}

fn json_term<'a>(env: Env<'a>, value: &mss_core::Json) -> Term<'a> {
    json::value_to_term(env, &value.to_value())
}

fn entry_term<'a>(env: Env<'a>, e: &StateEntry) -> Term<'a> {
    make_struct(
        env,
        keys::module_state_entry(),
        &[
            (keys::key(), e.key.encode(env)),
            (keys::value(), json_term(env, &e.value)),
            (keys::version(), e.version.encode(env)),
        ],
    )
}

fn event_term<'a>(env: Env<'a>, e: &Event) -> Term<'a> {
    let data = match &e.data {
        Some(d) => json_term(env, d),
        None => rustler::types::atom::nil().encode(env),
    };
    make_struct(
        env,
        keys::module_event(),
        &[
            (keys::session_id(), e.session_id.encode(env)),
            (keys::seq(), e.seq.encode(env)),
            (keys::stream_id(), e.stream_id.encode(env)),
            (keys::data(), data),
            (keys::priming(), e.is_priming().encode(env)),
            (keys::event_type(), e.event_type.encode(env)),
            (keys::retry_ms(), e.retry_ms.encode(env)),
            (keys::created_at(), e.created_at.encode(env)),
            (keys::wire_id(), e.wire_id().encode(env)),
        ],
    )
}

fn page_term<'a, T>(
    env: Env<'a>,
    page: &Page<T>,
    item: impl Fn(Env<'a>, &T) -> Term<'a>,
) -> Term<'a> {
    let items: Vec<Term<'a>> = page.items.iter().map(|i| item(env, i)).collect();
    make_struct(
        env,
        keys::module_page(),
        &[
            (keys::items(), items.encode(env)),
            (keys::next(), page.next.encode(env)),
        ],
    )
}

fn cleanup_term<'a>(env: Env<'a>, c: &CleanupStats) -> Term<'a> {
    make_struct(
        env,
        keys::module_cleanup_stats(),
        &[
            (keys::sessions(), c.sessions.encode(env)),
            (keys::state_entries(), c.state_entries.encode(env)),
            (keys::events(), c.events.encode(env)),
        ],
    )
}

fn event_id_term<'a>(env: Env<'a>, id: &EventId) -> Term<'a> {
    make_struct(
        env,
        keys::module_event_id(),
        &[
            (keys::stream_id(), id.stream_id.encode(env)),
            (keys::seq(), id.seq.encode(env)),
        ],
    )
}

// ---- store -----------------------------------------------------------------

#[rustler::nif(schedule = "DirtyIo")]
fn open<'a>(env: Env<'a>, url: Term<'a>, opts: Term<'a>) -> Term<'a> {
    let result = (|| {
        let url = string_arg(url, "store URL")?;
        let mut options = StoreOptions::default();
        for (name, value) in options_arg(opts, "open")? {
            options = match name.as_str() {
                "ttl" => options.with_ttl(duration_arg(value, "option ttl")?),
                "max_events_per_session" => options
                    .with_max_events_per_session(u64_arg(value, "option max_events_per_session")?),
                "max_payload_bytes" => {
                    options.with_max_payload_bytes(usize_arg(value, "option max_payload_bytes")?)
                }
                "max_sessions" => options.with_max_sessions(if is_nil(value) {
                    None
                } else {
                    Some(u64_arg(value, "option max_sessions")?)
                }),
                "poll_interval" => {
                    options.with_poll_interval(duration_arg(value, "option poll_interval")?)
                }
                other => {
                    return Err(unknown_option(
                        "open",
                        other,
                        "ttl, max_events_per_session, max_payload_bytes, max_sessions, poll_interval",
                    ));
                }
            };
        }
        let store = block_on(move || async move { Store::open_with(&url, options).await })??;
        Ok(ResourceArc::new(StoreResource { store: Some(store) }).encode(env))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn close<'a>(env: Env<'a>, store: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        block_on(move || async move { store.close().await })??;
        Ok(ok().encode(env))
    })();
    reply(env, result)
}

#[rustler::nif]
fn backend_name<'a>(env: Env<'a>, store: Term<'a>) -> Term<'a> {
    let result = store_arg(store).map(|s| s.backend_name().encode(env));
    reply(env, result)
}

// ---- sessions --------------------------------------------------------------

#[rustler::nif(schedule = "DirtyIo")]
fn create_session<'a>(env: Env<'a>, store: Term<'a>, opts: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let mut new = NewSession::new();
        for (name, value) in options_arg(opts, "create_session")? {
            new = match name.as_str() {
                "id" => match opt_string_arg(value, "session id")? {
                    Some(id) => new.with_id(id),
                    None => new,
                },
                "metadata" => new.with_metadata(json::term_to_object(value, "session metadata")?),
                "ttl" => new.with_ttl(duration_arg(value, "option ttl")?),
                other => {
                    return Err(unknown_option("create_session", other, "id, metadata, ttl"));
                }
            };
        }
        let session = block_on(move || async move { store.create_session(new).await })??;
        Ok(session_term(env, &session))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn get_session<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let found = {
            let id = id.clone();
            block_on(move || async move { store.get_session(&id).await })??
        };
        match found {
            Some(session) => Ok(session_term(env, &session)),
            None => Err(Error::session_not_found(&id)),
        }
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn update_session<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>, patch: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let patch = json::term_to_object(patch, "metadata patch")?;
        let session = block_on(move || async move { store.update_session(&id, patch).await })??;
        Ok(session_term(env, &session))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn touch_session<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let session = block_on(move || async move { store.touch_session(&id).await })??;
        Ok(session_term(env, &session))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn delete_session<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        Ok(block_on(move || async move { store.delete_session(&id).await })??.encode(env))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn list_sessions<'a>(env: Env<'a>, store: Term<'a>, after: Term<'a>, limit: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let after = opt_string_arg(after, "after")?;
        let limit = usize_arg(limit, "limit")?;
        let page =
            block_on(move || async move { store.list_sessions(after.as_deref(), limit).await })??;
        Ok(page_term(env, &page, session_term))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn count_sessions<'a>(env: Env<'a>, store: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        Ok(block_on(move || async move { store.count_sessions().await })??.encode(env))
    })();
    reply(env, result)
}

// ---- state -----------------------------------------------------------------

#[rustler::nif(schedule = "DirtyIo")]
fn get_state<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>, key: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let key = string_arg(key, "state key")?;
        Ok(
            match block_on(move || async move { store.get_state(&id, &key).await })?? {
                Some(entry) => entry_term(env, &entry),
                None => rustler::types::atom::nil().encode(env),
            },
        )
    })();
    reply(env, result)
}

/// `expected`: `:any` (plain set), `nil` (only if absent) or a version.
#[rustler::nif(schedule = "DirtyIo")]
fn set_state<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    key: Term<'a>,
    value: Term<'a>,
    expected: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let key = string_arg(key, "state key")?;
        let value = json::term_to_value(value, "state value")?;
        let version = if atom_name(expected).as_deref() == Some("any") {
            block_on(move || async move { store.set_state(&id, &key, value).await })??
        } else {
            let expected = if is_nil(expected) {
                None
            } else {
                Some(u64_arg(expected, "expected version")?)
            };
            block_on(move || async move {
                store.set_state_if_version(&id, &key, value, expected).await
            })??
        };
        Ok(version.encode(env))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn delete_state<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>, key: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let key = string_arg(key, "state key")?;
        Ok(block_on(move || async move { store.delete_state(&id, &key).await })??.encode(env))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn state_keys<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        Ok(block_on(move || async move { store.state_keys(&id).await })??.encode(env))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn state_all<'a>(env: Env<'a>, store: Term<'a>, id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let entries = block_on(move || async move { store.state_all(&id).await })??;
        let terms: Vec<Term<'a>> = entries.iter().map(|e| entry_term(env, e)).collect();
        Ok(terms.encode(env))
    })();
    reply(env, result)
}

// ---- events ----------------------------------------------------------------

/// `data`: `{:data, term}` for an event, `:priming` for a priming event.
#[rustler::nif(schedule = "DirtyIo")]
fn append_event<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    stream: Term<'a>,
    data: Term<'a>,
    opts: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let stream = string_arg(stream, "stream id")?;
        let mut event = if atom_name(data).as_deref() == Some("priming") {
            NewEvent::priming(stream)
        } else {
            let wrapped = rustler::types::tuple::get_tuple(data)
                .ok()
                .filter(|t| t.len() == 2 && atom_name(t[0]).as_deref() == Some("data"))
                .ok_or_else(|| invalid("event data must be {:data, value} or :priming"))?;
            let value: Value = json::term_to_value(wrapped[1], "event data")?;
            NewEvent::new(stream, value)
        };
        for (name, value) in options_arg(opts, "append_event")? {
            match name.as_str() {
                "event_type" => {
                    if let Some(t) = opt_string_arg(value, "event_type")? {
                        event = event.with_event_type(t);
                    }
                }
                "retry_ms" => {
                    if !is_nil(value) {
                        let ms = u64_arg(value, "retry_ms")?;
                        let ms = u32::try_from(ms)
                            .map_err(|_| invalid("retry_ms must fit in 32 bits"))?;
                        event = event.with_retry_ms(ms);
                    }
                }
                other => {
                    return Err(unknown_option(
                        "append_event",
                        other,
                        "event_type, retry_ms",
                    ));
                }
            }
        }
        let event = block_on(move || async move { store.append_event(&id, event).await })??;
        Ok(event_term(env, &event))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn events_after<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    cursor: Term<'a>,
    limit: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let cursor = cursor_arg(cursor)?;
        let limit = usize_arg(limit, "limit")?;
        let page = block_on(move || async move { store.events_after(&id, &cursor, limit).await })??;
        Ok(page_term(env, &page, event_term))
    })();
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyIo")]
fn replay<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    last_event_id: Term<'a>,
    limit: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let wire = string_arg(last_event_id, "last event id")?;
        let limit = usize_arg(limit, "limit")?;
        let page = block_on(move || async move { store.replay(&id, &wire, limit).await })??;
        Ok(page_term(env, &page, event_term))
    })();
    reply(env, result)
}

/// Follow one stream: the replay after `cursor`, then new events, sent to
/// `pid` as `{:mcp_session_store, tag, {:event, event}}`; an ending is sent
/// as `{:mcp_session_store, tag, {:error, {kind, message}}}`.
#[rustler::nif(schedule = "DirtyIo")]
fn subscribe<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    cursor: Term<'a>,
    pid: Term<'a>,
    tag: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let cursor = cursor_arg(cursor)?;
        let pid: LocalPid = pid.decode().map_err(|_| {
            invalid(format!(
                "subscriber must be a local PID, got {}",
                describe(pid)
            ))
        })?;
        let tag_env = OwnedEnv::new();
        let tag = tag_env.save(tag);
        let subscription = block_on(move || async move { store.subscribe(&id, cursor).await })??;
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let resource = ResourceArc::new(SubscriptionResource {
            cancel: Mutex::new(Some(cancel_tx)),
        });
        if resource.monitor(Some(env), &pid).is_none() {
            return Err(invalid("the subscriber process is not alive"));
        }
        runtime()?.spawn(forward(
            subscription,
            pid,
            (tag_env, tag),
            cancel_rx,
            resource.clone(),
            // Counted from here, not from the task's first poll.
            ActiveGuard::new(),
        ));
        Ok(resource.encode(env))
    })();
    reply(env, result)
}

/// Forwarding tasks running (for tests and monitoring).
static ACTIVE_SUBSCRIPTIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

struct ActiveGuard;

impl ActiveGuard {
    fn new() -> ActiveGuard {
        ACTIVE_SUBSCRIPTIONS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ActiveGuard
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE_SUBSCRIPTIONS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[rustler::nif]
fn active_subscriptions() -> usize {
    ACTIVE_SUBSCRIPTIONS.load(std::sync::atomic::Ordering::Acquire)
}

async fn forward(
    mut subscription: mss_core::Subscription,
    pid: LocalPid,
    tag: (OwnedEnv, rustler::env::SavedTerm),
    mut cancel: tokio::sync::oneshot::Receiver<()>,
    _keep_alive: ResourceArc<SubscriptionResource>,
    _active: ActiveGuard,
) {
    rustler::atoms! { mcp_session_store, event }
    let (tag_env, tag) = tag;
    let mut msg_env = OwnedEnv::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancel => return,
            next = subscription.next() => next,
        };
        let (last, sent) = match next {
            Some(Ok(ev)) => (
                false,
                msg_env.send_and_clear(&pid, |env| {
                    let tag = tag_env.run(|tenv| tag.load(tenv).in_env(env));
                    (mcp_session_store(), tag, (event(), event_term(env, &ev)))
                }),
            ),
            Some(Err(e)) => (
                true,
                msg_env.send_and_clear(&pid, |env| {
                    let tag = tag_env.run(|tenv| tag.load(tenv).in_env(env));
                    (mcp_session_store(), tag, error_term(env, &e))
                }),
            ),
            None => (true, Ok(())),
        };
        if last || sent.is_err() {
            return;
        }
    }
}

#[rustler::nif]
fn unsubscribe<'a>(env: Env<'a>, subscription: Term<'a>) -> Term<'a> {
    let result = (|| {
        let resource: ResourceArc<SubscriptionResource> = subscription.decode().map_err(|_| {
            invalid(format!(
                "expected a subscription from McpSessionStore.subscribe/4, got {}",
                describe(subscription)
            ))
        })?;
        Ok(resource.cancel().encode(env))
    })();
    reply(env, result)
}

// ---- expiry ----------------------------------------------------------------

#[rustler::nif(schedule = "DirtyIo")]
fn cleanup_expired<'a>(env: Env<'a>, store: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let stats = block_on(move || async move { store.cleanup_expired().await })??;
        Ok(cleanup_term(env, &stats))
    })();
    reply(env, result)
}

#[rustler::nif]
fn start_sweeper<'a>(env: Env<'a>, store: Term<'a>, interval: Term<'a>) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let interval = duration_arg(interval, "sweeper interval")?;
        let _guard = runtime()?.enter();
        let sweeper = store.spawn_sweeper(interval)?;
        Ok(ResourceArc::new(SweeperResource {
            sweeper: Mutex::new(Some(sweeper)),
        })
        .encode(env))
    })();
    reply(env, result)
}

#[rustler::nif]
fn sweeper_stats<'a>(env: Env<'a>, sweeper: Term<'a>) -> Term<'a> {
    let result = (|| {
        let sweeper = sweeper_arg(sweeper)?;
        let guard = sweeper
            .sweeper
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "sweeper lock poisoned"))?;
        let Some(running) = guard.as_ref() else {
            return Ok(rustler::types::atom::nil().encode(env));
        };
        let stats = running.stats();
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        Ok(make_struct(
            env,
            keys::module_sweeper_stats(),
            &[
                (keys::runs(), load(&stats.runs).encode(env)),
                (
                    keys::sessions_removed(),
                    load(&stats.sessions_removed).encode(env),
                ),
                (keys::errors(), load(&stats.errors).encode(env)),
            ],
        ))
    })();
    reply(env, result)
}

#[rustler::nif]
fn stop_sweeper<'a>(env: Env<'a>, sweeper: Term<'a>) -> Term<'a> {
    let result = (|| {
        let sweeper = sweeper_arg(sweeper)?;
        let stopped = sweeper
            .sweeper
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "sweeper lock poisoned"))?
            .take();
        Ok(stopped.is_some().encode(env))
    })();
    reply(env, result)
}

fn sweeper_arg(term: Term) -> Result<ResourceArc<SweeperResource>, Error> {
    term.decode().map_err(|_| {
        invalid(format!(
            "expected a sweeper from McpSessionStore.start_sweeper/2, got {}",
            describe(term)
        ))
    })
}

// ---- event ids (pure, on normal schedulers) --------------------------------

#[rustler::nif]
fn format_event_id<'a>(
    env: Env<'a>,
    session_id: Term<'a>,
    stream: Term<'a>,
    seq: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let session_id = string_arg(session_id, "session id")?;
        mss_core::validate::session_id(&session_id)?;
        let stream = string_arg(stream, "stream id")?;
        mss_core::validate::stream_id(&stream)?;
        let seq = u64_arg(seq, "seq")?;
        Ok(EventId::new(stream, seq).format(&session_id).encode(env))
    })();
    reply(env, result)
}

#[rustler::nif]
fn parse_event_id<'a>(env: Env<'a>, wire: Term<'a>, session_id: Term<'a>) -> Term<'a> {
    let result = (|| {
        let wire = string_arg(wire, "event id")?;
        let session_id = string_arg(session_id, "session id")?;
        mss_core::validate::session_id(&session_id)?;
        let id = EventId::parse(&wire, &session_id)?;
        Ok(event_id_term(env, &id))
    })();
    reply(env, result)
}

/// The type of the scheduler thread an I/O call would run on: `:dirty_io`
/// for every store call (used by the tests).
#[rustler::nif(schedule = "DirtyIo")]
fn io_thread_type<'a>(env: Env<'a>) -> Term<'a> {
    // SAFETY: `enif_thread_type` only reads the calling thread's type.
    let name = match unsafe { rustler::sys::enif_thread_type() } {
        rustler::sys::ERL_NIF_THR_NORMAL_SCHEDULER => "normal",
        rustler::sys::ERL_NIF_THR_DIRTY_CPU_SCHEDULER => "dirty_cpu",
        rustler::sys::ERL_NIF_THR_DIRTY_IO_SCHEDULER => "dirty_io",
        _ => "undefined",
    };
    Atom::from_str(env, name).map_or_else(|_| name.encode(env), |a| a.encode(env))
}

/// Test hook: a store-call future that panics. The panic has to come back as
/// `{:error, {:internal, message}}`, with the VM and the runtime still fine.
#[rustler::nif(schedule = "DirtyIo")]
fn test_panic_in_call<'a>(env: Env<'a>) -> Term<'a> {
    let result = block_on(|| async {
        if std::hint::black_box(true) {
            panic!("test panic in a store call");
        }
    });
    reply(env, result.map(|()| ok().encode(env)))
}

/// Test hook: a store-call future whose poll uses about `kib` KiB of stack,
/// more than a dirty scheduler thread has; returns `{:ok, kib}`.
#[rustler::nif(schedule = "DirtyIo")]
fn test_deep_stack_in_call<'a>(env: Env<'a>, kib: Term<'a>) -> Term<'a> {
    let result = (|| {
        let kib = usize_arg(kib, "kib")?;
        if kib > (WORKER_STACK_BYTES >> 10) / 2 {
            return Err(invalid("kib must be at most half the worker stack"));
        }
        let levels = block_on(move || async move { use_stack(kib / 16) })?;
        if levels != (kib / 16) as u64 + 1 {
            return Err(Error::new(ErrorKind::Internal, "use_stack miscounted"));
        }
        Ok(kib.encode(env))
    })();
    reply(env, result)
}

/// Recursion with a 16 KiB frame per level.
#[inline(never)]
fn use_stack(levels: usize) -> u64 {
    let mut frame = [0u8; 16 * 1024];
    frame[levels % frame.len()] = 1;
    // Through a reference: the frame stays in memory, and is not copied.
    let frame = std::hint::black_box(&frame);
    let here = u64::from(frame[levels % frame.len()]);
    if levels == 0 {
        here
    } else {
        use_stack(levels - 1) + here
    }
}

#[rustler::nif]
fn core_version<'a>(env: Env<'a>) -> Term<'a> {
    mss_core::VERSION.encode(env)
}

#[rustler::nif]
fn error_kinds<'a>(env: Env<'a>) -> Term<'a> {
    let kinds: Vec<Term<'a>> = ErrorKind::ALL
        .iter()
        .map(|k| {
            Atom::from_str(env, k.code()).map_or_else(|_| k.code().encode(env), |a| a.encode(env))
        })
        .collect();
    kinds.encode(env)
}

rustler::init!("Elixir.McpSessionStore.Native");
