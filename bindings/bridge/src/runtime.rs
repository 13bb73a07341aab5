//! The one tokio runtime of the process, and the ways a binding runs a store
//! call on it.
//!
//! The runtime is built on first use. Its worker threads have
//! [`WORKER_STACK_BYTES`] of stack: the store's futures (above all the AWS
//! SDK's, behind the DynamoDB backend) need far more stack than a language
//! runtime's threads have (musl's 128 KiB default, a BEAM dirty scheduler, a
//! libuv thread), so they are polled only there:
//!
//! - [`call_blocking`] / [`call_blocking_with`] block the calling thread
//!   until the call is done (C, Elixir, Python's blocking API);
//! - [`call`] is the same as a future, for a binding whose own async layer
//!   awaits it (Node, Python's awaitables);
//! - [`spawn`] starts background work (subscription forwarders, drops);
//! - [`poll_once`] is the one exception: a first poll on the caller's thread,
//!   only when that thread has [`POLL_ONCE_RED_ZONE`] of stack left, so a
//!   call that needs no I/O skips the round trip to a worker;
//!   [`call_blocking_fast`] is [`poll_once`] then [`call_blocking`] (C,
//!   Python).
//!
//! A panic inside a call becomes an [`ErrorKind::Internal`] error;
//! [`catch_panic`] does the same for synchronous entry points.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use mss_core::{Error, ErrorKind, Result};
use tokio::runtime::{Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// Stack size of every worker thread of the runtime.
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// Name of the runtime's worker threads.
pub const WORKER_THREAD_NAME: &str = "mss-worker";

/// Stack a first poll may need on the caller's thread (the AWS SDK's futures
/// need up to about 768 KiB in a debug build): [`poll_once`] polls only when
/// at least this much is left.
pub const POLL_ONCE_RED_ZONE: usize = 1 << 20;

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The runtime, built on first use: one worker per core (at least two),
/// each with a [`WORKER_STACK_BYTES`] stack, I/O and timers enabled.
/// `Internal` if it cannot be built (then every later call fails the same
/// way).
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(WORKER_THREAD_NAME)
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

/// A handle to the runtime (see [`runtime`]).
pub fn handle() -> Result<&'static Handle> {
    runtime().map(Runtime::handle)
}

/// Start `future` as a task on the runtime. Await the handle with
/// [`join`] to turn a panic into an `Internal` error.
pub fn spawn<F>(future: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(runtime()?.spawn(future))
}

/// Wait for a task started by [`spawn`]; a panic in it (or its
/// cancellation) is an `Internal` error.
pub async fn join<T>(task: JoinHandle<T>) -> Result<T> {
    task.await.map_err(join_error)
}

/// Run `future` on a worker thread and wait for it asynchronously: the
/// caller's executor (napi's, asyncio's through pyo3) only waits, the store's
/// future is polled on the runtime. A panic is an `Internal` error.
pub async fn call<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    join(spawn(future)?).await
}

/// Run `future` on a worker thread and block the calling thread until it is
/// done. A panic in the future is an `Internal` error ("the store call
/// panicked: …").
///
/// The calling thread only waits: the future is never polled on its stack.
/// Refused with `Internal` when called from inside a tokio runtime (a
/// blocked worker could deadlock the runtime): call it from a plain thread.
pub fn call_blocking<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorKind::Internal,
            "a blocking store call was made from inside a tokio runtime: make it from a plain thread",
        ));
    }
    let runtime = runtime()?;
    let task = runtime.spawn(future);
    runtime.block_on(task).map_err(join_error)
}

/// [`call_blocking`] with a fast path: the future is first polled once on
/// the calling thread ([`poll_once`]: only when the thread has at least
/// [`POLL_ONCE_RED_ZONE`] of stack left), so a call that needs no I/O (most
/// calls on `memory://`) finishes without a hop to a worker; a call still
/// pending then finishes on a worker while the caller waits. The caller's
/// stack never runs the rest of the call, and never any of it when it is
/// small.
pub fn call_blocking_fast<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if Handle::try_current().is_ok() {
        return call_blocking(future);
    }
    let mut future = Box::pin(future);
    match poll_once(&mut future)? {
        Some(output) => Ok(output),
        None => call_blocking(future),
    }
}

