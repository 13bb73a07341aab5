//! The store handle and its calls: open and close, sessions, state and
//! events. Every call that does I/O is a `DirtyIo` NIF that runs the store's
//! future on the bridge's runtime (`block_on`); open options go through the
//! bridge's one options parser, page sizes through its limits.

use mss_bridge::options::{DurationUnit, OpenOptions};
use mss_core::{Error, NewEvent, NewSession, Store};
use rustler::{Encoder, Env, Resource, ResourceArc, Term};
use serde_json::Value;

use crate::args::{
    cursor_arg, duration_arg, is_nil, limit_arg, opt_string_arg, options_arg, store_arg,
    string_arg, u64_arg, unknown_option,
};
use crate::encode::{entry_term, event_term, page_term, reply, session_term};
use crate::json::{self, atom_name, invalid};
use crate::ok;
use crate::runtime::{block_on, spawn};

/// An open store.
pub struct StoreResource {
    pub(crate) store: Option<Store>,
}

#[rustler::resource_impl]
impl Resource for StoreResource {}

impl Drop for StoreResource {
    fn drop(&mut self) {
        // The BEAM garbage collector drops resources on a scheduler thread:
        // hand the last reference to the runtime, where backends may spawn
        // their shutdown work.
        if let Some(store) = self.store.take() {
            // Fails only if the runtime cannot start: then drop it here.
            let _ = spawn(async move { drop(store) });
        }
    }
}

// ---- store -----------------------------------------------------------------

#[rustler::nif(schedule = "DirtyIo")]
fn open<'a>(env: Env<'a>, url: Term<'a>, opts: Term<'a>) -> Term<'a> {
    let result = (|| {
        let url = string_arg(url, "store URL")?;
        // A keyword list or a map with atom keys: (name, JSON value) pairs
        // for the bridge's one options parser (bare durations in ms).
        let pairs = options_arg(opts, "open")?
            .into_iter()
            .map(|(name, value)| {
                let value = json::term_to_value(value, &format!("option {name}"))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let options =
            OpenOptions::from_pairs(pairs, DurationUnit::Milliseconds)?.to_store_options();
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
        let limit = limit_arg(limit)?;
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
        let limit = limit_arg(limit)?;
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
        let limit = limit_arg(limit)?;
        let page = block_on(move || async move { store.replay(&id, &wire, limit).await })??;
        Ok(page_term(env, &page, event_term))
    })();
    reply(env, result)
}
