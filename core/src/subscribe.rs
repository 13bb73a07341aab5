//! Live delivery: a replay that turns into a live tail.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::Result;
use crate::event_id::EventId;
use crate::model::{Event, Page};
use crate::wakers::Wakers;

/// Events fetched per read while catching up.
const CHUNK: usize = 1000;

/// A read of the log in flight: kept across cancelled calls of
/// [`Subscription::next`], so a read slower than the caller's patience still
/// completes. The mutex makes it `Sync`; it is only reached through
/// `&mut self`, so it is never contended.
type Read = std::sync::Mutex<Pin<Box<dyn Future<Output = Result<Page<Event>>> + Send>>>;

/// A live subscription to one stream of a session, from
/// [`Store::subscribe`](crate::Store::subscribe).
///
/// [`next`](Subscription::next) first yields the events after the cursor
/// (the replay), then each new event of the stream as it is appended, in
/// `seq` order, with no gap and no duplicate at the seam: both phases read
/// the log with the same `events_after` cursor, and commit order equals seq
/// order. Appends through the same [`Store`](crate::Store) (or any of its clones) wake the
/// subscription at once; appends by another process on a shared backend are
/// seen within the store's `poll_interval`.
///
/// The subscription ends with an error when the session is deleted or
/// expires (`NotFound`) or when the subscriber fell so far behind that
/// trimming removed events it had not read (`CursorExpired`); after an
/// error, `next` returns `None`.
pub struct Subscription {
    backend: Arc<dyn Backend>,
    wakers: Arc<Wakers>,
    session_id: String,
    cursor: EventId,
    buffer: VecDeque<Event>,
    appended: watch::Receiver<u64>,
    poll: Duration,
    last_read: Option<Instant>,
    /// An append was signalled that no completed read has covered yet.
    stale: bool,
    ended: bool,
    reading: Option<Read>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("session_id", &self.session_id)
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .field("reading", &self.reading.is_some())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Start following `cursor`'s stream of a session: `session_id` and
    /// the cursor have been validated by the caller.
    pub(crate) async fn start(
        backend: Arc<dyn Backend>,
        wakers: Arc<Wakers>,
        poll: Duration,
        session_id: String,
        cursor: EventId,
    ) -> Result<Subscription> {
        let appended = wakers.register(&session_id);
        let mut sub = Subscription {
            backend,
            wakers,
            session_id,
            cursor,
            buffer: VecDeque::new(),
            appended,
            poll,
            last_read: None,
            stale: true,
            ended: false,
            reading: None,
        };
        // Fail early on an unknown session or an expired cursor.
        sub.fetch().await?;
        Ok(sub)
    }

    /// The session this subscription follows.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The position after the last event handed out (or buffered).
    pub fn cursor(&self) -> &EventId {
        &self.cursor
    }

