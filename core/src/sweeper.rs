//! The optional background expiry sweeper.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::Backend;
use crate::error::Result;
use crate::runtime::current_runtime;

/// A background expiry sweeper; dropping it stops the sweeper.
#[derive(Debug)]
pub struct Sweeper {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<SweeperStats>,
}

/// What a [`Sweeper`] has done so far.
#[derive(Debug, Default)]
pub struct SweeperStats {
    /// Completed cleanup runs.
    pub runs: AtomicU64,
    /// Sessions removed over all runs.
    pub sessions_removed: AtomicU64,
    /// Runs that failed (the sweeper keeps going).
    pub errors: AtomicU64,
}

impl Sweeper {
    /// Run `backend.cleanup_expired()` every `interval` on the current tokio
    /// runtime until the handle is dropped. A failed run is counted and
    /// logged, and the sweeper goes on.
    pub(crate) fn spawn(backend: Arc<dyn Backend>, interval: Duration) -> Result<Sweeper> {
        let runtime = current_runtime()?;
        let stats = Arc::new(SweeperStats::default());
        let task_stats = stats.clone();
        let task = runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match backend.cleanup_expired().await {
                    Ok(removed) => {
                        task_stats
                            .sessions_removed
                            .fetch_add(removed.sessions, Ordering::Relaxed);
                        if removed.sessions > 0 {
                            tracing::debug!(
                                backend = backend.info().name,
                                sessions = removed.sessions,
                                "sweeper removed expired sessions"
                            );
                        }
                    }
                    Err(e) => {
                        task_stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            backend = backend.info().name,
                            error = %e,
                            "sweeper: cleanup of expired sessions failed; retrying at the next interval"
                        );
                    }
                }
                task_stats.runs.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Sweeper { task, stats })
    }

    /// The counters, shared with the running task.
    pub fn stats(&self) -> &Arc<SweeperStats> {
        &self.stats
    }

    /// Stop the sweeper (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
