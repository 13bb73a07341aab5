//! What the bench prints: one JSON line per workload on stdout
//! ([`Report`]: the run's parameters, timing, correctness counters and other
//! figures, in a fixed key order), the notes about failures on stderr, and
//! the progress bars (stderr).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mcp_session_store::Result;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::measure::{Merged, per_sec, percentile_us, round_to};
use super::{Ctx, Workload};
use crate::out::Out;

/// Operations a task counts before it advances the shared progress bar.
const TICK_BATCH: u64 = 256;

/// One output line.
pub(super) struct Report {
    workload: &'static str,
    backend: &'static str,
    sessions: usize,
    events_per_session: usize,
    concurrency: usize,
    ops: u64,
    pub(super) errors: u64,
    elapsed_s: f64,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// Correctness counters: the run is good only if all are zero.
    counters: Vec<(&'static str, i64)>,
    /// Other figures.
    extra: Vec<(&'static str, Value)>,
    /// Not printed on stdout.
    pub(super) first_error: Option<String>,
}

impl Report {
    /// Add a correctness counter.
    pub(super) fn counter(mut self, name: &'static str, value: i64) -> Report {
        self.counters.push((name, value));
        self
    }

    /// Add another figure.
    pub(super) fn extra(mut self, name: &'static str, value: impl Into<Value>) -> Report {
        self.extra.push((name, value.into()));
        self
    }

    /// No store call failed and every counter is zero.
    pub(super) fn passed(&self) -> bool {
        self.errors == 0 && self.counters.iter().all(|(_, v)| *v == 0)
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map =
            serializer.serialize_map(Some(11 + self.counters.len() + self.extra.len()))?;
        map.serialize_entry("workload", self.workload)?;
        map.serialize_entry("backend", self.backend)?;
        map.serialize_entry("sessions", &self.sessions)?;
        map.serialize_entry("events_per_session", &self.events_per_session)?;
        map.serialize_entry("concurrency", &self.concurrency)?;
        map.serialize_entry("ops", &self.ops)?;
        map.serialize_entry("errors", &self.errors)?;
        map.serialize_entry("elapsed_s", &self.elapsed_s)?;
        map.serialize_entry("ops_per_sec", &self.ops_per_sec)?;
        map.serialize_entry("p50_us", &self.p50_us)?;
        map.serialize_entry("p99_us", &self.p99_us)?;
        for (name, value) in &self.counters {
            map.serialize_entry(name, value)?;
        }
        for (name, value) in &self.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Ctx {
    /// A report with the run's parameters and the timing of `merged`.
    pub(super) fn report(
        &self,
        w: Workload,
        ops: u64,
        elapsed: Duration,
        merged: Merged,
    ) -> Report {
        let secs = elapsed.as_secs_f64();
        let mut lat = merged.latencies_ns;
        lat.sort_unstable();
        Report {
            workload: w.name(),
            backend: self.backend,
            sessions: self.n,
            events_per_session: self.m,
            concurrency: self.c,
            ops,
            errors: merged.errors,
            elapsed_s: round_to(secs, 6),
            ops_per_sec: round_to(per_sec(ops, secs), 1),
            p50_us: percentile_us(&lat, 0.50),
            p99_us: percentile_us(&lat, 0.99),
            counters: Vec::new(),
            extra: Vec::new(),
            first_error: merged.first_error,
        }
    }
}

/// Print the outcome of workload `w`: its line on stdout (and, if store
/// calls failed, the first failure on stderr), or the error that stopped it
/// on stderr. Returns whether it passed.
pub(super) fn print_outcome(out: &mut Out, w: Workload, result: Result<Report>) -> Result<bool> {
    match result {
        Ok(report) => {
            if let Some(first) = &report.first_error {
                eprintln!(
                    "{}: {} store call(s) failed; the first: {first}",
                    w.name(),
                    report.errors
                );
            }
            out.line(&report)?;
            out.flush()?;
            Ok(report.passed())
        }
        Err(e) => {
            eprintln!("error: {}: {e}", w.name());
            Ok(false)
        }
    }
}

/// The progress bar of workload `w` (on stderr).
pub(super) fn progress_bar(w: Workload) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:.bold} {msg:8} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec:0})",
    )
    .expect("valid progress template");
    let pb = ProgressBar::new(0).with_style(style);
    pb.set_prefix(w.name());
    pb
}

/// Restart the bar for a new phase of `len` steps.
pub(super) fn phase(pb: &ProgressBar, msg: &'static str, len: usize) {
    pb.reset();
    pb.set_length(len as u64);
    pb.set_message(msg);
}

/// Advances a shared progress bar in batches, so the hot loop touches no
/// shared state.
pub(super) struct Ticker {
    pb: ProgressBar,
    pending: u64,
}

impl Ticker {
    pub(super) fn new(pb: &ProgressBar) -> Ticker {
        Ticker {
            pb: pb.clone(),
            pending: 0,
        }
    }

    #[inline]
    pub(super) fn tick(&mut self) {
        self.pending += 1;
        if self.pending >= TICK_BATCH {
            self.pb.inc(self.pending);
            self.pending = 0;
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.pb.inc(self.pending);
        }
    }
}
