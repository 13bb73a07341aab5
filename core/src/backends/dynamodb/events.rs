//! Events: appending one (the seq allocated by the commit itself, trimming
//! in the same transaction) and replaying those after a cursor.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::DynamoBackend;
use super::errors::{contended, internal};
use super::item::{
    check_item_size, child_key, corrupt, event_sk, get_num, get_opt_num, get_opt_str, get_str, n,
    names, s, values,
};
use super::write::{CONTENTION_ATTEMPTS, TxFail, backoff};
use crate::backend::check_cursor;
use crate::error::{Error, ErrorKind, Result};
use crate::event_id::EventId;
use crate::json::Json;
use crate::model::{Event, NewEvent, Page};
use crate::time::now_ms;

impl DynamoBackend {
    /// `append_event`: the session update allocating the seq, the event
    /// put and the trimmed event's delete, one transaction.
    pub(super) async fn append(&self, id: &str, event: NewEvent) -> Result<Event> {
        let _lock = self.lock(id).await;
        let max = self.limits.max_events_per_session;
        let mut fresh = false;
        for attempt in 0..CONTENTION_ATTEMPTS {
            let mut sess = self.guess(id, fresh).await?;
            let pk = sess.child_pk();
            let seq = sess.last_seq + 1;
            let trimmed = sess.trimmed.max(seq.saturating_sub(max));
            let now = now_ms();
            let mut item = child_key(&pk, event_sk(seq));
            item.insert("st".to_string(), s(event.stream_id.clone()));
            if let Some(d) = &event.data {
                item.insert("d".to_string(), s(d.as_str()));
            }
            if let Some(t) = &event.event_type {
                item.insert("et".to_string(), s(t.clone()));
            }
            if let Some(r) = event.retry_ms {
                item.insert("rm".to_string(), n(r));
            }
            item.insert("ca".to_string(), n(now));
            check_item_size("the event", &item)?;
            // `ver` is bumped relative to what is stored, so a state write
            // since the cached read does not make the append retry.
            let update = self.session_update(
                &sess,
                now,
                ", #ver = #ver + :one, #lseq = :seq, #trim = :trim",
                " AND #lseq = :olseq",
                vec![
                    (":one", n(1)),
                    (":seq", n(seq)),
                    (":trim", n(trimmed)),
                    (":olseq", n(sess.last_seq)),
                ],
            )?;
            let cond = "attribute_not_exists(#sk)";
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .build()
                .map_err(internal)?;
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            // The common trim drops exactly one event: in the same commit.
            let one_trim = trimmed == sess.trimmed + 1;
            if one_trim {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(child_key(&pk, event_sk(trimmed))))
                    .build()
                    .map_err(internal)?;
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
            match self.transact(items).await {
                Ok(()) => {
                    let old_trimmed = sess.trimmed;
                    (sess.expires_at, _) = self.renew(now, sess.ttl_ms);
                    sess.last_activity = now;
                    sess.version += 1;
                    sess.last_seq = seq;
                    sess.trimmed = trimmed;
                    self.remember(&sess);
                    if trimmed > old_trimmed && !one_trim {
                        // Readers already treat these as gone (`trim`).
                        self.delete_event_range(&pk, old_trimmed + 1, trimmed)
                            .await?;
                    }
                    return Ok(Event::new(id.to_string(), seq, event, now));
                }
                Err(TxFail::Other(e)) => return Err(e),
                Err(TxFail::Retry) => backoff(attempt).await,
                Err(TxFail::Cancelled(codes)) => {
                    if codes.first().is_some_and(Option::is_some) {
                        // Another append (or a delete) came first: re-read.
                        if fresh {
                            backoff(attempt).await;
                        }
                        fresh = true;
                        continue;
                    }
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "session '{id}': an event with seq {seq} exists though the session's last seq is {}",
                            sess.last_seq
                        ),
                    ));
                }
            }
        }
        Err(contended(id))
    }

    /// `events_after`: the session's counters, then the events after the
    /// cursor, then the counters again.
    pub(super) async fn replay(
        &self,
        id: &str,
        cursor: &EventId,
        limit: usize,
    ) -> Result<Page<Event>> {
        let sess = self.live_session(id).await?;
        check_cursor(cursor, sess.last_seq, sess.trimmed)?;
        if cursor.seq >= sess.last_seq {
            return Ok(Page::new(Vec::new(), None));
        }
        let pk = sess.child_pk();
        let kc = "#pk = :pk AND #sk BETWEEN :a AND :b";
        let filter = "#st = :st";
        let vals = values(vec![
            (":pk", s(pk)),
            (":a", s(event_sk(cursor.seq + 1))),
            (":b", s(event_sk(sess.last_seq))),
            (":st", s(cursor.stream_id.clone())),
        ]);
        let want = limit.saturating_add(1);
        let mut pages = self.query_all(|q| {
            q.key_condition_expression(kc)
                .filter_expression(filter)
                .set_expression_attribute_names(names(&[kc, filter]))
                .set_expression_attribute_values(vals)
                .limit(i32::try_from(want.clamp(100, 1000)).unwrap_or(1000))
        });
        let mut items: Vec<Event> = Vec::new();
        while let Some(out) = pages.next_page().await? {
            for item in out.items() {
                if items.len() >= want {
                    break;
                }
                let sk = get_str(item, "sk")?;
                let seq: u64 = sk
                    .strip_prefix("E#")
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| corrupt("sk"))?;
                items.push(Event {
                    session_id: id.to_string(),
                    seq,
                    stream_id: cursor.stream_id.clone(),
                    data: get_opt_str(item, "d")?.map(Json::from_stored),
                    event_type: get_opt_str(item, "et")?,
                    retry_ms: get_opt_num(item, "rm")?,
                    created_at: get_num(item, "ca")?,
                });
            }
            if items.len() >= want {
                break;
            }
        }
        // Trimming may have run while the query did: re-check, so a cursor
        // whose successors were dropped is reported, never skipped.
        let after = self.live_session(id).await?;
        if after.gen_ != sess.gen_ {
            return Err(Error::session_not_found(id));
        }
        check_cursor(cursor, after.last_seq, after.trimmed)?;
        Ok(Page::from_overfetch(items, limit, Event::wire_id))
    }
}