/// [`call_blocking`] with the future built on the worker thread by `make`,
/// so even its construction never touches the caller's stack (and the task
/// stays small whatever the future's size: it is boxed there).
pub fn call_blocking_with<M, Fut>(make: M) -> Result<Fut::Output>
where
    M: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
    Fut: Send,
{
    call_blocking(async move { Box::pin(make()).await })
}

/// Poll `future` once on the calling thread, inside the runtime's context,
/// with a no-op waker: `Ok(Some(output))` if it finished, `Ok(None)` if it is
/// pending or was not polled because the thread has less than
/// [`POLL_ONCE_RED_ZONE`] of stack left (or its stack size is unknown). On
/// `Ok(None)` hand the future to [`call`] / [`spawn`]: futures re-register
/// their waker on every poll, so moving it to the runtime is sound.
///
/// A panic while polling is an `Internal` error; the future must then be
/// dropped, not polled again.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Result<Option<F::Output>> {
    if stacker::remaining_stack().is_none_or(|left| left < POLL_ONCE_RED_ZONE) {
        return Ok(None);
    }
    let runtime = runtime()?;
    let _context = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    match catch_unwind(AssertUnwindSafe(|| Pin::new(future).poll(&mut cx))) {
        Ok(Poll::Ready(output)) => Ok(Some(output)),
        Ok(Poll::Pending) => Ok(None),
        Err(payload) => Err(panicked(&*payload)),
    }
}

/// Run the synchronous `f` behind a panic boundary: a panic is an `Internal`
/// error ("internal error (caught panic): …").
pub fn catch_panic<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T>,
{
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::new(
            ErrorKind::Internal,
            format!(
                "internal error (caught panic): {}",
                panic_message(&*payload)
            ),
        ))
    })
}

/// The message of a panic payload (`panic!("…")` carries a `&str` or a
/// `String`); "no message" otherwise.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

fn panicked(payload: &(dyn Any + Send)) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("the store call panicked: {}", panic_message(payload)),
    )
}

