//! [`OpenOptions`]: the one parser of the options a store is opened with,
//! for every binding.
//!
//! Each binding hands over what its language wrote as JSON-shaped data: C's
//! JSON text ([`OpenOptions::from_json`]), a Node object or a Python dict
//! converted to a [`serde_json::Value`] ([`OpenOptions::from_value`]), an
//! Elixir keyword list as (name, value) pairs ([`OpenOptions::from_pairs`]),
//! or anything serde can read (`OpenOptions: Deserialize`). One validation,
//! one conversion into [`StoreOptions`].
//!
//! Accepted names (camelCase forms for JavaScript):
//!
//! | setting | names | value |
//! |---|---|---|
//! | TTL | `ttl` | a duration: a bare number in the binding's [`DurationUnit`], or a string with a unit (`"500ms"`, `"90s"`, `"30m"`, `"2h"`, `"7d"`) |
//! | TTL | `ttl_ms` | milliseconds (an integer) |
//! | TTL | `ttlMs` | milliseconds (an integer), or a string with a unit |
//! | events kept per session | `max_events_per_session`, `maxEventsPerSession` | a non-negative integer |
//! | payload limit | `max_payload_bytes`, `maxPayloadBytes` | a non-negative integer |
//! | session limit | `max_sessions`, `maxSessions` | a non-negative integer |
//! | subscription poll interval | `poll_interval` | a duration, as `ttl` |
//! | subscription poll interval | `poll_interval_ms` | as `ttl_ms` |
//! | subscription poll interval | `pollIntervalMs` | as `ttlMs` |
//!
//! `null` (Python's `None`, Elixir's `nil`, JS `null`) leaves a setting at
//! its default. An unknown name, a value of the wrong type, a negative or
//! fractional count, and two names for one setting (`ttl` and `ttl_ms`) are
//! `InvalidInput` naming the option. Ranges (a TTL of 0, a payload limit
//! over 256 MiB, …) are checked by the core when the store opens, after
//! the URL's query parameters (which win) are applied.

use std::time::Duration;

use mss_core::{Error, Result, StoreOptions};

use crate::errors::invalid;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The unit of a bare number given for the durations `ttl` and
/// `poll_interval` (the `*_ms` names always take milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// Milliseconds, as integers: C, Node, Elixir.
    Milliseconds,
    /// Seconds, as integers or floats: Python.
    Seconds,
}

/// The options a store is opened with; `None` leaves the core's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Sliding session TTL.
    pub ttl: Option<Duration>,
    /// Events kept per session.
    pub max_events_per_session: Option<u64>,
    /// Largest JSON payload, in bytes.
    pub max_payload_bytes: Option<usize>,
    /// Most live sessions.
    pub max_sessions: Option<u64>,
    /// How often a subscription re-reads the log while waiting.
    pub poll_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Ttl,
    MaxEvents,
    MaxPayload,
    MaxSessions,
    PollInterval,
}

/// How a name takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A duration: a bare number in the binding's [`DurationUnit`], or a
    /// string with a unit (`ttl`, `poll_interval`).
    Duration,
    /// Integer milliseconds, or a string with a unit (Node's `ttlMs`,
    /// `pollIntervalMs`).
    MsOrString,
    /// Integer milliseconds only (C's `ttl_ms`, `poll_interval_ms`).
    Ms,
    /// A non-negative integer.
    Count,
}

/// Every accepted name, with the setting it sets and the form it takes.
const NAMES: [(&str, Setting, Form); 12] = [
    ("ttl", Setting::Ttl, Form::Duration),
    ("ttl_ms", Setting::Ttl, Form::Ms),
    ("ttlMs", Setting::Ttl, Form::MsOrString),
    ("max_events_per_session", Setting::MaxEvents, Form::Count),
    ("maxEventsPerSession", Setting::MaxEvents, Form::Count),
    ("max_payload_bytes", Setting::MaxPayload, Form::Count),
    ("maxPayloadBytes", Setting::MaxPayload, Form::Count),
    ("max_sessions", Setting::MaxSessions, Form::Count),
    ("maxSessions", Setting::MaxSessions, Form::Count),
    ("poll_interval", Setting::PollInterval, Form::Duration),
    ("poll_interval_ms", Setting::PollInterval, Form::Ms),
    ("pollIntervalMs", Setting::PollInterval, Form::MsOrString),
];

