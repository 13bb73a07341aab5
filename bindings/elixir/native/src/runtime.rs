//! The tokio runtime every store call runs on, and `block_on`, which hands
//! a call from a dirty scheduler thread to it and waits; the test hooks that
//! check both (a panic becomes `Internal`, deep stacks fit).

use std::future::Future;
use std::sync::OnceLock;

use mss_core::{Error, ErrorKind};
use rustler::{Atom, Encoder, Env, Term};

use crate::args::usize_arg;
use crate::encode::reply;
use crate::json::invalid;
use crate::ok;

/// Stack size of the runtime's worker threads. Every store future is polled
/// there, never on a BEAM scheduler's thread: the AWS SDK's futures (the
/// DynamoDB backend) need far more stack than a dirty scheduler thread has
/// (a few hundred KiB), and overflowing it kills the whole VM.
const WORKER_STACK_BYTES: usize = 8 << 20;

pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
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
pub(crate) fn block_on<T, Fut, Make>(make: Make) -> Result<T, Error>
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
