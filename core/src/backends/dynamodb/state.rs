//! State: one entry read, written or deleted (each write one transaction
//! with the session update), and the whole state listed.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::DynamoBackend;
use super::errors::{contended, internal};
use super::item::{
    check_item_size, child_key, corrupt, get_num, get_str, n, names, s, state_sk, values,
};
use super::write::{CONTENTION_ATTEMPTS, TxFail, backoff};
use crate::backend::{Expected, check_expected};
use crate::error::{Error, ErrorKind, Result};
use crate::json::Json;
use crate::model::StateEntry;
use crate::time::now_ms;

impl DynamoBackend {
    /// `get_state`.
    pub(super) async fn read_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
        let sess = self.live_session(id).await?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(child_key(&sess.child_pk(), state_sk(key))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(StateEntry::new(
            key.to_string(),
            Json::from_stored(get_str(&item, "v")?.to_string()),
            get_num(&item, "ver")?,
        )))
    }

    /// `set_state`: the session update and the conditional put, one
    /// transaction.
    pub(super) async fn write_state(
        &self,
        id: &str,
        key: &str,
        value: Json,
        expected: Expected,
    ) -> Result<u64> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let pk = sess.child_pk();
            let version = sess.version + 1;
            let mut item = child_key(&pk, state_sk(key));
            item.insert("v".to_string(), s(value.as_str()));
            item.insert("ver".to_string(), n(version));
            check_item_size(&format!("state key {key:?}"), &item)?;
            let now = now_ms();
            let update = self.session_update(
                &sess,
                now,
                ", #ver = :nver",
                " AND #ver = :over",
                vec![(":nver", n(version)), (":over", n(sess.version))],
            )?;
            let (cond, vals) = match expected {
                Expected::Any => (None, vec![]),
                Expected::Absent => (Some("attribute_not_exists(#sk)"), vec![]),
                Expected::Version(v) => (Some("#ver = :expected"), vec![(":expected", n(v))]),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(cond.map(str::to_string))
                .set_expression_attribute_names(cond.and_then(|c| names(&[c])))
                .set_expression_attribute_values(values(vals))
                .build()
                .map_err(internal)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            match self.transact(items).await {
                Ok(()) => {
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version = version;
                    self.remember(&sess);
                    return Ok(version);
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        // The session changed (or went): re-read.
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    // The caller's condition failed: report what the key holds.
                    let current = self.read_state(id, key).await?.map(|e| e.version);
                    check_expected(key, expected, current)?;
                    // It holds now: it changed since; the compare-and-set lost.
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!("state key {key:?} changed during the write"),
                    ));
                }
            }
        }
        Err(contended(id))
    }

    /// `delete_state`: the session update and the delete, one transaction.
    pub(super) async fn remove_state(&self, id: &str, key: &str) -> Result<bool> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let now = now_ms();
            let update = self.session_update(
                &sess,
                now,
                ", #ver = :nver",
                " AND #ver = :over",
                vec![(":nver", n(sess.version + 1)), (":over", n(sess.version))],
            )?;
            let cond = "attribute_exists(#sk)";
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(child_key(&sess.child_pk(), state_sk(key))))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .build()
                .map_err(internal)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().delete(delete).build(),
            ];
            match self.transact(items).await {
                Ok(()) => {
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version += 1;
                    self.remember(&sess);
                    return Ok(true);
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    // No such key: nothing to delete, but the call still
                    // renews the session, as every write does.
                    self.touch(id).await?;
                    return Ok(false);
                }
            }
        }
        Err(contended(id))
    }

    /// `state_all`, or with `keys_only` the keys alone (values `null`).
    pub(super) async fn state_all_inner(
        &self,
        id: &str,
        keys_only: bool,
    ) -> Result<Vec<StateEntry>> {
        let sess = self.live_session(id).await?;
        let pk = sess.child_pk();
        let kc = "#pk = :pk AND begins_with(#sk, :k)";
        let proj = if keys_only { Some("#sk") } else { None };
        let mut exprs = vec![kc];
        exprs.extend(proj);
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .set_projection_expression(proj.map(str::to_string))
                .set_expression_attribute_names(names(&exprs))
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":k", s("K#"))
        });
        let mut out_entries = Vec::new();
        while let Some(out) = pages.next_page().await? {
            for item in out.items() {
                let key = get_str(item, "sk")?
                    .strip_prefix("K#")
                    .ok_or_else(|| corrupt("sk"))?
                    .to_string();
                if keys_only {
                    out_entries.push(StateEntry::new(key, Json::from_stored("null".into()), 0));
                } else {
                    out_entries.push(StateEntry::new(
                        key,
                        Json::from_stored(get_str(item, "v")?.to_string()),
                        get_num(item, "ver")?,
                    ));
                }
            }
        }
        Ok(out_entries)
    }
}
