//! The NIF behind the Elixir module `McpSessionStore`.
//!
//! Every function that does I/O runs on a dirty I/O scheduler, hands its
//! work to a task on the bridge's runtime (`mss_bridge::runtime`, worker
//! threads with 8 MiB stacks) and waits for the result (the future never
//! runs on the scheduler's small stack); the store handle is a
//! `ResourceArc`. Arguments arrive as raw terms and are decoded here, so bad
//! input of any type becomes `{:error, {:invalid_input, message}}` instead of
//! a `badarg`. Results are `{:ok, value}` or `{:error, {kind, message}}` with
//! one atom per `ErrorKind`.
//!
//! - [`store`]: the store handle, sessions, state and events;
//! - [`subscription`]: live subscriptions that send events to a process;
//! - [`sweeper`]: expiry and the background sweeper;
//! - [`runtime`]: the blocking hand-off to the bridge's runtime;
//! - [`args`] and [`encode`]: terms in, terms out; [`json`]: JSON values.

#![deny(clippy::undocumented_unsafe_blocks)]

mod args;
mod encode;
mod json;
mod runtime;
mod store;
mod subscription;
mod sweeper;

use mss_core::EventId;
use rustler::{Atom, Encoder, Env, Term};

use crate::args::{string_arg, u64_arg};
use crate::encode::{event_id_term, reply};

rustler::atoms! {
    ok,
    error,
}

// ---- pure calls, on normal schedulers ----------------------------------------

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

#[rustler::nif]
fn core_version<'a>(env: Env<'a>) -> Term<'a> {
    mss_core::VERSION.encode(env)
}

#[rustler::nif]
fn error_kinds<'a>(env: Env<'a>) -> Term<'a> {
    let kinds: Vec<Term<'a>> = mss_bridge::errors::kinds()
        .iter()
        .map(|k| {
            Atom::from_str(env, k.code()).map_or_else(|_| k.code().encode(env), |a| a.encode(env))
        })
        .collect();
    kinds.encode(env)
}

rustler::init!("Elixir.McpSessionStore.Native");
