//! How a NIF runs a store call: [`block_on`] hands it from the dirty
//! scheduler thread to the bridge's runtime (`mss_bridge::runtime`, worker
//! threads with 8 MiB stacks) and waits; the test hooks that check it (a
//! panic becomes `Internal`, deep stacks fit, every call is on a dirty
//! scheduler).

use std::future::Future;

use mss_bridge::runtime::WORKER_STACK_BYTES;
use mss_core::{Error, ErrorKind};
use rustler::{Atom, Encoder, Env, Term};

use crate::args::usize_arg;
use crate::encode::reply;
use crate::json::invalid;
use crate::ok;

pub(crate) use mss_bridge::runtime::spawn;

/// Run the future that `make` builds on the bridge's runtime and block the
/// calling dirty scheduler thread until it is done.
///
/// The future is built and polled on a runtime worker thread (its stack is
/// [`WORKER_STACK_BYTES`]), so neither its size nor the depth of its poll
/// reaches the scheduler's stack; the arguments are owned data moved into
/// `make`. A panic in the future comes back as an `Internal` error ("the
/// store call panicked: …").
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
    mss_bridge::runtime::call_blocking_with(make)
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
