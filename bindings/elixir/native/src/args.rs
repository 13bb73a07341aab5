//! Decoding of NIF arguments from raw terms: strings, integers, durations,
//! option lists, cursors and store handles. Bad input of any type is an
//! `InvalidInput` error, never a `badarg`.

use std::time::Duration;

use mss_core::{Error, ErrorKind, EventId, Store};
use rustler::{Atom, ResourceArc, Term, TermType};

use crate::json::{atom_name, describe, invalid, utf8};
use crate::store::StoreResource;

pub(crate) fn store_arg(term: Term) -> Result<Store, Error> {
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

pub(crate) fn string_arg(term: Term, what: &str) -> Result<String, Error> {
    utf8(term, what)
}

pub(crate) fn opt_string_arg(term: Term, what: &str) -> Result<Option<String>, Error> {
    if is_nil(term) {
        Ok(None)
    } else {
        string_arg(term, what).map(Some)
    }
}

pub(crate) fn is_nil(term: Term) -> bool {
    atom_name(term).as_deref() == Some("nil")
}

pub(crate) fn u64_arg(term: Term, what: &str) -> Result<u64, Error> {
    if term.get_type() != TermType::Integer {
        return Err(invalid(format!(
            "{what} must be a non-negative integer, got {}",
            describe(term)
        )));
    }
    term.decode::<u64>()
        .map_err(|_| invalid(format!("{what} must be a non-negative 64-bit integer")))
}

pub(crate) fn usize_arg(term: Term, what: &str) -> Result<usize, Error> {
    let n = u64_arg(term, what)?;
    usize::try_from(n).map_err(|_| invalid(format!("{what} is too large")))
}

/// A page size: `:default` (the caller gave none) for the core's default
/// page limit (100), else an integer checked to be 1-10 000.
pub(crate) fn limit_arg(term: Term) -> Result<usize, Error> {
    if atom_name(term).as_deref() == Some("default") {
        return mss_bridge::limits::page_limit(None);
    }
    mss_bridge::limits::page_limit(Some(u64_arg(term, "limit")?))
}

/// A duration: milliseconds as an integer, or a string with a unit
/// (`"500ms"`, `"30s"`, `"30m"`, `"2h"`, `"7d"`).
pub(crate) fn duration_arg(term: Term, what: &str) -> Result<Duration, Error> {
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
pub(crate) fn options_arg<'a>(
    term: Term<'a>,
    what: &str,
) -> Result<Vec<(String, Term<'a>)>, Error> {
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

pub(crate) fn unknown_option(what: &str, name: &str, known: &str) -> Error {
    invalid(format!("unknown {what} option :{name} (known: {known})"))
}

/// A cursor: `%McpSessionStore.EventId{stream_id: s, seq: n}`, any map with
/// those keys, or a `{stream_id, seq}` tuple.
pub(crate) fn cursor_arg(term: Term) -> Result<EventId, Error> {
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
