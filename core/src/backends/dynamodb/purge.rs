//! Removing data: `cleanup_expired` over the shards, purging a session's
//! partition, and batched deletes.

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use futures::StreamExt;

use super::DynamoBackend;
use super::errors::{internal, is_code};
use super::item::{Item, Sess, child_key, event_sk, get_str, n, names, s};
use super::write::backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::model::CleanupStats;
use crate::time::now_ms;

/// Items per `BatchWriteItem` call.
const BATCH_WRITE: usize = 25;
/// Expired sessions per cleanup page.
const CLEANUP_PAGE: i32 = 100;
/// Sessions purged concurrently by cleanup.
const CLEANUP_CONCURRENCY: usize = 8;

impl DynamoBackend {
    /// `cleanup_expired`: each shard's expired sessions, a page at a time,
    /// several purged at once.
    pub(super) async fn cleanup(&self) -> Result<CleanupStats> {
        self.check_open()?;
        let now = now_ms();
        let mut total = CleanupStats::default();
        for shard in 0..self.shards {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .query_shard(
                        shard,
                        after.as_deref(),
                        "#exp <= :now",
                        now,
                        CLEANUP_PAGE as usize,
                    )
                    .await?;
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|s| s.id.clone());
                let results: Vec<Result<CleanupStats>> = futures::stream::iter(page)
                    .map(|sess| self.cleanup_one(sess, now))
                    .buffer_unordered(CLEANUP_CONCURRENCY)
                    .collect()
                    .await;
                for r in results {
                    total.add(r?);
                }
            }
        }
        Ok(total)
    }

    /// Remove one expired session found by cleanup: its partition, then its
    /// item (only if it is still that expired incarnation).
    pub(super) async fn cleanup_one(&self, sess: Sess, now: i64) -> Result<CleanupStats> {
        let (state, events) = self.purge(&sess.child_pk()).await?;
        let cond = "#gen = :gen AND #exp <= :now";
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.session_key(&sess.id)))
            .condition_expression(cond)
            .set_expression_attribute_names(names(&[cond]))
            .expression_attribute_values(":gen", s(sess.gen_.clone()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(CleanupStats::new(1, state, events)),
            Err(e) if is_code(&e, "ConditionalCheckFailedException") => {
                Ok(CleanupStats::new(0, state, events))
            }
            Err(e) => Err(self.sdk_err("DeleteItem", e)),
        }
    }

    /// Delete everything in a child partition; returns (state, events)
    /// removed.
    pub(super) async fn purge(&self, pk: &str) -> Result<(u64, u64)> {
        let kc = "#pk = :pk";
        let proj = "#pk, #sk";
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .projection_expression(proj)
                .set_expression_attribute_names(names(&[kc, proj]))
                .expression_attribute_values(":pk", s(pk))
        });
        let (mut state, mut events) = (0, 0);
        while let Some(out) = pages.next_page().await? {
            let mut keys = Vec::new();
            for item in out.items() {
                let sk = get_str(item, "sk")?;
                if sk.starts_with("K#") {
                    state += 1;
                } else {
                    events += 1;
                }
                keys.push(child_key(pk, sk.to_string()));
            }
            self.batch_delete(keys).await?;
        }
        Ok((state, events))
    }

    /// Delete items by key, 25 per `BatchWriteItem`, retrying unprocessed
    /// ones.
    pub(super) async fn batch_delete(&self, keys: Vec<Item>) -> Result<()> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(internal)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                self.check_open()?;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| self.sdk_err("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    if attempt > 30 {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            "DynamoDB BatchWriteItem kept leaving items unprocessed (throttled)",
                        ));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Delete events `from..=to` of a session's partition (a trim that
    /// dropped more than one event, e.g. after `max_events_per_session` was
    /// lowered).
    pub(super) async fn delete_event_range(&self, pk: &str, from: u64, to: u64) -> Result<()> {
        let kc = "#pk = :pk AND #sk BETWEEN :a AND :b";
        let proj = "#pk, #sk";
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .projection_expression(proj)
                .set_expression_attribute_names(names(&[kc, proj]))
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":a", s(event_sk(from)))
                .expression_attribute_values(":b", s(event_sk(to)))
        });
        while let Some(out) = pages.next_page().await? {
            let keys = out
                .items()
                .iter()
                .map(|i| get_str(i, "sk").map(|sk| child_key(pk, sk.to_string())))
                .collect::<Result<Vec<_>>>()?;
            self.batch_delete(keys).await?;
        }
        Ok(())
    }
}
