//! Elixir terms <-> JSON values.
//!
//! Maps, lists, strings (UTF-8 binaries), integers, floats, `true`, `false`
//! and `nil` cross as JSON. Map keys may be strings or atoms (atoms become
//! strings); other atoms as values become strings, as `Jason` does. A PID,
//! port, reference, function, tuple, struct, improper list, non-UTF-8 binary
//! or an integer outside the 64-bit range is `InvalidInput`.

use mss_core::{Error, ErrorKind};
use rustler::{Encoder, Env, Term, TermType};
use serde_json::{Map, Number, Value};

/// Deepest nesting of lists and maps accepted: the core's limit (what
/// `serde_json`'s parser reads back), so every value stored can be read back.
pub const MAX_DEPTH: usize = mss_bridge::limits::MAX_JSON_DEPTH;

pub fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, message.into())
}

/// A short name of a term's type, for error messages.
pub fn describe(term: Term) -> &'static str {
    match term.get_type() {
        TermType::Atom => "an atom",
        TermType::Binary => "a binary",
        TermType::Fun => "a function",
        TermType::List => "a list",
        TermType::Map => "a map",
        TermType::Integer => "an integer",
        TermType::Float => "a float",
        TermType::Pid => "a PID",
        TermType::Port => "a port",
        TermType::Ref => "a reference",
        TermType::Tuple => "a tuple",
        TermType::Unknown => "an unsupported term",
    }
}

/// The text of an atom.
pub fn atom_name(term: Term) -> Option<String> {
    if !term.is_atom() {
        return None;
    }
    term.atom_to_string().ok()
}

/// A UTF-8 binary as a string.
pub fn utf8(term: Term, what: &str) -> Result<String, Error> {
    if term.get_type() != TermType::Binary {
        return Err(invalid(format!(
            "{what} must be a string, got {}",
            describe(term)
        )));
    }
    let bin = rustler::Binary::from_term(term)
        .map_err(|_| invalid(format!("{what} must be a string")))?;
    std::str::from_utf8(bin.as_slice())
        .map(str::to_owned)
        .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// Any term that can be JSON, as a JSON value.
pub fn term_to_value(term: Term, what: &str) -> Result<Value, Error> {
    to_value(term, what)
}

/// A map, as a JSON object.
pub fn term_to_object(term: Term, what: &str) -> Result<Map<String, Value>, Error> {
    if term.get_type() != TermType::Map {
        return Err(invalid(format!(
            "{what} must be a map, got {}",
            describe(term)
        )));
    }
    match to_value(term, what)? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid(format!("{what} must be a map"))),
    }
}

/// One container being converted: the conversion walks the term with an
/// explicit stack, not recursion, because dirty schedulers run NIFs on small
/// stacks.
enum Frame<'a> {
    List {
        items: Vec<Value>,
        rest: Term<'a>,
    },
    Map {
        map: Map<String, Value>,
        /// Entries still to convert, last first.
        entries: Vec<(String, Term<'a>)>,
        key: Option<String>,
    },
}

fn to_value(term: Term, what: &str) -> Result<Value, Error> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut current = term;
    loop {
        // Descend into `current`: a scalar, or a new container frame.
        let mut value = match current.get_type() {
            TermType::List => {
                check_depth(&stack, what)?;
                stack.push(Frame::List {
                    items: Vec::new(),
                    rest: current,
                });
                None
            }
            TermType::Map => {
                check_depth(&stack, what)?;
                let mut entries = map_entries(current, what)?;
                entries.reverse();
                stack.push(Frame::Map {
                    map: Map::new(),
                    entries,
                    key: None,
                });
                None
            }
            _ => Some(scalar(current, what)?),
        };
        // Ascend: hand the finished value to its parent, then find the next
        // child to convert.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(value.unwrap_or(Value::Null));
            };
            if let Some(v) = value.take() {
                match frame {
                    Frame::List { items, .. } => items.push(v),
                    Frame::Map { map, key, .. } => {
                        let k = key.take().unwrap_or_default();
                        if map.contains_key(&k) {
                            return Err(invalid(format!(
                                "{what}: key {k:?} appears twice (as an atom and as a string)"
                            )));
                        }
                        map.insert(k, v);
                    }
                }
            }
            let next = match frame {
                Frame::List { rest, .. } => {
                    if rest.is_empty_list() {
                        None
                    } else {
                        let (head, tail) = rest.list_get_cell().map_err(|_| {
                            invalid(format!("{what}: improper lists cannot be JSON"))
                        })?;
                        *rest = tail;
                        Some(head)
                    }
                }
                Frame::Map { entries, key, .. } => entries.pop().map(|(k, t)| {
                    *key = Some(k);
                    t
                }),
            };
            match next {
                Some(child) => {
                    current = child;
                    break;
                }
                None => {
                    value = Some(match stack.pop() {
                        Some(Frame::List { items, .. }) => Value::Array(items),
                        Some(Frame::Map { map, .. }) => Value::Object(map),
                        None => Value::Null,
                    });
                }
            }
        }
    }
}

