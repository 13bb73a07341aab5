//! Measurement for the bench: per-task latency samples and failed calls
//! ([`Recorder`], merged into [`Merged`]), nearest-rank percentiles, rates,
//! and the event-log correctness counters ([`LogCheck`]).

use std::time::Instant;

use mcp_session_store::{Error, Result};

/// `n` per second over `secs` (0 if no time passed).
pub(super) fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// `x` rounded to `decimals` decimal places.
pub(super) fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
pub(super) fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_ns.len() as f64).ceil() as usize;
    let ns = sorted_ns[rank.clamp(1, sorted_ns.len()) - 1];
    round_to(ns as f64 / 1000.0, 2)
}

/// Per-task latency samples and error count.
pub(super) struct Recorder {
    pub(super) latencies_ns: Vec<u64>,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl Recorder {
    pub(super) fn new(capacity: usize) -> Recorder {
        Recorder {
            latencies_ns: Vec::with_capacity(capacity),
            errors: 0,
            first_error: None,
        }
    }

    /// Record one store call that started at `t0` and returned `r`.
    #[inline]
    pub(super) fn record<T>(&mut self, t0: Instant, r: Result<T>) -> Option<T> {
        let ns = t0.elapsed().as_nanos() as u64;
        self.latencies_ns.push(ns);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(&e);
                None
            }
        }
    }

    /// Count a failed call without a latency sample.
    pub(super) fn error(&mut self, e: &Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// Every task's recorder, merged.
#[derive(Default)]
pub(super) struct Merged {
    pub(super) latencies_ns: Vec<u64>,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl Merged {
    pub(super) fn add(&mut self, r: Recorder) {
        if self.latencies_ns.is_empty() {
            self.latencies_ns = r.latencies_ns;
        } else {
            self.latencies_ns.extend_from_slice(&r.latencies_ns);
        }
        self.errors += r.errors;
        if self.first_error.is_none() {
            self.first_error = r.first_error;
        }
    }
}
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogCheck {
    pub(super) lost_events: i64,
    pub(super) duplicate_ids: i64,
    pub(super) non_increasing: i64,
}

impl LogCheck {
    pub(super) fn add(&mut self, o: LogCheck) {
        self.lost_events += o.lost_events;
        self.duplicate_ids += o.duplicate_ids;
        self.non_increasing += o.non_increasing;
    }
}

/// Check one session's log: `appended` are the seqs each appender got back,
/// in the order it got them; `read` the seqs read back, in order.
///
/// - `non_increasing`: places where an appender's seqs (or the read-back
///   order) did not strictly increase;
/// - `duplicate_ids`: seqs handed out twice, plus seqs read back twice;
/// - `lost_events`: distinct appended seqs not read back.
pub(super) fn check_log(appended: &[Vec<u64>], read: &[u64]) -> LogCheck {
    let non_increasing = |s: &[u64]| s.windows(2).filter(|w| w[1] <= w[0]).count() as i64;
    let mut check = LogCheck {
        non_increasing: appended.iter().map(|s| non_increasing(s)).sum::<i64>()
            + non_increasing(read),
        ..LogCheck::default()
    };
    let mut all: Vec<u64> = appended.iter().flatten().copied().collect();
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    check.duplicate_ids += (n - all.len()) as i64;
    let mut seen = read.to_vec();
    seen.sort_unstable();
    let n = seen.len();
    seen.dedup();
    check.duplicate_ids += (n - seen.len()) as i64;
    check.lost_events = all
        .iter()
        .filter(|s| seen.binary_search(s).is_err())
        .count() as i64;
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_checks() {
        let ok = check_log(&[vec![1, 2, 3]], &[1, 2, 3]);
        assert_eq!(ok, LogCheck::default());
        let bad = check_log(&[vec![1, 3, 2], vec![3, 4]], &[1, 2, 3]);
        assert_eq!(
            bad,
            LogCheck {
                lost_events: 1,
                duplicate_ids: 1,
                non_increasing: 1
            }
        );
        let twice = check_log(&[vec![1, 2]], &[1, 2, 2]);
        assert_eq!(twice.duplicate_ids, 1);
        assert_eq!(twice.non_increasing, 1);
    }

    #[test]
    fn percentiles() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&samples, 0.50), 50.0);
        assert_eq!(percentile_us(&samples, 0.99), 99.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }
}