    /// Read the log after the cursor. Cancel-safe: a read interrupted by a
    /// dropped `next` is resumed, not restarted, by the next call.
    async fn fetch(&mut self) -> Result<bool> {
        let read = self.reading.get_or_insert_with(|| {
            // Mark the appends seen so far as read before reading: one that
            // lands during the read shows as a change afterwards.
            self.appended.borrow_and_update();
            self.last_read = Some(Instant::now());
            let (backend, id, cursor) = (
                self.backend.clone(),
                self.session_id.clone(),
                self.cursor.clone(),
            );
            std::sync::Mutex::new(Box::pin(async move {
                backend.events_after(&id, &cursor, CHUNK).await
            }))
        });
        let read = read
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let page = read.as_mut().await;
        self.reading = None;
        let page = page?;
        self.stale = false;
        match page.items.last() {
            Some(last) => {
                self.cursor.seq = last.seq;
                self.buffer.extend(page.items);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next event: replayed, or new. Waits for one to be appended.
    ///
    /// Cancel-safe: dropping the future loses nothing, and calling `next`
    /// again does not re-read the log before an append through this store
    /// or the poll interval calls for it.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            let deadline = self.last_read.map(|t| t + self.poll);
            // A read interrupted by a cancelled call is finished first: it
            // already marked the appends signalled before it as seen.
            let due = self.reading.is_some()
                || self.stale
                || deadline.is_none_or(|d| Instant::now() >= d)
                || self.appended.has_changed().unwrap_or(false);
            if due {
                match self.fetch().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
            }
            let deadline = self.last_read.map_or_else(Instant::now, |t| t + self.poll);
            tokio::select! {
                changed = self.appended.changed() => match changed {
                    // `changed` marks the append seen: remember it until a
                    // read covers it, also across a cancelled `next`.
                    Ok(()) => self.stale = true,
                    // No waker any more: fall back to polling.
                    Err(_) => tokio::time::sleep_until(deadline).await,
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Stop listening first, so `release` counts the others only.
        self.appended = watch::channel(0).1;
        self.wakers.release(&self.session_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::backend::{Backend, BackendInfo, Expected};
    use crate::backends::memory::MemoryBackend;
    use crate::json::Json;
    use crate::model::{CleanupStats, CreateSession, NewEvent, NewSession, Session, StateEntry};
    use crate::options::{Limits, StoreOptions};
    use crate::store::Store;

    /// The memory backend with replays slower than the caller's patience.
    #[derive(Debug)]
    struct SlowReplays(MemoryBackend);

    #[async_trait]
    impl Backend for SlowReplays {
        fn info(&self) -> BackendInfo {
            BackendInfo::new("slow", false)
        }
        async fn create_session(&self, req: CreateSession) -> Result<Session> {
            self.0.create_session(req).await
        }
        async fn get_session(&self, id: &str) -> Result<Option<Session>> {
            self.0.get_session(id).await
        }
        async fn update_session(&self, id: &str, patch: Map<String, Value>) -> Result<Session> {
            self.0.update_session(id, patch).await
        }
        async fn touch_session(&self, id: &str) -> Result<Session> {
            self.0.touch_session(id).await
        }
        async fn delete_session(&self, id: &str) -> Result<bool> {
            self.0.delete_session(id).await
        }
        async fn list_sessions(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
            self.0.list_sessions(after, limit).await
        }
        async fn count_sessions(&self) -> Result<u64> {
            self.0.count_sessions().await
        }
        async fn get_state(&self, id: &str, key: &str) -> Result<Option<StateEntry>> {
            self.0.get_state(id, key).await
        }
        async fn set_state(&self, id: &str, key: &str, value: Json, e: Expected) -> Result<u64> {
            self.0.set_state(id, key, value, e).await
        }
        async fn delete_state(&self, id: &str, key: &str) -> Result<bool> {
            self.0.delete_state(id, key).await
        }
        async fn state_keys(&self, id: &str) -> Result<Vec<String>> {
            self.0.state_keys(id).await
        }
        async fn state_all(&self, id: &str) -> Result<Vec<StateEntry>> {
            self.0.state_all(id).await
        }
        async fn append_event(&self, id: &str, event: NewEvent) -> Result<Event> {
            self.0.append_event(id, event).await
        }
        async fn events_after(
            &self,
            id: &str,
            cursor: &EventId,
            limit: usize,
        ) -> Result<Page<Event>> {
            // Read, then take long to answer: what the read saw is older
            // than appends signalled meanwhile.
            let page = self.0.events_after(id, cursor, limit).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
            page
        }
        async fn cleanup_expired(&self) -> Result<CleanupStats> {
            self.0.cleanup_expired().await
        }
    }

    /// `next` is given up on long before any read finishes, over and over;
    /// every event still arrives, in order (no polling: the poll interval is
    /// an hour).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_outliving_cancelled_calls_are_resumed() {
        let store = Store::from_backend(
            Arc::new(SlowReplays(MemoryBackend::new(Limits::default()))),
            StoreOptions::default().with_poll_interval(Duration::from_secs(3600)),
        )
        .unwrap();
        let id = store.create_session(NewSession::new()).await.unwrap().id;
        let mut sub = store.subscribe(&id, EventId::start("s")).await.unwrap();
        let writer = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .append_event(&id, NewEvent::new("s", json!(i)))
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while got.len() < 50 {
            assert!(
                Instant::now() < deadline,
                "stuck after {} events",
                got.len()
            );
            if let Ok(item) = tokio::time::timeout(Duration::from_micros(300), sub.next()).await {
                got.push(item.unwrap().unwrap().seq);
            }
        }
        writer.await.unwrap();
        assert_eq!(got, (1..=50).collect::<Vec<u64>>());
    }
}
