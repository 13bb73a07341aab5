//! The handles a store call leaves running: a live subscription
//! (`NativeSubscription`, replay then new events, read on the bridge's
//! runtime) and a background expiry sweeper (`NativeSweeper`, whose task
//! runs there).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::run;
use crate::types::{EventInfo, SweeperStatsInfo};

/// A live subscription to one stream.
#[napi]
pub struct NativeSubscription {
    inner: Arc<tokio::sync::Mutex<Option<mss_core::Subscription>>>,
    closed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl NativeSubscription {
    pub(crate) fn new(sub: mss_core::Subscription) -> NativeSubscription {
        let (closed, _) = tokio::sync::watch::channel(false);
        NativeSubscription {
            inner: Arc::new(tokio::sync::Mutex::new(Some(sub))),
            closed: Arc::new(closed),
        }
    }
}

#[napi]
impl NativeSubscription {
    /// The next event (replayed or new); `null` once closed or ended.
    #[napi]
    pub async fn next(&self) -> Result<Option<EventInfo>> {
        let inner = Arc::clone(&self.inner);
        let closed = self.closed.subscribe();
        let event = run(next_event(inner, closed)).await?;
        Ok(event.map(EventInfo::from))
    }

    /// Stop the subscription; a pending `next` resolves to `null`.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Ok(mut guard) = self.inner.try_lock() {
            *guard = None;
        }
    }
}

/// The next event of `inner`, polled on the bridge's runtime; `None` once
/// `closed` is set or the subscription ended (an error ends it too).
async fn next_event(
    inner: Arc<tokio::sync::Mutex<Option<mss_core::Subscription>>>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) -> mss_core::Result<Option<mss_core::Event>> {
    if *closed.borrow_and_update() {
        return Ok(None);
    }
    let mut guard = tokio::select! {
        g = inner.lock() => g,
        _ = closed.changed() => return Ok(None),
    };
    let Some(sub) = guard.as_mut() else {
        return Ok(None);
    };
    tokio::select! {
        event = sub.next() => match event {
            Some(Ok(event)) => Ok(Some(event)),
            Some(Err(e)) => {
                *guard = None;
                Err(e)
            }
            None => {
                *guard = None;
                Ok(None)
            }
        },
        _ = closed.changed() => {
            *guard = None;
            Ok(None)
        }
    }
}

/// A background expiry sweeper.
#[napi]
pub struct NativeSweeper {
    inner: std::sync::Mutex<Option<mss_core::Sweeper>>,
    stats: Arc<mss_core::SweeperStats>,
}

impl NativeSweeper {
    pub(crate) fn new(sweeper: mss_core::Sweeper) -> NativeSweeper {
        NativeSweeper {
            stats: sweeper.stats().clone(),
            inner: std::sync::Mutex::new(Some(sweeper)),
        }
    }
}

#[napi]
impl NativeSweeper {
    /// Completed runs, sessions removed, failed runs.
    #[napi]
    pub fn stats(&self) -> SweeperStatsInfo {
        use std::sync::atomic::Ordering::Relaxed;
        let running = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        SweeperStatsInfo {
            runs: self.stats.runs.load(Relaxed) as i64,
            sessions_removed: self.stats.sessions_removed.load(Relaxed) as i64,
            errors: self.stats.errors.load(Relaxed) as i64,
            running,
        }
    }

    /// Stop the sweeper.
    #[napi]
    pub fn stop(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
    }
}
