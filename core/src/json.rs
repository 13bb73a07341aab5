//! [`Json`]: validated JSON text, cheap to clone.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, IgnoredAny};
use serde::ser::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// A JSON value kept as its validated text.
///
/// Event payloads and state values are stored and replayed as text: an SSE
/// `data:` line or a binding's JSON string needs no re-encoding, clones share
/// one allocation, and the payload size limit is the text's byte length.
///
/// Build one from a [`serde_json::Value`] (`json!(…).into()`), from any
/// `Serialize` type with [`Json::from_serialize`], or from untrusted text with
/// [`Json::parse`], which rejects invalid JSON with `InvalidInput`.
#[derive(Clone)]
pub struct Json(Arc<str>);

impl Json {
    /// Validate `text` as one JSON value. Invalid JSON is `InvalidInput`,
    /// with the line and column of the first error.
    pub fn parse(text: &str) -> Result<Json> {
        serde_json::from_str::<IgnoredAny>(text)
            .map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?;
        check_depth(text)?;
        Ok(Json(Arc::from(text)))
    }

    /// How deeply arrays and objects nest (0 for a scalar).
    pub fn depth(&self) -> usize {
        nesting_depth(&self.0)
    }

    /// Encode a serializable value. A value JSON cannot represent (a map with
    /// non-string keys, a failing `Serialize` impl) is `InvalidInput`.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Json> {
        serde_json::to_string(value)
            .map(|s| Json(Arc::from(s)))
            .map_err(|e| Error::invalid(format!("value cannot be encoded as JSON: {e}")))
    }

    /// Wrap text read back from a backend, which was validated when stored.
    #[cfg_attr(
        not(any(
            feature = "sqlite",
            feature = "postgres",
            feature = "redis",
            feature = "dynamodb"
        )),
        allow(dead_code)
    )]
    pub(crate) fn from_stored(text: String) -> Json {
        Json(Arc::from(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Byte length of the text (what the payload limit counts).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the text of a JSON value is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decode into a [`serde_json::Value`].
    pub fn to_value(&self) -> Value {
        // The text was validated on construction, so this cannot fail short of
        // memory exhaustion.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// Decode into any deserializable type; a shape mismatch is `InvalidInput`.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        serde_json::from_str(&self.0)
            .map_err(|e| Error::invalid(format!("JSON has the wrong shape: {e}")))
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Json {
        Json::from(&value)
    }
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Json {
        // Serializing a `Value` cannot fail: its map keys are strings.
        Json(Arc::from(value.to_string()))
    }
}

impl PartialEq for Json {
    /// Semantic equality: `{"a":1}` equals `{ "a": 1 }`.
    fn eq(&self, other: &Json) -> bool {
        self.0 == other.0 || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        &self.to_value() == other
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", self.0)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Json(Arc::from(raw.get())))
    }
}

/// The deepest nesting of arrays and objects a stored value may have: what
/// `serde_json` reads back into a `Value` (and what every binding converts).
pub const MAX_DEPTH: usize = 127;

/// How deeply arrays and objects nest in valid JSON `text`.
pub(crate) fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// `InvalidInput` if `text` nests deeper than [`MAX_DEPTH`].
pub(crate) fn check_depth(text: &str) -> Result<()> {
    let depth = nesting_depth(text);
    if depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "JSON nests {depth} levels deep, over the limit of {MAX_DEPTH}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(nesting_depth(r#"["[[[\"[[", {"}}{{": "]"}]"#), 2);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            Json::parse(&deep).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(Json::parse(&ok).unwrap().depth(), MAX_DEPTH);
        assert!(
            serde_json::from_str::<Value>(&ok).is_ok(),
            "readers decode the deepest accepted value"
        );
    }

    #[test]
    fn parse_validates() {
        assert!(Json::parse(r#"{"a":[1,2,{"b":null}]}"#).is_ok());
        for bad in ["", "{", "{'a':1}", "[1,]", "nul", "1 2"] {
            let err = Json::parse(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn semantic_equality_and_round_trip() {
        let a = Json::parse(r#"{ "a" : 1 }"#).unwrap();
        let b: Json = json!({"a": 1}).into();
        assert_eq!(a, b);
        assert_eq!(a.to_value(), json!({"a": 1}));
        let nested = json!({"e": a});
        assert_eq!(nested, json!({"e": {"a": 1}}));
    }

    #[test]
    fn non_string_keys_are_invalid_input() {
        let mut m = std::collections::HashMap::new();
        m.insert(vec![1u8], 1);
        let err = Json::from_serialize(&m).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }
}
