//! Expiry: removing expired sessions with their state and events.

use crate::args::write_opt;
use crate::boundary::{block_on, boundary};
use crate::status::{mss_error, mss_status};
use crate::store::{mss_store, store as get_store};

/// What `mss_cleanup_expired` removed.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mss_cleanup_stats {
    /// Expired sessions removed.
    pub sessions: u64,
    /// State entries removed with them.
    pub state_entries: u64,
    /// Events removed with them.
    pub events: u64,
}

/// Delete every expired session with its state and events; `*stats_out`
/// (may be NULL) counts what was removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mss_cleanup_expired(
    store: *const mss_store,
    stats_out: *mut mss_cleanup_stats,
    err_out: *mut *mut mss_error,
) -> mss_status {
    boundary(err_out, || {
        let store = get_store(store)?;
        let stats = block_on(async move { store.cleanup_expired().await })??;
        let stats = mss_cleanup_stats {
            sessions: stats.sessions,
            state_entries: stats.state_entries,
            events: stats.events,
        };
        // SAFETY: `stats_out` is NULL or points to a writable
        // `mss_cleanup_stats` (the header's contract).
        unsafe { write_opt(stats_out, stats) };
        Ok(())
    })
}