fn check_depth(stack: &[Frame], what: &str) -> Result<(), Error> {
    if stack.len() >= MAX_DEPTH {
        return Err(invalid(format!(
            "{what} is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// A map's entries with their keys as strings.
fn map_entries<'a>(term: Term<'a>, what: &str) -> Result<Vec<(String, Term<'a>)>, Error> {
    let iter = rustler::MapIterator::new(term)
        .ok_or_else(|| invalid(format!("{what}: unreadable map")))?;
    let mut entries = Vec::new();
    for (key, value) in iter {
        let key = match key.get_type() {
            TermType::Binary => utf8(key, &format!("a map key in {what}"))?,
            TermType::Atom => {
                let name = atom_name(key)
                    .ok_or_else(|| invalid(format!("{what}: unreadable atom key")))?;
                if name == "__struct__" {
                    return Err(invalid(format!(
                        "{what}: structs cannot be stored as JSON; convert to a plain map first"
                    )));
                }
                name
            }
            _ => {
                return Err(invalid(format!(
                    "{what}: map keys must be strings or atoms, got {}",
                    describe(key)
                )));
            }
        };
        entries.push((key, value));
    }
    Ok(entries)
}

fn scalar(term: Term, what: &str) -> Result<Value, Error> {
    match term.get_type() {
        TermType::Atom => {
            let name =
                atom_name(term).ok_or_else(|| invalid(format!("{what}: unreadable atom")))?;
            Ok(match name.as_str() {
                "nil" => Value::Null,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(name),
            })
        }
        TermType::Binary => utf8(term, what).map(Value::String),
        TermType::Integer => {
            if let Ok(i) = term.decode::<i64>() {
                Ok(Value::from(i))
            } else if let Ok(u) = term.decode::<u64>() {
                Ok(Value::from(u))
            } else {
                Err(invalid(format!(
                    "{what}: integer outside the 64-bit range cannot be stored as JSON"
                )))
            }
        }
        TermType::Float => {
            let f: f64 = term
                .decode()
                .map_err(|_| invalid(format!("{what}: unreadable float")))?;
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| invalid(format!("{what}: {f} is not a JSON number")))
        }
        _ => Err(invalid(format!(
            "{what}: {} cannot be stored as JSON",
            describe(term)
        ))),
    }
}

/// A JSON value as a term: objects become maps with string keys, `null`
/// becomes `nil`. Iterative, like the decoding.
pub fn value_to_term<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    enum Build<'v, 'a> {
        Array(std::slice::Iter<'v, Value>, Vec<Term<'a>>),
        Object(serde_json::map::Iter<'v>, Vec<Term<'a>>, Vec<Term<'a>>),
    }
    let mut stack: Vec<Build<'_, 'a>> = Vec::new();
    let mut current = value;
    loop {
        let mut done = match current {
            Value::Array(items) => {
                stack.push(Build::Array(items.iter(), Vec::with_capacity(items.len())));
                None
            }
            Value::Object(map) => {
                stack.push(Build::Object(
                    map.iter(),
                    Vec::with_capacity(map.len()),
                    Vec::with_capacity(map.len()),
                ));
                None
            }
            scalar => Some(scalar_term(env, scalar)),
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return done.unwrap_or_else(|| rustler::types::atom::nil().encode(env));
            };
            if let Some(term) = done.take() {
                match top {
                    Build::Array(_, out) => out.push(term),
                    Build::Object(_, _, values) => values.push(term),
                }
            }
            let next = match top {
                Build::Array(iter, _) => iter.next(),
                Build::Object(iter, keys, _) => iter.next().map(|(k, v)| {
                    keys.push(k.encode(env));
                    v
                }),
            };
            match next {
                Some(child) => {
                    current = child;
                    break;
                }
                None => {
                    done = Some(match stack.pop() {
                        Some(Build::Array(_, out)) => out.encode(env),
                        Some(Build::Object(_, keys, values)) => {
                            // Keys of a JSON object are unique, so this cannot
                            // fail; fall back to an empty map rather than panic.
                            Term::map_from_term_arrays(env, &keys, &values)
                                .unwrap_or_else(|_| Term::map_new(env))
                        }
                        None => rustler::types::atom::nil().encode(env),
                    });
                }
            }
        }
    }
}

fn scalar_term<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    match value {
        Value::Bool(b) => b.encode(env),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.encode(env)
            } else if let Some(u) = n.as_u64() {
                u.encode(env)
            } else {
                n.as_f64().unwrap_or(0.0).encode(env)
            }
        }
        Value::String(s) => s.encode(env),
        _ => rustler::types::atom::nil().encode(env),
    }
}

/// A JSON object as a map with string keys.
pub fn object_to_term<'a>(env: Env<'a>, map: &Map<String, Value>) -> Term<'a> {
    let keys: Vec<Term<'a>> = map.keys().map(|k| k.encode(env)).collect();
    let values: Vec<Term<'a>> = map.values().map(|v| value_to_term(env, v)).collect();
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
}
