//! `NativeSweeper`: the background expiry sweeper of `Store.spawn_sweeper`.
//! It runs `cleanup_expired` on the bridge runtime every interval until
//! `stop()` is called or the handle is garbage-collected.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use mss_core::{Sweeper, SweeperStats};
use pyo3::prelude::*;

/// A running sweeper (private; use `Store.spawn_sweeper`).
#[pyclass(frozen, module = "mcp_session_store._native")]
pub struct NativeSweeper {
    inner: Mutex<Option<Sweeper>>,
    stats: Arc<SweeperStats>,
}

impl NativeSweeper {
    pub fn new(sweeper: Sweeper) -> Self {
        NativeSweeper {
            stats: sweeper.stats().clone(),
            inner: Mutex::new(Some(sweeper)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Sweeper>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl NativeSweeper {
    /// What the sweeper has done so far.
    fn stats(&self) -> PySweeperStats {
        PySweeperStats {
            runs: self.stats.runs.load(Relaxed),
            sessions_removed: self.stats.sessions_removed.load(Relaxed),
            errors: self.stats.errors.load(Relaxed),
            running: self.slot().is_some(),
        }
    }

    /// False once stopped.
    #[getter]
    fn running(&self) -> bool {
        self.slot().is_some()
    }

    /// Stop the sweeper; False if it was already stopped.
    fn stop(&self) -> bool {
        // Take it out of the lock first: dropping it aborts the task.
        let sweeper = self.slot().take();
        sweeper.is_some()
    }
}

/// What a sweeper has done: completed runs, sessions removed over all runs,
/// failed runs, and whether it still runs.
#[pyclass(frozen, get_all, name = "SweeperStats", module = "mcp_session_store")]
pub struct PySweeperStats {
    runs: u64,
    sessions_removed: u64,
    errors: u64,
    running: bool,
}

#[pymethods]
impl PySweeperStats {
    fn __repr__(&self) -> String {
        format!(
            "SweeperStats(runs={}, sessions_removed={}, errors={}, running={})",
            self.runs,
            self.sessions_removed,
            self.errors,
            if self.running { "True" } else { "False" }
        )
    }
}
