//! Sessions: create, update, touch and delete one, and list and count them
//! over the shard partitions.

use aws_sdk_dynamodb::types::{ReturnValue, Select};
use serde_json::{Map, Value};

use super::DynamoBackend;
use super::errors::{contended, is_code};
use super::item::{
    Sess, check_item_size, corrupt, get_num, n, names, new_gen, s, shard_pk_of, values,
};
use super::write::{CONTENTION_ATTEMPTS, backoff};
use crate::error::{Error, Result};
use crate::model::{CreateSession, Page, Session};
use crate::time::now_ms;
use crate::validate;

impl DynamoBackend {
    /// `create_session`: a new id is one conditional put.
    pub(super) async fn create(&self, req: CreateSession) -> Result<Session> {
        self.check_open()?;
        if let Some(max) = self.limits.max_sessions
            && self.count_live(now_ms()).await? >= max
        {
            return Err(Error::session_limit(max));
        }
        let meta =
            serde_json::to_string(&req.metadata).map_err(|e| Error::invalid(e.to_string()))?;
        // A new id is the common case: try the put first, and read only
        // when something is stored under the id.
        let mut known = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let existing = if known {
                self.read_session(&req.id).await?
            } else {
                None
            };
            let now = now_ms();
            let (exp, ttl) = self.renew(now, req.ttl_ms);
            let sess = Sess {
                id: req.id.clone(),
                gen_: new_gen(),
                created_at: now,
                last_activity: now,
                expires_at: exp,
                ttl_ms: req.ttl_ms,
                meta: meta.clone(),
                version: 1,
                last_seq: 0,
                trimmed: 0,
            };
            let mut item = self.session_key(&req.id);
            item.extend([
                ("gen".to_string(), s(sess.gen_.clone())),
                ("ca".to_string(), n(now)),
                ("la".to_string(), n(now)),
                ("exp".to_string(), n(exp)),
                ("tms".to_string(), n(req.ttl_ms)),
                ("meta".to_string(), s(meta.clone())),
                ("ver".to_string(), n(1)),
                ("lseq".to_string(), n(0)),
                ("trim".to_string(), n(0)),
                ("ttl".to_string(), n(ttl)),
            ]);
            check_item_size("the session's metadata", &item)?;
            let (cond, vals) = match &existing {
                Some(old) if old.live(now) => return Err(Error::session_exists(&req.id)),
                Some(old) => {
                    // The old incarnation expired: it is invisible; clear its
                    // partition, then replace it.
                    self.purge(&old.child_pk()).await?;
                    (
                        "#gen = :ogen AND #exp <= :now",
                        vec![(":ogen", s(old.gen_.clone())), (":now", n(now))],
                    )
                }
                None => ("attribute_not_exists(#sk)", vec![]),
            };
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .set_expression_attribute_values(values(vals))
                .send()
                .await;
            match put {
                Ok(_) => {
                    self.remember(&sess);
                    return sess.to_session();
                }
                // Something is stored under the id (or another creator got
                // there first): read it to see.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    if known {
                        backoff(attempt).await;
                    }
                    known = true;
                }
                Err(e) => return Err(self.sdk_err("PutItem", e)),
            }
        }
        Err(contended(&req.id))
    }

    /// `update_session`: merge `patch` into the metadata, on condition of
    /// the version read.
    pub(super) async fn update(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
        let _lock = self.lock(id).await;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let sess = self.guess(id, fresh).await?;
            let mut merged = sess.metadata()?;
            merged.extend(patch.clone());
            validate::metadata(&merged, self.limits.max_payload_bytes)?;
            let meta = serde_json::to_string(&merged).map_err(|e| Error::invalid(e.to_string()))?;
            let mut probe = self.session_key(id);
            probe.insert("meta".to_string(), s(meta.clone()));
            probe.insert("gen".to_string(), s(sess.gen_.clone()));
            check_item_size("the session's metadata", &probe)?;
            let now = now_ms();
            let (exp, ttl) = self.renew(now, sess.ttl_ms);
            let update = "SET #meta = :meta, #ver = :nver, #la = :now, #exp = :exp, #ttl = :ttl";
            let cond = "#gen = :gen AND #ver = :over AND #exp > :now";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .set_expression_attribute_values(values(vec![
                    (":meta", s(meta)),
                    (":nver", n(sess.version + 1)),
                    (":over", n(sess.version)),
                    (":now", n(now)),
                    (":exp", n(exp)),
                    (":ttl", n(ttl)),
                    (":gen", s(sess.gen_.clone())),
                ]))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("Attributes"))?;
                    let sess = Sess::from_item(&item)?;
                    self.remember(&sess);
                    return sess.to_session();
                }
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    if fresh {
                        backoff(attempt).await;
                    }
                    fresh = true;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            }
        }
        Err(contended(id))
    }

    /// Renew a session's expiry (the caller holds its lock).
    pub(super) async fn touch(&self, id: &str) -> Result<Session> {
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let sess = self.guess(id, fresh).await?;
            let now = now_ms();
            let (exp, ttl) = self.renew(now, sess.ttl_ms);
            // `exp` only grows: a concurrent renewal with a later `now` wins.
            let update = "SET #la = :now, #exp = :exp, #ttl = :ttl";
            let cond = "#gen = :gen AND #exp > :now AND #exp < :exp";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .set_expression_attribute_values(values(vec![
                    (":now", n(now)),
                    (":exp", n(exp)),
                    (":ttl", n(ttl)),
                    (":gen", s(sess.gen_.clone())),
                ]))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("Attributes"))?;
                    let sess = Sess::from_item(&item)?;
                    self.remember(&sess);
                    return sess.to_session();
                }
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    // Renewed meanwhile at least as far (same millisecond):
                    // that renewal stands for this one.
                    let again = self.live_session(id).await?;
                    if again.gen_ == sess.gen_ && again.expires_at >= exp {
                        return again.to_session();
                    }
                    if fresh {
                        backoff(attempt).await;
                    }
                    fresh = true;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            }
        }
        Err(contended(id))
    }

    /// `delete_session`: expire, purge the partition, delete the item.
    pub(super) async fn delete(&self, id: &str) -> Result<bool> {
        let _lock = self.lock(id).await;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let Some(sess) = self.read_session(id).await? else {
                return Ok(false);
            };
            // Expire it first: from here on, every reader sees it gone.
            let update = "SET #exp = :zero";
            let cond = "#gen = :gen";
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[update, cond]))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":gen", s(sess.gen_.clone()))
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            let old = match out {
                Ok(out) => out.attributes.ok_or_else(|| corrupt("Attributes"))?,
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(self.sdk_err("UpdateItem", e)),
            };
            let was_live = get_num::<i64>(&old, "exp")? > now_ms();
            self.cache.remove(id);
            self.purge(&sess.child_pk()).await?;
            let cond = "#gen = :gen";
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.session_key(id)))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .expression_attribute_values(":gen", s(sess.gen_.clone()))
                .send()
                .await
            {
                Ok(_) => {}
                // Re-created meanwhile: the new session stays.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {}
                Err(e) => return Err(self.sdk_err("DeleteItem", e)),
            }
            return Ok(was_live);
        }
        Err(contended(id))
    }

    /// `list_sessions`: every shard queried at once, merged in id order.
    pub(super) async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        self.check_open()?;
        let now = now_ms();
        let want = limit.saturating_add(1);
        let shards = futures::future::try_join_all(
            (0..self.shards).map(|sh| self.query_shard(sh, after, "#exp > :now", now, want)),
        )
        .await?;
        let mut all: Vec<Sess> = shards.into_iter().flatten().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let page = Page::from_overfetch(all, limit, |s| s.id.clone());
        let items = page
            .items
            .iter()
            .map(Sess::to_session)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::new(items, page.next))
    }

    /// Query one shard partition of session items, filtered.
    pub(super) async fn query_shard(
        &self,
        shard: u32,
        after: Option<&str>,
        filter: &str,
        now: i64,
        want: usize,
    ) -> Result<Vec<Sess>> {
        let kc = if after.is_some() {
            "#pk = :pk AND #sk > :after"
        } else {
            "#pk = :pk"
        };
        let mut vals = vec![(":pk", s(shard_pk_of(shard))), (":now", n(now))];
        if let Some(a) = after {
            vals.push((":after", s(a)));
        }
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .filter_expression(filter)
                .set_expression_attribute_names(names(&[kc, filter]))
                .set_expression_attribute_values(values(vals))
                .limit(i32::try_from(want.clamp(1, 1000)).unwrap_or(1000))
        });
        let mut out_items = Vec::new();
        while let Some(out) = pages.next_page().await? {
            for item in out.items() {
                out_items.push(Sess::from_item(item)?);
            }
            if out_items.len() >= want {
                break;
            }
        }
        Ok(out_items)
    }

    /// Live sessions in one shard partition: how many.
    pub(super) async fn count_shard(&self, shard: u32, now: i64) -> Result<u64> {
        let kc = "#pk = :pk";
        let filter = "#exp > :now";
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .filter_expression(filter)
                .select(Select::Count)
                .set_expression_attribute_names(names(&[kc, filter]))
                .expression_attribute_values(":pk", s(shard_pk_of(shard)))
                .expression_attribute_values(":now", n(now))
        });
        let mut total = 0u64;
        while let Some(out) = pages.next_page().await? {
            total += u64::try_from(out.count).unwrap_or(0);
        }
        Ok(total)
    }

    /// Live sessions in the table: how many.
    pub(super) async fn count_live(&self, now: i64) -> Result<u64> {
        let counts =
            futures::future::try_join_all((0..self.shards).map(|sh| self.count_shard(sh, now)))
                .await?;
        Ok(counts.into_iter().sum())
    }
}
