//! Python objects to and from JSON, converted directly in Rust (no
//! `json.dumps` round trip). Unencodable values are `InvalidInputError` naming
//! the offending path, e.g. `$.items[2].name`. Lists and dicts nest at most
//! the core's `MAX_JSON_DEPTH` (127) deep, which also stops a
//! self-referencing list.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use mss_bridge::limits::MAX_JSON_DEPTH;

use crate::errors::invalid_input;

enum Seg {
    Key(String),
    Index(usize),
}

fn format_path(path: &[Seg]) -> String {
    let mut out = String::from("$");
    for seg in path {
        match seg {
            Seg::Key(k)
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                out.push('.');
                out.push_str(k);
            }
            Seg::Key(k) => {
                out.push('[');
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(']');
            }
            Seg::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// Convert a Python value (None, bool, int, float, str, list, tuple, dict
/// with str keys) to JSON.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let mut path = Vec::new();
    convert(obj, &mut path)
}

/// Convert a Python dict to a JSON object; anything else is `TypeError`.
pub fn to_json_object(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Map<String, Value>> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be a dict, not {}",
            type_name(obj)
        )));
    }
    match to_json(obj)? {
        Value::Object(map) => Ok(map),
        // A dict always converts to an object.
        _ => Err(invalid_input(
            obj.py(),
            format!("{what} must be a JSON object"),
        )),
    }
}

/// `InvalidInputError` if a list or dict at `path` would nest deeper than
/// [`MAX_JSON_DEPTH`] (it is one level below `path`).
fn check_depth(obj: &Bound<'_, PyAny>, path: &[Seg]) -> PyResult<()> {
    if path.len() >= MAX_JSON_DEPTH {
        return Err(invalid_input(
            obj.py(),
            format!(
                "value nested deeper than {MAX_JSON_DEPTH} levels at {} (a reference cycle?)",
                format_path(path)
            ),
        ));
    }
    Ok(())
}

fn convert(obj: &Bound<'_, PyAny>, path: &mut Vec<Seg>) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(invalid_input(
            py,
            format!(
                "integer at {} is outside the 64-bit range JSON numbers are stored in",
                format_path(path)
            ),
        ));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            invalid_input(
                py,
                format!(
                    "float {f} at {} cannot be encoded as JSON (NaN and infinity are not JSON)",
                    format_path(path)
                ),
            )
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.extract::<String>().map(Value::String).map_err(|_| {
            invalid_input(
                py,
                format!(
                    "string at {} is not valid Unicode (lone surrogate)",
                    format_path(path)
                ),
            )
        });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        check_depth(obj, path)?;
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(ks) = k.cast::<PyString>() else {
                return Err(invalid_input(
                    py,
                    format!(
                        "dict key of type {} at {}: JSON object keys must be str",
                        type_name(&k),
                        format_path(path)
                    ),
                ));
            };
            let key: String = ks.extract().map_err(|_| {
                invalid_input(
                    py,
                    format!(
                        "dict key at {} is not valid Unicode (lone surrogate)",
                        format_path(path)
                    ),
                )
            })?;
            path.push(Seg::Key(key));
            let value = convert(&v, path)?;
            if let Some(Seg::Key(key)) = path.pop() {
                map.insert(key, value);
            }
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        check_depth(obj, path)?;
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            path.push(Seg::Index(i));
            out.push(convert(&item?, path)?);
            path.pop();
        }
        return Ok(Value::Array(out));
    }
    Err(invalid_input(
        py,
        format!(
            "value of type {} at {} cannot be encoded as JSON",
            type_name(obj),
            format_path(path)
        ),
    ))
}

/// Convert JSON to Python objects (dict, list, str, int, float, bool, None).
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?
            }
        }
        Value::String(s) => s.into_bound_py_any(py)?,
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Convert a JSON object to a Python dict.
pub fn map_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyAny>> {
    let dict = PyDict::new(py);
    for (k, v) in map {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict.into_any())
}
