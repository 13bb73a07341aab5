//! Runtime helpers: the tokio runtime a call runs on, and the backoff
//! between retries of a lost race.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// The tokio runtime this call runs on: background tasks (the sweeper, the
/// SQLite writer, the PostgreSQL append workers, pub/sub listeners) live
/// there.
pub(crate) fn current_runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "mcp-session-store needs a tokio runtime: call it from within one",
        )
    })
}

/// Wait before retry `attempt` (0-based) of a lost compare-and-set:
/// jittered exponential backoff of 0–20 µs, doubling, capped near 5 ms.
pub(crate) async fn backoff(attempt: u32) {
    let ceiling_us = 20u64 << attempt.min(8);
    let us = fastrand::u64(0..=ceiling_us);
    // Outside a tokio runtime (another executor) there is no timer: yield.
    if us < 50 || tokio::runtime::Handle::try_current().is_err() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}