fn join_error(e: JoinError) -> Error {
    match e.try_into_panic() {
        Ok(payload) => panicked(&*payload),
        Err(_) => Error::new(
            ErrorKind::Internal,
            "the store call was cancelled before it finished (runtime shutting down)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[test]
    fn call_blocking_runs_on_a_worker_and_returns_the_output() {
        let caller = std::thread::current().id();
        let (name, id) = call_blocking(async { (thread_name(), std::thread::current().id()) })
            .expect("the call runs");
        assert_eq!(name, WORKER_THREAD_NAME);
        assert_ne!(id, caller, "never on the caller's thread");
    }

    #[test]
    fn call_blocking_with_builds_the_future_on_a_worker() {
        let name = call_blocking_with(|| {
            let built_on = thread_name();
            async move { built_on }
        })
        .unwrap();
        assert_eq!(name, WORKER_THREAD_NAME);
    }

    #[test]
    fn call_blocking_fast_finishes_a_ready_call_on_the_caller() {
        // A test thread has 2 MiB of stack by default: above the red zone.
        let caller = std::thread::current().id();
        let id = call_blocking_fast(async { std::thread::current().id() }).unwrap();
        assert_eq!(id, caller);
    }

    #[test]
    fn call_blocking_fast_finishes_a_pending_call_on_a_worker() {
        let name = call_blocking_fast(async {
            tokio::task::yield_now().await;
            thread_name()
        })
        .unwrap();
        assert_eq!(name, WORKER_THREAD_NAME);
    }

    #[test]
    fn call_blocking_fast_never_polls_on_a_small_stack() {
        let caller = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let caller = std::thread::current().id();
                let ran_on = call_blocking_fast(async { std::thread::current().id() }).unwrap();
                (caller, ran_on)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_ne!(
            caller.0, caller.1,
            "a 256 KiB thread hands the call to a worker"
        );
    }

    #[test]
    fn a_panic_in_a_fast_call_is_internal() {
        let e = call_blocking_fast(async { panic!("test panic on the fast path") }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.message().contains("test panic on the fast path"));
    }

    /// Uses about `depth` * 64 KiB of stack.
    fn use_stack(depth: u32) -> u64 {
        let buf = std::hint::black_box([1u8; 64 << 10]);
        let here = u64::from(buf[usize::try_from(depth).unwrap_or(0) % buf.len()]);
        if depth == 0 {
            here
        } else {
            here + std::hint::black_box(use_stack(depth - 1))
        }
    }

    #[test]
    fn worker_threads_have_large_stacks() {
        // About 3 MiB: more than a test thread's or a language runtime's
        // thread has.
        let sum = call_blocking(async { use_stack(48) }).unwrap();
        assert_eq!(sum, 49);
    }

    #[test]
    fn a_panic_in_a_call_is_internal_with_its_message() {
        let e = call_blocking(async { panic!("test panic in a store call") }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(
            e.message().contains("panicked: test panic in a store call"),
            "{}",
            e.message()
        );
        // The runtime survives.
        assert_eq!(call_blocking(async { 7 }).unwrap(), 7);
    }

    #[test]
    fn call_blocking_is_refused_inside_a_runtime() {
        let e = call_blocking(async { call_blocking(async { 1 }) })
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.message().contains("inside a tokio runtime"));
    }

    #[test]
    fn call_and_spawn_run_on_workers() {
        let name = call_blocking(async { call(async { thread_name() }).await }).unwrap();
        assert_eq!(name.unwrap(), WORKER_THREAD_NAME);
        let task = spawn(async { thread_name() }).unwrap();
        let name = call_blocking(join(task)).unwrap().unwrap();
        assert_eq!(name, WORKER_THREAD_NAME);
        let e = call_blocking(call(async { panic!("in call") }))
            .unwrap()
            .unwrap_err();
        assert!(e.message().contains("panicked: in call"));
    }

    #[test]
    fn poll_once_finishes_ready_futures_on_the_caller() {
        let run = || {
            std::thread::Builder::new()
                .name("caller".to_owned())
                .stack_size(16 << 20)
        };
        let ready = run()
            .spawn(|| poll_once(&mut Box::pin(async { thread_name() })))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ready.unwrap().as_deref(), Some("caller"));
        // Pending: not ready at the first poll, handed back.
        let pending = run()
            .spawn(|| {
                let mut f = Box::pin(async {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                });
                poll_once(&mut f).map(|o| o.is_some())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!pending.unwrap());
        // A panic is an error.
        let e = run()
            .spawn(|| poll_once(&mut Box::pin(async { panic!("first poll") })))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.message().contains("first poll"));
    }

    #[test]
    fn poll_once_does_not_poll_on_a_small_stack() {
        let polled = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| poll_once(&mut Box::pin(async { 1 })).map(|o| o.is_some()))
            .unwrap()
            .join()
            .unwrap();
        assert!(!polled.unwrap());
    }

    #[test]
    fn catch_panic_turns_a_panic_into_internal() {
        let e = catch_panic::<(), _>(|| panic!("boom")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.message(), "internal error (caught panic): boom");
        let e = catch_panic::<(), _>(|| std::panic::panic_any(42)).unwrap_err();
        assert!(e.message().ends_with("no message"));
        assert_eq!(catch_panic(|| Ok(3)).unwrap(), 3);
    }

    #[test]
    fn handle_is_the_one_runtime() {
        let a = handle().unwrap();
        let b = handle().unwrap();
        assert!(std::ptr::eq(a, b));
        assert!(std::ptr::eq(runtime().unwrap(), runtime().unwrap()));
    }

    #[test]
    fn a_store_call_runs_through_call_blocking() {
        let store = call_blocking(mss_core::Store::open("memory://"))
            .unwrap()
            .unwrap();
        let s = store.clone();
        let session =
            call_blocking(async move { s.create_session(mss_core::NewSession::new()).await })
                .unwrap()
                .unwrap();
        let s = store.clone();
        let id = session.id.clone();
        let got = call_blocking(async move { s.get_session(&id).await })
            .unwrap()
            .unwrap();
        assert_eq!(got.map(|g| g.id), Some(session.id));
    }
}
