//! Expiry: `cleanup_expired` and the background sweeper handle (start,
//! stats, stop).

use std::sync::Mutex;

use mss_bridge::runtime::runtime;
use mss_core::{Error, ErrorKind, Sweeper};
use rustler::{Encoder, Env, Resource, ResourceArc, Term};

use crate::args::{duration_arg, store_arg};
use crate::encode::{cleanup_term, keys, make_struct, reply};
use crate::json::{describe, invalid};
use crate::runtime::block_on;

/// A running background expiry sweeper; it stops when stopped explicitly or
/// when the handle is garbage collected.
pub struct SweeperResource {
    sweeper: Mutex<Option<Sweeper>>,
}

#[rustler::resource_impl]
impl Resource for SweeperResource {}

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
