//! Live delivery: a replay that turns into a live tail.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::error::Result;
use crate::event_id::EventId;
use crate::model::Event;
use crate::store::Store;

/// Events fetched per read while catching up.
const CHUNK: usize = 1000;

/// Wakes the subscribers of a session when this process appends to it.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    by_session: DashMap<String, Arc<Notify>, foldhash::fast::RandomState>,
}

impl Wakers {
    /// Called after every successful append or delete through this store.
    pub(crate) fn wake(&self, session_id: &str) {
        if self.by_session.is_empty() {
            return;
        }
        if let Some(notify) = self.by_session.get(session_id) {
            notify.notify_waiters();
        }
    }

    fn register(&self, session_id: &str) -> Arc<Notify> {
        self.by_session
            .entry(session_id.to_string())
            .or_default()
            .value()
            .clone()
    }

    fn release(&self, session_id: &str) {
        // Remove the entry once no subscription holds it (the map's own
        // reference is the only one left).
        self.by_session
            .remove_if(session_id, |_, notify| Arc::strong_count(notify) == 1);
    }
}

/// A live subscription to one stream of a session, from
/// [`Store::subscribe`].
///
/// [`next`](Subscription::next) first yields the events after the cursor
/// (the replay), then each new event of the stream as it is appended, in
/// `seq` order, with no gap and no duplicate at the seam: both phases read
/// the log with the same `events_after` cursor, and commit order equals seq
/// order. Appends through the same [`Store`] (or any of its clones) wake the
/// subscription at once; appends by another process on a shared backend are
/// seen within the store's `poll_interval`.
///
/// The subscription ends with an error when the session is deleted or
/// expires (`NotFound`) or when the subscriber fell so far behind that
/// trimming removed events it had not read (`CursorExpired`); after an
/// error, `next` returns `None`.
#[derive(Debug)]
pub struct Subscription {
    store: Store,
    session_id: String,
    cursor: EventId,
    buffer: VecDeque<Event>,
    notify: Arc<Notify>,
    poll: Duration,
    ended: bool,
}

impl Subscription {
    pub(crate) async fn start(
        store: Store,
        session_id: String,
        cursor: EventId,
    ) -> Result<Subscription> {
        let notify = store.wakers().register(&session_id);
        let poll = store.options().poll_interval;
        let mut sub = Subscription {
            store,
            session_id,
            cursor,
            buffer: VecDeque::new(),
            notify,
            poll,
            ended: false,
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

    async fn fetch(&mut self) -> Result<bool> {
        let page = self
            .store
            .events_after(&self.session_id, &self.cursor, CHUNK)
            .await?;
        match page.items.last() {
            Some(last) => {
                self.cursor.seq = last.seq;
                self.buffer.extend(page.items);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next event: replayed, or new. Waits for one to be appended;
    /// cancel-safe (dropping the future loses nothing).
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            // Register for a wake-up before reading, so an append between
            // the read and the wait is not missed.
            let notified = self.notify.clone();
            let notified = notified.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.fetch().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Let go of our reference first, so `release` sees the others only.
        self.notify = Arc::new(Notify::new());
        self.store.wakers().release(&self.session_id);
    }
}
