//! Wake-ups of local subscribers: every append through a store bumps a
//! per-session counter that its subscriptions watch.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;

/// Wakes the subscribers of a session when this process appends to it: a
/// per-session counter that every append bumps, which a subscription
/// compares with the value it last read the log at.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    by_session: DashMap<String, watch::Sender<u64>, foldhash::fast::RandomState>,
    /// Entries in `by_session`: appends skip the map while it is zero
    /// (`DashMap::is_empty` would lock every shard).
    sessions: AtomicUsize,
    /// The backend pushes other processes' appends here (or is starting to).
    watching: AtomicBool,
}

impl Wakers {
    /// Called after every successful append or delete through this store.
    pub(crate) fn wake(&self, session_id: &str) {
        if self.sessions.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(tx) = self.by_session.get(session_id) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// True for the one caller that should start the backend's pushes.
    pub(crate) fn start_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::AcqRel)
    }

    /// The backend does not push: a later subscriber may ask again.
    pub(crate) fn stop_watching(&self) {
        self.watching.store(false, Ordering::Release);
    }

    pub(crate) fn register(&self, session_id: &str) -> watch::Receiver<u64> {
        match self.by_session.entry(session_id.to_string()) {
            Entry::Occupied(entry) => entry.get().subscribe(),
            Entry::Vacant(entry) => {
                self.sessions.fetch_add(1, Ordering::AcqRel);
                entry.insert(watch::channel(0).0).subscribe()
            }
        }
    }

    pub(crate) fn release(&self, session_id: &str) {
        // Remove the entry once no subscription listens.
        if self
            .by_session
            .remove_if(session_id, |_, tx| tx.receiver_count() == 0)
            .is_some()
        {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