/// The largest integer a JavaScript number (a double) holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl OpenOptions {
    /// Every name [`OpenOptions`] accepts.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(name, _, _)| *name)
    }

    /// Parse a JSON object (C's `mss_store_open_with`). Bare durations are
    /// milliseconds.
    pub fn from_json(text: &str) -> Result<OpenOptions> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("options is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => OpenOptions::from_map(&map, DurationUnit::Milliseconds),
            other => Err(invalid(format!(
                "options has the wrong shape: expected a JSON object, got {}",
                describe(&other)
            ))),
        }
    }

    /// Parse a JSON object value (a Node object, a Python dict); `null` is
    /// no options.
    pub fn from_value(value: &Value, unit: DurationUnit) -> Result<OpenOptions> {
        match value {
            Value::Null => Ok(OpenOptions::default()),
            Value::Object(map) => OpenOptions::from_map(map, unit),
            other => Err(invalid(format!(
                "options must be an object, got {}",
                describe(other)
            ))),
        }
    }

    /// Parse a JSON object's entries.
    pub fn from_map(map: &Map<String, Value>, unit: DurationUnit) -> Result<OpenOptions> {
        OpenOptions::from_pairs(map.iter(), unit)
    }

    /// Parse (name, value) pairs, e.g. an Elixir keyword list. A name given
    /// twice: the later value wins; two names for one setting (`ttl` and
    /// `ttl_ms`) are `InvalidInput`.
    pub fn from_pairs<K, V, I>(pairs: I, unit: DurationUnit) -> Result<OpenOptions>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: std::borrow::Borrow<Value>,
    {
        let mut options = OpenOptions::default();
        // Which name set each setting so far.
        let mut set_by: Vec<(Setting, String)> = Vec::new();
        for (name, value) in pairs {
            let name = name.as_ref();
            let value = value.borrow();
            let Some(&(_, setting, form)) = NAMES.iter().find(|(n, _, _)| *n == name) else {
                return Err(unknown(name));
            };
            if let Some((_, other)) = set_by.iter().find(|(s, n)| *s == setting && n != name) {
                return Err(invalid(format!(
                    "options {other} and {name} set the same option: give only one"
                )));
            }
            set_by.push((setting, name.to_owned()));
            if value.is_null() {
                options.clear(setting);
                continue;
            }
            let (unit, strings) = match form {
                Form::Duration => (unit, true),
                Form::MsOrString => (DurationUnit::Milliseconds, true),
                Form::Ms | Form::Count => (DurationUnit::Milliseconds, false),
            };
            match setting {
                Setting::Ttl => options.ttl = Some(duration(name, value, unit, strings)?),
                Setting::PollInterval => {
                    options.poll_interval = Some(duration(name, value, unit, strings)?)
                }
                Setting::MaxEvents => options.max_events_per_session = Some(count(name, value)?),
                Setting::MaxSessions => options.max_sessions = Some(count(name, value)?),
                Setting::MaxPayload => {
                    let n = count(name, value)?;
                    options.max_payload_bytes = Some(
                        usize::try_from(n)
                            .map_err(|_| invalid(format!("option {name} is too large: {n}")))?,
                    );
                }
            }
        }
        Ok(options)
    }

    fn clear(&mut self, setting: Setting) {
        match setting {
            Setting::Ttl => self.ttl = None,
            Setting::MaxEvents => self.max_events_per_session = None,
            Setting::MaxPayload => self.max_payload_bytes = None,
            Setting::MaxSessions => self.max_sessions = None,
            Setting::PollInterval => self.poll_interval = None,
        }
    }

    /// These options over `base`: each one given replaces base's value.
    pub fn apply_to(&self, mut base: StoreOptions) -> StoreOptions {
        if let Some(ttl) = self.ttl {
            base = base.with_ttl(ttl);
        }
        if let Some(n) = self.max_events_per_session {
            base = base.with_max_events_per_session(n);
        }
        if let Some(n) = self.max_payload_bytes {
            base = base.with_max_payload_bytes(n);
        }
        if let Some(n) = self.max_sessions {
            base = base.with_max_sessions(Some(n));
        }
        if let Some(p) = self.poll_interval {
            base = base.with_poll_interval(p);
        }
        base
    }

    /// These options over the core's defaults, for `Store::open_with` (which
    /// applies the URL's parameters and checks the ranges).
    pub fn to_store_options(&self) -> StoreOptions {
        self.apply_to(StoreOptions::default())
    }
}

/// Reads a map with bare durations in milliseconds (as C, Node and Elixir
/// write them).
impl<'de> Deserialize<'de> for OpenOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        OpenOptions::from_map(&map, DurationUnit::Milliseconds)
            .map_err(|e| D::Error::custom(e.message()))
    }
}

fn unknown(name: &str) -> Error {
    let known: Vec<&str> = NAMES
        .iter()
        .filter(|(n, _, _)| !n.contains(char::is_uppercase))
        .map(|(n, _, _)| *n)
        .collect();
    invalid(format!(
        "unknown option {name:?} (known: {}, or their camelCase forms)",
        known.join(", ")
    ))
}

/// A short description of a value for messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("{head:?}…")
        }
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A non-negative integer given as a JavaScript number (a double): integral,
/// finite and at most 2^53 - 1. `InvalidInput` naming `name` otherwise.
pub fn whole_number(name: &str, n: f64) -> Result<u64> {
    if n.is_finite() && n >= 0.0 && n.trunc() == n && n <= MAX_SAFE_INTEGER {
        Ok(n as u64)
    } else {
        Err(invalid(format!(
            "{name} must be a non-negative integer, got {n}"
        )))
    }
}

fn count(name: &str, value: &Value) -> Result<u64> {
    let bad = || {
        invalid(format!(
            "option {name} must be a non-negative integer, got {}",
            describe(value)
        ))
    };
    let Value::Number(n) = value else {
        return Err(bad());
    };
    if let Some(n) = n.as_u64() {
        return Ok(n);
    }
    match n.as_f64() {
        // An integral float (JavaScript numbers are doubles).
        Some(f) if n.as_i64().is_none() => whole_number(name, f).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A duration: a number in `unit`, or (if `strings`) a string with a unit.
fn duration(name: &str, value: &Value, unit: DurationUnit, strings: bool) -> Result<Duration> {
    let bad = || {
        let number = match unit {
            DurationUnit::Milliseconds => "a non-negative integer number of milliseconds",
            DurationUnit::Seconds => "a finite, non-negative number of seconds",
        };
        let or_string = if strings {
            " or a duration such as \"30m\""
        } else {
            ""
        };
        invalid(format!(
            "option {name} must be {number}{or_string}, got {}",
            describe(value)
        ))
    };
    match value {
        Value::String(text) if strings => mss_core::parse_duration(text)
            .map_err(|e| invalid(format!("option {name}: {}", e.message()))),
        Value::Number(_) => match unit {
            DurationUnit::Milliseconds => count(name, value)
                .map(Duration::from_millis)
                .map_err(|_| bad()),
            DurationUnit::Seconds => value
                .as_f64()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(bad),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
