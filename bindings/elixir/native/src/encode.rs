//! Encoding of results as terms: `{:ok, value}` / `{:error, {kind,
//! message}}` replies and the `McpSessionStore.*` structs (sessions, state
//! entries, events, pages, stats) built from the core's types.

use mss_core::{CleanupStats, Error, Event, EventId, Page, Session, StateEntry};
use rustler::{Atom, Encoder, Env, Term};

use crate::{error, json, ok};

pub(crate) fn reply<'a>(env: Env<'a>, result: Result<Term<'a>, Error>) -> Term<'a> {
    match result {
        Ok(value) => (ok(), value).encode(env),
        Err(e) => error_term(env, &e),
    }
}

pub(crate) fn error_term<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    let kind = Atom::from_str(env, e.code())
        .map(|a| a.encode(env))
        .unwrap_or_else(|_| e.code().encode(env));
    (error(), (kind, e.message())).encode(env)
}

/// Struct modules and field names, created once when the NIF loads.
pub(crate) mod keys {
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

pub(crate) fn make_struct<'a>(env: Env<'a>, module: Atom, fields: &[(Atom, Term<'a>)]) -> Term<'a> {
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

pub(crate) fn session_term<'a>(env: Env<'a>, s: &Session) -> Term<'a> {
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

pub(crate) fn entry_term<'a>(env: Env<'a>, e: &StateEntry) -> Term<'a> {
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

pub(crate) fn event_term<'a>(env: Env<'a>, e: &Event) -> Term<'a> {
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

pub(crate) fn page_term<'a, T>(
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

pub(crate) fn cleanup_term<'a>(env: Env<'a>, c: &CleanupStats) -> Term<'a> {
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

pub(crate) fn event_id_term<'a>(env: Env<'a>, id: &EventId) -> Term<'a> {
    make_struct(
        env,
        keys::module_event_id(),
        &[
            (keys::stream_id(), id.stream_id.encode(env)),
            (keys::seq(), id.seq.encode(env)),
        ],
    )
}
