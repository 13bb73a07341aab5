//! What every write shares: the per-session writer lock, the handle's
//! cache of the session items it wrote, reading the session item, renewal,
//! and the transaction whose first item is the conditional session update.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use dashmap::DashMap;

use super::DynamoBackend;
use super::errors::{internal, is_code};
use super::item::{Sess, n, names, s, values};
use crate::error::{Error, ErrorKind, Result};
use crate::time::now_ms;

/// Cached sessions kept before the cache is emptied.
const CACHE_MAX: usize = 10_000;
/// Attempts of a write whose condition keeps losing to concurrent writers.
pub(super) const CONTENTION_ATTEMPTS: u32 = 500;

/// Wait before the next attempt of a write that lost its condition.
pub(super) async fn backoff(attempt: u32) {
    // Jittered exponential backoff: up to 1 ms, doubling, capped at 32 ms.
    let ceiling_us = 1000u64 << attempt.min(5);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
}

/// Held while writing one session; forgets the session's lock when nobody
/// else waits for it.
pub(super) struct SessionLock<'a> {
    locks: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        self.guard = None;
        self.locks
            .remove_if(&self.id, |_, m| Arc::strong_count(m) == 1);
    }
}

/// Why a transaction did not commit.
pub(super) enum TxFail {
    /// Cancelled: one code per item (`None` for an item that was fine).
    Cancelled(Vec<Option<String>>),
    /// Lost to a concurrent transaction: retry.
    Retry,
    /// Anything else.
    Other(Error),
}

impl DynamoBackend {
    /// Wait for this process's other writers of session `id`.
    pub(super) async fn lock(&self, id: &str) -> SessionLock<'_> {
        let mutex = self.locks.entry(id.to_string()).or_default().clone();
        let guard = mutex.lock_owned().await;
        SessionLock {
            locks: &self.locks,
            id: id.to_string(),
            guard: Some(guard),
        }
    }

    /// Remember what this handle last saw of a session.
    pub(super) fn remember(&self, sess: &Sess) {
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(sess.id.clone(), sess.clone());
    }

    /// The session a write builds its condition on: the cached one while
    /// it looks live (its conditions catch a stale guess), else a read.
    pub(super) async fn guess(&self, id: &str, fresh: bool) -> Result<Sess> {
        if !fresh
            && let Some(c) = self.cache.get(id)
            && c.live(now_ms())
        {
            return Ok(c.clone());
        }
        self.live_session(id).await
    }

    /// `(exp, ttl)` of a session renewed at `now`.
    pub(super) fn renew(&self, now: i64, ttl_ms: u64) -> (i64, i64) {
        let exp = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        let ttl = (exp / 1000 + 1).saturating_add(self.ttl_grace_s);
        (exp, ttl)
    }

    /// The session item, expired or not.
    pub(super) async fn read_session(&self, id: &str) -> Result<Option<Sess>> {
        self.check_open()?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.session_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetItem", e))?;
        let sess = out.item.as_ref().map(Sess::from_item).transpose()?;
        match &sess {
            Some(sess) => self.remember(sess),
            None => {
                self.cache.remove(id);
            }
        }
        Ok(sess)
    }

    /// The live session, or `NotFound`.
    pub(super) async fn live_session(&self, id: &str) -> Result<Sess> {
        match self.read_session(id).await? {
            Some(s) if s.live(now_ms()) => Ok(s),
            _ => Err(Error::session_not_found(id)),
        }
    }

    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxFail> {
        self.check_open().map_err(TxFail::Other)?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let codes: Vec<Option<String>> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_string))
                        .collect();
                    if codes.iter().flatten().any(|c| {
                        matches!(
                            c.as_str(),
                            "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    }) {
                        return Err(TxFail::Retry);
                    }
                    if let Some(bad) = codes
                        .iter()
                        .flatten()
                        .find(|c| c.as_str() != "ConditionalCheckFailed")
                    {
                        let kind = if bad.contains("Size") || bad.contains("size") {
                            ErrorKind::LimitExceeded
                        } else {
                            ErrorKind::Backend
                        };
                        return Err(TxFail::Other(Error::new(
                            kind,
                            format!(
                                "DynamoDB TransactWriteItems on table {:?} was cancelled: {bad}: {}",
                                self.table,
                                DisplayErrorContext(&e)
                            ),
                        )));
                    }
                    return Err(TxFail::Cancelled(codes));
                }
                if is_code(&e, "TransactionConflictException")
                    || is_code(&e, "TransactionInProgressException")
                {
                    return Err(TxFail::Retry);
                }
                Err(TxFail::Other(self.sdk_err("TransactWriteItems", e)))
            }
        }
    }

    /// The session update every write makes: renew, and maybe bump `ver`,
    /// on condition that the session is the incarnation read and live.
    pub(super) fn session_update(
        &self,
        sess: &Sess,
        now: i64,
        set: &str,
        condition: &str,
        mut vals: Vec<(&str, AttributeValue)>,
    ) -> Result<Update> {
        let (exp, ttl) = self.renew(now, sess.ttl_ms);
        let update = format!("SET #la = :now, #exp = :exp, #ttl = :ttl{set}");
        let cond = format!("#gen = :gen AND #exp > :now{condition}");
        vals.extend([
            (":now", n(now)),
            (":exp", n(exp)),
            (":ttl", n(ttl)),
            (":gen", s(sess.gen_.clone())),
        ]);
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.session_key(&sess.id)))
            .set_expression_attribute_names(names(&[&update, &cond]))
            .update_expression(update)
            .condition_expression(cond)
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(internal)
    }
}
