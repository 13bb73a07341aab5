//! JSON conversion between JS values and the store's JSON, done here in Rust.
//!
//! JS → JSON follows `JSON.stringify` where it is well defined (a `toJSON`
//! method is called, so a `Date` becomes its ISO string; object properties
//! holding `undefined`, a function or a symbol are left out; in arrays they
//! become `null`) and refuses what `JSON.stringify` would silently change or
//! cannot encode: `NaN` and `±Infinity`, `BigInt`, and `undefined`, a
//! function or a symbol as the value itself. Cycles and nesting deeper than
//! [`MAX_DEPTH`] are refused instead of overflowing the stack.
//!
//! JSON → JS gives what `JSON.parse` gives: plain objects, arrays, strings,
//! booleans, `null` and numbers (integers beyond 2^53 lose precision, as
//! with `JSON.parse`; never a `BigInt`).

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{Error, Result, Status, ValueType, sys};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted: the core's limit, what every stored value can
/// be read back with.
pub const MAX_DEPTH: usize = mss_bridge::limits::MAX_JSON_DEPTH;
/// Most values in one conversion (a shared sub-object counts each time).
const MAX_NODES: usize = 10_000_000;

/// A JS value converted to JSON on the way in.
pub struct JsonIn(pub Value);

/// JSON converted to a JS value on the way out.
pub struct JsonOut(pub Value);

fn invalid(path: &str, what: impl std::fmt::Display) -> Error {
    Error::new(
        Status::InvalidArg,
        format!("invalid_input: value at ${path} cannot be stored as JSON: {what}"),
    )
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            format!("internal: N-API call failed: {what}"),
        ))
    }
}

fn type_of(env: sys::napi_env, v: sys::napi_value) -> Result<ValueType> {
    let mut t = 0;
    // SAFETY: `env` and `v` are the live handles napi-rs passed in for this call on the JS
    // thread; `t` is a local out-parameter.
    check(unsafe { sys::napi_typeof(env, v, &mut t) }, "typeof")?;
    Ok(ValueType::from(t))
}

struct Reader {
    env: sys::napi_env,
    nodes: usize,
    /// Objects on the path from the root: a repeat is a cycle.
    stack: Vec<sys::napi_value>,
}

impl Reader {
    fn strict_equals(&self, a: sys::napi_value, b: sys::napi_value) -> Result<bool> {
        let mut eq = false;
        check(
            // SAFETY: both values are live handles of this call's scope on the JS thread; `eq`
            // is a local out-parameter.
            unsafe { sys::napi_strict_equals(self.env, a, b, &mut eq) },
            "strict_equals",
        )?;
        Ok(eq)
    }

