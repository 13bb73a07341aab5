//! Items: attribute values and expression placeholders, the keys of every
//! kind of item, reading attributes back, DynamoDB's item size limit, and
//! the decoded session item ([`Sess`]).

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use crate::backends::common;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Session;

pub(super) type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit.
const ITEM_LIMIT: usize = 400 * 1024;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `#name` placeholders for every `#word` in the expressions (DynamoDB
/// rejects unused ones, and names such as `ttl` are reserved words).
pub(super) fn names(exprs: &[&str]) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'#' {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j > start {
                    out.insert(format!("#{}", &e[start..j]), e[start..j].to_string());
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

pub(super) fn values(pairs: Vec<(&str, AttributeValue)>) -> Option<Item> {
    (!pairs.is_empty()).then(|| pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub(super) fn shard_pk_of(shard: u32) -> String {
    format!("S#{shard:02}")
}

pub(super) fn config_key() -> Item {
    HashMap::from([
        ("pk".to_string(), s("CONFIG")),
        ("sk".to_string(), s("CONFIG")),
    ])
}

pub(super) fn child_pk(gen_: &str, id: &str) -> String {
    format!("C#{gen_}#{id}")
}

pub(super) fn event_sk(seq: u64) -> String {
    format!("E#{seq:020}")
}

pub(super) fn state_sk(key: &str) -> String {
    format!("K#{key}")
}

pub(super) fn child_key(pk: &str, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(super) fn new_gen() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// A stored item whose attribute `what` is missing or malformed.
pub(super) fn corrupt(what: &str) -> Error {
    common::corrupt(format!(
        "a stored item has a missing or malformed attribute {what:?}"
    ))
}

pub(super) fn get_str<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(name)),
    }
}

pub(super) fn get_opt_str(item: &Item, name: &str) -> Result<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        _ => Err(corrupt(name)),
    }
}

pub(super) fn get_num<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

pub(super) fn get_opt_num<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

/// DynamoDB's size of an item: attribute names plus values (numbers counted
/// at their largest, 21 bytes).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(_) => 21,
                    _ => 1,
                }
        })
        .sum()
}

pub(super) fn check_item_size(what: &str, item: &Item) -> Result<()> {
    let size = item_size(item);
    if size > ITEM_LIMIT {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "{what} would be a DynamoDB item of {size} bytes, over DynamoDB's limit of \
                 {ITEM_LIMIT} bytes (400 KB) per item"
            ),
        ));
    }
    Ok(())
}

/// The session item, decoded.
#[derive(Debug, Clone)]
pub(super) struct Sess {
    pub(super) id: String,
    pub(super) gen_: String,
    pub(super) created_at: i64,
    pub(super) last_activity: i64,
    pub(super) expires_at: i64,
    pub(super) ttl_ms: u64,
    pub(super) meta: String,
    pub(super) version: u64,
    pub(super) last_seq: u64,
    pub(super) trimmed: u64,
}

impl Sess {
    pub(super) fn from_item(item: &Item) -> Result<Sess> {
        Ok(Sess {
            id: get_str(item, "sk")?.to_string(),
            gen_: get_str(item, "gen")?.to_string(),
            created_at: get_num(item, "ca")?,
            last_activity: get_num(item, "la")?,
            expires_at: get_num(item, "exp")?,
            ttl_ms: get_num(item, "tms")?,
            meta: get_str(item, "meta")?.to_string(),
            version: get_num(item, "ver")?,
            last_seq: get_num(item, "lseq")?,
            trimmed: get_num(item, "trim")?,
        })
    }

    pub(super) fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    pub(super) fn metadata(&self) -> Result<Map<String, Value>> {
        common::parse_metadata(&self.meta)
    }

    pub(super) fn to_session(&self) -> Result<Session> {
        Ok(Session {
            id: self.id.clone(),
            created_at: self.created_at,
            last_activity: self.last_activity,
            expires_at: self.expires_at,
            ttl_ms: self.ttl_ms,
            metadata: self.metadata()?,
            version: self.version,
            last_seq: self.last_seq,
        })
    }

    pub(super) fn child_pk(&self) -> String {
        child_pk(&self.gen_, &self.id)
    }
}