    /// `Ok(None)`: a value `JSON.stringify` leaves out (undefined, function,
    /// symbol).
    fn read(&mut self, v: sys::napi_value, path: &mut String) -> Result<Option<Value>> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(invalid(path, "more than 10 000 000 values"));
        }
        let env = self.env;
        match type_of(env, v)? {
            ValueType::Null => Ok(Some(Value::Null)),
            // SAFETY: `v` is a live handle of this call's scope, checked to be a boolean just
            // above.
            ValueType::Boolean => Ok(Some(Value::Bool(unsafe { bool::from_napi_value(env, v)? }))),
            // SAFETY: `v` is a live handle of this call's scope, checked to be a string just
            // above.
            ValueType::String => Ok(Some(Value::String(unsafe {
                String::from_napi_value(env, v)?
            }))),
            ValueType::Number => {
                // SAFETY: `v` is a live handle of this call's scope, checked to be a number
                // just above.
                let n = unsafe { f64::from_napi_value(env, v)? };
                number(n).map(|n| Some(Value::Number(n))).ok_or_else(|| {
                    invalid(
                        path,
                        format!("{n} is not a finite number (JSON has no NaN or Infinity)"),
                    )
                })
            }
            ValueType::BigInt => Err(invalid(
                path,
                "a BigInt (convert it to a number or a string first)",
            )),
            ValueType::Undefined | ValueType::Function | ValueType::Symbol => Ok(None),
            ValueType::Object => self.read_object(v, path).map(Some),
            other => Err(invalid(path, format!("a JS {other:?} value"))),
        }
    }

    fn read_object(&mut self, v: sys::napi_value, path: &mut String) -> Result<Value> {
        let env = self.env;
        if self.stack.len() >= MAX_DEPTH {
            return Err(invalid(
                path,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        for &seen in &self.stack {
            if self.strict_equals(seen, v)? {
                return Err(invalid(path, "a cycle (the object contains itself)"));
            }
        }
        // toJSON, as JSON.stringify calls it (Date, and user classes).
        let mut to_json = ptr::null_mut();
        check(
            // SAFETY: `v` is a live object handle of this call's scope, the name a
            // NUL-terminated literal, `to_json` a local out-parameter.
            unsafe { sys::napi_get_named_property(env, v, c"toJSON".as_ptr(), &mut to_json) },
            "get toJSON",
        )?;
        if type_of(env, to_json)? == ValueType::Function {
            let mut out = ptr::null_mut();
            let status =
                // SAFETY: `to_json` was checked to be a function of the live object `v`; it is
                // called with no arguments (a null argv with argc 0) and `out` is a local
                // out-parameter.
                unsafe { sys::napi_call_function(env, v, to_json, 0, ptr::null(), &mut out) };
            if status != sys::Status::napi_ok {
                let mut exc = ptr::null_mut();
                // SAFETY: clears the exception the failed call left pending in this live `env`;
                // `exc` is a local out-parameter.
                unsafe { sys::napi_get_and_clear_last_exception(env, &mut exc) };
                return Err(invalid(path, "its toJSON() method threw"));
            }
            self.stack.push(v);
            let r = self.read(out, path);
            self.stack.pop();
            return match r? {
                Some(value) => Ok(value),
                None => Err(invalid(path, "its toJSON() returned no JSON value")),
            };
        }

        let mut is_array = false;
        check(
            // SAFETY: `v` is a live object handle of this call's scope; `is_array` is a local
            // out-parameter.
            unsafe { sys::napi_is_array(env, v, &mut is_array) },
            "is_array",
        )?;
        self.stack.push(v);
        let result = if is_array {
            self.read_array(v, path)
        } else {
            self.read_map(v, path)
        };
        self.stack.pop();
        result
    }

    fn read_array(&mut self, v: sys::napi_value, path: &mut String) -> Result<Value> {
        let env = self.env;
        let mut len = 0u32;
        check(
            // SAFETY: `v` was checked to be an array; `len` is a local out-parameter.
            unsafe { sys::napi_get_array_length(env, v, &mut len) },
            "array length",
        )?;
        let mut items = Vec::with_capacity(len.min(1 << 16) as usize);
        for i in 0..len {
            let mut item = ptr::null_mut();
            check(
                // SAFETY: `v` is a live array handle and `i` is below its length; `item` is a
                // local out-parameter.
                unsafe { sys::napi_get_element(env, v, i, &mut item) },
                "array element",
            )?;
            let mark = path.len();
            path.push_str(&format!("[{i}]"));
            let value = self.read(item, path)?;
            path.truncate(mark);
            items.push(value.unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn read_map(&mut self, v: sys::napi_value, path: &mut String) -> Result<Value> {
        let env = self.env;
        let mut keys = ptr::null_mut();
        check(
            // SAFETY: `v` is a live object handle of this call's scope; the flags are napi
            // constants and `keys` a local out-parameter.
            unsafe {
                sys::napi_get_all_property_names(
                    env,
                    v,
                    sys::KeyCollectionMode::own_only,
                    sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                    sys::KeyConversion::numbers_to_strings,
                    &mut keys,
                )
            },
            "property names",
        )?;
        let mut len = 0u32;
        check(
            // SAFETY: `keys` is the array napi returned just above; `len` is a local
            // out-parameter.
            unsafe { sys::napi_get_array_length(env, keys, &mut len) },
            "key count",
        )?;
        let mut map = Map::new();
        for i in 0..len {
            let mut key = ptr::null_mut();
            check(
                // SAFETY: `keys` is a live array handle and `i` is below its length; `key` is a
                // local out-parameter.
                unsafe { sys::napi_get_element(env, keys, i, &mut key) },
                "key",
            )?;
            // SAFETY: `key` is a live string handle (napi converts the property names to
            // strings).
            let name = unsafe { String::from_napi_value(env, key)? };
            let mut item = ptr::null_mut();
            check(
                // SAFETY: `v` is a live object handle and `key` one of its own property names;
                // `item` is a local out-parameter.
                unsafe { sys::napi_get_property(env, v, key, &mut item) },
                "property",
            )?;
            let mark = path.len();
            path.push('.');
            path.push_str(&name);
            let value = self.read(item, path)?;
            path.truncate(mark);
            if let Some(value) = value {
                map.insert(name, value);
            }
        }
        Ok(Value::Object(map))
    }
}

/// A JS number as JSON: integers up to 2^53 stay integers.
fn number(n: f64) -> Option<Number> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    if n.is_finite() && n.trunc() == n && n.abs() <= SAFE {
        Some(Number::from(n as i64))
    } else {
        Number::from_f64(n)
    }
}

impl FromNapiValue for JsonIn {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
        let mut reader = Reader {
            env,
            nodes: 0,
            stack: Vec::new(),
        };
        let mut path = String::new();
        match reader.read(v, &mut path)? {
            Some(value) => Ok(JsonIn(value)),
            None => Err(invalid(
                "",
                "undefined, a function or a symbol is not a JSON value",
            )),
        }
    }
}

impl TypeName for JsonIn {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for JsonIn {}

/// Numbers beyond 2^53 as plain JS numbers (as `JSON.parse` reads them),
/// never as `BigInt`.
fn plain_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let safe = n
                .as_i64()
                .is_some_and(|i| (-9_007_199_254_740_991..=9_007_199_254_740_991).contains(&i));
            if !safe
                && !n.is_f64()
                && let Some(f) = n.as_f64().and_then(Number::from_f64)
            {
                *n = f;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_numbers),
        Value::Object(map) => map.values_mut().for_each(plain_numbers),
        _ => {}
    }
}

impl ToNapiValue for JsonOut {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let mut value = val.0;
        plain_numbers(&mut value);
        // SAFETY: `env` is the live environment napi-rs passed to this conversion on the JS
        // thread.
        unsafe { Value::to_napi_value(env, value) }
    }
}

impl TypeName for JsonOut {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}
