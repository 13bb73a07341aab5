//! `mcp-session-store bench`: the workloads of BENCH.md.
//!
//! Each workload sets up its data untimed, runs its timed part on `C` tokio
//! tasks (each on a contiguous share of the sessions), checks correctness
//! untimed, prints one JSON line and deletes the sessions it created.
//! Latency is measured with [`Instant`] around each store call into
//! preallocated per-task vectors, merged afterwards.

use std::collections::HashSet;
use std::ops::Range;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use indicatif::{ProgressBar, ProgressStyle};
use mcp_session_store::validate::MAX_PAGE_LIMIT;
use mcp_session_store::{
    Error, ErrorKind, Event, EventId, Json, NewEvent, NewSession, Result, Store, StoreOptions,
    Subscription,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::out::Out;

pub const LONG_ABOUT: &str = "\
Run the benchmark workloads of BENCH.md against a store and print one JSON \
object per workload on stdout (progress bars go to stderr).

Workloads (select with --only, default all of W1-W8):
  W1   W1_create_session               create N sessions (generated ids)
  W2   W2_state_set_get                per session set 10 small JSON keys, read each back
  W3a  W3a_event_append                M events (~200-byte JSON) per session, C tasks on distinct sessions
  W3b  W3b_event_append_same_session   C tasks each append M events to ONE session
  W3c  W3c_live_tail                   as W3b while one reader polls events_after(last seen)
  W4   W4_replay                       per session, events_after the middle event (seq M/2)
  W5   W5_cleanup                      N expired sessions (+ up to 100 live ones), one cleanup_expired()
  W6   W6_state_counter                C tasks each increment one counter 100 times with update_state
  W7   W7_cross_process                2 child processes x C tasks each append M events to ONE session
                                       while this process polls events_after(last seen)
  W8   W8_subscribe_latency            a child process appends M events (one every 2 ms), this
                                       process receives them through subscribe(); append->delivery
W7 and W8 need a store shared between processes (sqlite://PATH): on \
memory:// they are skipped, with one line on stderr, and do not fail the run. \
They re-run this binary as child processes (a hidden bench-child command), \
which open the same store URL and report back on their stdout.

Every line carries workload, backend, sessions, events_per_session and \
concurrency (the run's parameters), ops, errors (store calls that failed in \
the timed part), elapsed_s, ops_per_sec, p50_us and p99_us (per store call), \
plus the workload's correctness counters:
  W1  duplicate_ids
  W2  readback_mismatches
  W3a, W3b  lost_events (appended, never read back), duplicate_ids (a seq handed
            out or read back twice), non_increasing (an appender's seqs, or
            the read-back order, not strictly increasing), verify_errors
            (reading a log back failed)
  W3c  the W3b counters and missed_by_tail_reader
  W4  wrong_replays (and events_per_sec)
  W5  wrongly_expired, stale_not_expired
  W6  lost_updates (successful increments minus the final value)
  W7  the W3c counters, over the appends of both processes (ops = 2*C*M;
      elapsed_s from the start signal to both children's exit, after they
      opened the store: startup_s; p50/p99 per append, in the children)
  W8  missed (appended, not delivered within a few seconds of the last
      append), duplicated (delivered twice or out of order); ops = M,
      p50_us/p99_us are the append->delivery latencies (send time in the
      payload vs receive time, both wall clock), append_p50_us/append_p99_us
      the child's append calls. On SQLite the latency is dominated by the
      store's poll_interval (default 250 ms, set it as a URL parameter, e.g.
      sqlite://bench.db?poll_interval=5ms): a subscription sees appends by
      another process only when it polls.
The exit code is 1 if any counter or errors is nonzero, after all lines are \
printed.

Session ids are prefixed with bench-<random run id>- (W1 uses generated \
ids), and every workload deletes the sessions it created, so the store is \
left as it was. The store (and every child process) is opened with \
max_events_per_session of at least max(M, 2*C*M) so W3b/W3c/W7 do not trim; \
a max_events_per_session in the URL overrides that.";

/// Arguments of `bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Store URL: `memory://` or `sqlite://PATH` (options as query
    /// parameters).
    #[arg(long, value_name = "URL", env = "MCP_SESSION_STORE_URL")]
    pub store: String,
    /// Sessions per workload (N).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub sessions: usize,
    /// Events per session (M), and per task in W3b/W3c/W7; the W8 child
    /// appends M events.
    #[arg(long, value_name = "M", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub events: usize,
    /// Concurrent tokio tasks (C); in W7, per child process.
    #[arg(long, value_name = "C", default_value_t = 8,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub concurrency: usize,
    /// Comma-separated workloads to run, by id or full name (e.g.
    /// `W1,W3a,W4_replay`); default: all, W1-W8 (W7 and W8 are skipped on a
    /// store that is not shared between processes).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub only: Vec<String>,
}

/// A workload of BENCH.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Workload {
    W1,
    W2,
    W3a,
    W3b,
    W3c,
    W4,
    W5,
    W6,
    W7,
    W8,
}

impl Workload {
    const ALL: [Workload; 10] = [
        Workload::W1,
        Workload::W2,
        Workload::W3a,
        Workload::W3b,
        Workload::W3c,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W7,
        Workload::W8,
    ];

    fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3a => "W3a",
            Workload::W3b => "W3b",
            Workload::W3c => "W3c",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
            Workload::W8 => "W8",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1_create_session",
            Workload::W2 => "W2_state_set_get",
            Workload::W3a => "W3a_event_append",
            Workload::W3b => "W3b_event_append_same_session",
            Workload::W3c => "W3c_live_tail",
            Workload::W4 => "W4_replay",
            Workload::W5 => "W5_cleanup",
            Workload::W6 => "W6_state_counter",
            Workload::W7 => "W7_cross_process",
            Workload::W8 => "W8_subscribe_latency",
        }
    }

    /// Whether the workload runs child processes on the same store, so it
    /// needs a backend shared between processes.
    fn cross_process(self) -> bool {
        matches!(self, Workload::W7 | Workload::W8)
    }

    fn parse(s: &str) -> Option<Workload> {
        let s = s.trim();
        Workload::ALL
            .into_iter()
            .find(|w| s.eq_ignore_ascii_case(w.id()) || s.eq_ignore_ascii_case(w.name()))
    }
}

/// The workloads `--only` names, in canonical order.
fn select(only: &[String]) -> Result<Vec<Workload>> {
    if only.is_empty() {
        return Ok(Workload::ALL.to_vec());
    }
    let mut selected = Vec::new();
    for name in only.iter().filter(|s| !s.trim().is_empty()) {
        let w = Workload::parse(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "unknown workload {name:?} in --only: expected W1, W2, W3a, W3b, W3c, W4, W5, W6, W7 or W8"
                ),
            )
        })?;
        selected.push(w);
    }
    if selected.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--only names no workload",
        ));
    }
    selected.sort();
    selected.dedup();
    Ok(selected)
}

// ---- constants -------------------------------------------------------------

/// The stream every bench event is appended on.
const STREAM: &str = "bench";
/// Target size of an event payload, in bytes of JSON text.
const PAYLOAD_BYTES: usize = 200;
/// Page size when reading event logs back.
const READ_PAGE: usize = 1000;
/// State keys per session in W2.
const W2_KEYS: usize = 10;
/// Live sessions at most in W5.
const W5_LIVE_MAX: usize = 100;
/// How long W5 waits for its 1 ms sessions to expire.
const W5_WAIT: Duration = Duration::from_millis(20);
/// Increments per task in W6.
const W6_INCREMENTS: usize = 100;
/// Child processes appending in W7.
const W7_PROCESSES: usize = 2;
/// The W8 child's pace: one append every this long.
const W8_PACE: Duration = Duration::from_millis(2);
/// Progress lines from a child process, at most this often.
const CHILD_PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// How long a child process may take to open the store and say it is ready,
/// and how long it waits for the start signal.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one append may take in a child process.
const CHILD_APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// A child's run may take this long, plus [`CHILD_TIME_PER_APPEND`] (and its
/// pace) per append, before it is killed.
const CHILD_RUN_TIMEOUT: Duration = Duration::from_secs(30);
const CHILD_TIME_PER_APPEND: Duration = Duration::from_millis(2);
/// After the W8 child exited, how long the subscription may take to deliver
/// the rest, plus two poll intervals (capped at [`W8_GRACE_POLLS_MAX`]).
const W8_GRACE: Duration = Duration::from_secs(5);
const W8_GRACE_POLLS_MAX: Duration = Duration::from_secs(60);
/// The W3c reader's pause when a poll returned nothing.
const TAIL_IDLE: Duration = Duration::from_micros(200);
/// Operations a task counts before it advances the shared progress bar.
const TICK_BATCH: u64 = 256;

// ---- entry -----------------------------------------------------------------

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    let workloads = select(&args.only)?;
    let (n, m, c) = (args.sessions, args.events, args.concurrency);
    let max_events = m
        .max(c.saturating_mul(m).saturating_mul(W7_PROCESSES))
        .max(1000) as u64;
    let options = StoreOptions::default().with_max_events_per_session(max_events);
    let store = Store::open_with(&args.store, options).await?;
    let kept = store.options().max_events_per_session;
    let shared = store.backend().is_shared();
    let (workloads, skipped): (Vec<Workload>, Vec<Workload>) = workloads
        .into_iter()
        .partition(|w| shared || !w.cross_process());
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|w| w.name()).collect();
        eprintln!(
            "skipped {}: the {} backend is not shared between processes (use e.g. sqlite://PATH)",
            names.join(", "),
            store.backend_name()
        );
    }
    // Events per session each workload appends (and must read back whole).
    let short: Vec<String> = workloads
        .iter()
        .filter_map(|w| {
            let per_session = match w {
                Workload::W3a | Workload::W4 | Workload::W8 => m,
                Workload::W3b | Workload::W3c => c.saturating_mul(m),
                Workload::W7 => c.saturating_mul(m).saturating_mul(W7_PROCESSES),
                _ => 0,
            };
            (per_session as u64 > kept).then(|| format!("{} ({per_session})", w.id()))
        })
        .collect();
    if !short.is_empty() {
        eprintln!(
            "warning: the store keeps {kept} events per session (max_events_per_session in the URL) \
             but {} append more per session: their logs get trimmed and cannot be verified",
            short.join(", ")
        );
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let ctx = Ctx {
        backend: store.backend_name(),
        store: store.clone(),
        url: args.store.clone(),
        max_events: kept,
        n,
        m,
        c,
        run_id,
    };
    let keep_for_w4 = workloads.contains(&Workload::W4);
    let mut carry: Option<Arc<Vec<String>>> = None;
    let mut failed = false;
    let mut out = Out::new();
    for w in workloads {
        let pb = progress_bar(w);
        let mut cleanup: Vec<String> = Vec::new();
        let result = match w {
            Workload::W1 => w1(&ctx, &pb, &mut cleanup).await,
            Workload::W2 => w2(&ctx, &pb, &mut cleanup).await,
            Workload::W3a => {
                let kept = keep_for_w4.then_some(&mut carry);
                w3a(&ctx, &pb, &mut cleanup, kept).await
            }
            Workload::W3b => w3bc(&ctx, &pb, &mut cleanup, false).await,
            Workload::W3c => w3bc(&ctx, &pb, &mut cleanup, true).await,
            Workload::W4 => w4(&ctx, &pb, &mut cleanup, carry.take()).await,
            Workload::W5 => w5(&ctx, &pb, &mut cleanup).await,
            Workload::W6 => w6(&ctx, &pb, &mut cleanup).await,
            Workload::W7 => w7(&ctx, &pb, &mut cleanup).await,
            Workload::W8 => w8(&ctx, &pb, &mut cleanup).await,
        };
        let cleaned = delete_sessions(&ctx, &pb, cleanup).await;
        pb.finish_and_clear();
        if let Err(e) = cleaned {
            eprintln!("warning: {}: cleanup: {e}", w.name());
        }
        match result {
            Ok(report) => {
                if let Some(first) = &report.first_error {
                    eprintln!(
                        "{}: {} store call(s) failed; the first: {first}",
                        w.name(),
                        report.errors
                    );
                }
                failed |= !report.passed();
                out.line(&report)?;
                out.flush()?;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", w.name());
                failed = true;
            }
        }
    }
    if let Some(ids) = carry.take() {
        let pb = ProgressBar::hidden();
        if let Err(e) = delete_sessions(&ctx, &pb, ids.to_vec()).await {
            eprintln!("warning: cleanup: {e}");
        }
    }
    store.close().await?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

// ---- shared machinery --------------------------------------------------------

/// What every workload needs.
struct Ctx {
    store: Store,
    /// The store's URL, for the child processes of W7 and W8.
    url: String,
    /// The store's max_events_per_session, passed on to child processes.
    max_events: u64,
    backend: &'static str,
    n: usize,
    m: usize,
    c: usize,
    /// 8 random hex digits in every session id of this run.
    run_id: String,
}

impl Ctx {
    /// The id of bench session `i` of workload `tag`.
    fn sid(&self, tag: &str, i: usize) -> String {
        format!("bench-{}-{tag}-{i:07}", self.run_id)
    }

    /// Task `task`'s contiguous share of `0..total`.
    fn share(&self, total: usize, task: usize) -> Range<usize> {
        total * task / self.c..total * (task + 1) / self.c
    }

    /// A report with the run's parameters and the timing of `merged`.
    fn report(&self, w: Workload, ops: u64, elapsed: Duration, merged: Merged) -> Report {
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

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_ns.len() as f64).ceil() as usize;
    let ns = sorted_ns[rank.clamp(1, sorted_ns.len()) - 1];
    round_to(ns as f64 / 1000.0, 2)
}

/// Per-task latency samples and error count.
struct Recorder {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    fn new(capacity: usize) -> Recorder {
        Recorder {
            latencies_ns: Vec::with_capacity(capacity),
            errors: 0,
            first_error: None,
        }
    }

    /// Record one store call that started at `t0` and returned `r`.
    #[inline]
    fn record<T>(&mut self, t0: Instant, r: Result<T>) -> Option<T> {
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
    fn error(&mut self, e: &Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// Every task's recorder, merged.
#[derive(Default)]
struct Merged {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Merged {
    fn add(&mut self, r: Recorder) {
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

/// One output line.
struct Report {
    workload: &'static str,
    backend: &'static str,
    sessions: usize,
    events_per_session: usize,
    concurrency: usize,
    ops: u64,
    errors: u64,
    elapsed_s: f64,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// Correctness counters: the run is good only if all are zero.
    counters: Vec<(&'static str, i64)>,
    /// Other figures.
    extra: Vec<(&'static str, Value)>,
    /// Not printed on stdout.
    first_error: Option<String>,
}

impl Report {
    fn counter(mut self, name: &'static str, value: i64) -> Report {
        self.counters.push((name, value));
        self
    }

    fn extra(mut self, name: &'static str, value: impl Into<Value>) -> Report {
        self.extra.push((name, value.into()));
        self
    }

    fn passed(&self) -> bool {
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

fn progress_bar(w: Workload) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:.bold} {msg:8} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec:0})",
    )
    .expect("valid progress template");
    let pb = ProgressBar::new(0).with_style(style);
    pb.set_prefix(w.name());
    pb
}

/// Restart the bar for a new phase of `len` steps.
fn phase(pb: &ProgressBar, msg: &'static str, len: usize) {
    pb.reset();
    pb.set_length(len as u64);
    pb.set_message(msg);
}

/// Advances a shared progress bar in batches, so the hot loop touches no
/// shared state.
struct Ticker {
    pb: ProgressBar,
    pending: u64,
}

impl Ticker {
    fn new(pb: &ProgressBar) -> Ticker {
        Ticker {
            pb: pb.clone(),
            pending: 0,
        }
    }

    #[inline]
    fn tick(&mut self) {
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

/// Spawn `c` tasks built by `make(task)` on the runtime and wait for all,
/// returning their outputs in task order.
async fn run_tasks<R, Fut>(c: usize, mut make: impl FnMut(usize) -> Fut) -> Result<Vec<R>>
where
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let handles: Vec<_> = (0..c).map(|t| tokio::spawn(make(t))).collect();
    let mut outputs = Vec::with_capacity(c);
    for handle in handles {
        let output = handle
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("a bench task failed: {e}")))?;
        outputs.push(output);
    }
    Ok(outputs)
}

/// Create `count` sessions `tag-0..count` (untimed, `C` tasks). Each id is
/// added to `cleanup` once created.
async fn create_sessions(
    ctx: &Ctx,
    pb: &ProgressBar,
    tag: &str,
    count: usize,
    ttl: Option<Duration>,
    cleanup: &mut Vec<String>,
) -> Result<Arc<Vec<String>>> {
    phase(pb, "setup", count);
    let ids: Arc<Vec<String>> = Arc::new((0..count).map(|i| ctx.sid(tag, i)).collect());
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(count, t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut created = Vec::with_capacity(range.len());
            for id in &ids[range] {
                let mut new = NewSession::new().with_id(id.clone());
                if let Some(ttl) = ttl {
                    new = new.with_ttl(ttl);
                }
                if let Err(e) = store.create_session(new).await {
                    return (created, Err(e));
                }
                created.push(id.clone());
                ticker.tick();
            }
            (created, Ok(()))
        }
    })
    .await?;
    let mut first_error = None;
    for (created, result) in outputs {
        cleanup.extend(created);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(Error::new(
            e.kind(),
            format!("setup: creating sessions: {}", e.message()),
        )),
        None => Ok(ids),
    }
}

/// Delete `ids` (untimed, `C` tasks).
async fn delete_sessions(ctx: &Ctx, pb: &ProgressBar, ids: Vec<String>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    phase(pb, "cleanup", ids.len());
    let ids = Arc::new(ids);
    let count = ids.len();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(count, t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut failed = 0u64;
            let mut first = None;
            for id in &ids[range] {
                if let Err(e) = store.delete_session(id).await {
                    failed += 1;
                    first.get_or_insert(e);
                }
                ticker.tick();
            }
            (failed, first)
        }
    })
    .await?;
    let failed: u64 = outputs.iter().map(|(f, _)| f).sum();
    match outputs.into_iter().find_map(|(_, e)| e) {
        Some(e) => Err(Error::new(
            e.kind(),
            format!(
                "{failed} of {count} bench sessions could not be deleted; the first: {}",
                e.message()
            ),
        )),
        None => Ok(()),
    }
}

/// An event payload of about [`PAYLOAD_BYTES`] bytes, built once per task.
fn payload(task: usize) -> Json {
    let mut value = json!({
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "logger": "bench", "task": task, "data": ""},
    });
    let len = value.to_string().len();
    value["params"]["data"] = Value::String("x".repeat(PAYLOAD_BYTES.saturating_sub(len)));
    Json::from(value)
}

/// Every seq of the bench stream of session `id`, in the order read.
async fn read_seqs(store: &Store, id: &str) -> Result<Vec<u64>> {
    let mut cursor = EventId::start(STREAM);
    let mut seqs = Vec::new();
    loop {
        let page = store.events_after(id, &cursor, READ_PAGE).await?;
        seqs.extend(page.items.iter().map(|e| e.seq));
        match page.items.last() {
            Some(last) if last.seq > cursor.seq => cursor.seq = last.seq,
            _ => return Ok(seqs),
        }
        if page.next.is_none() {
            return Ok(seqs);
        }
    }
}

/// Correctness counters of one event log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LogCheck {
    lost_events: i64,
    duplicate_ids: i64,
    non_increasing: i64,
}

impl LogCheck {
    fn add(&mut self, o: LogCheck) {
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
fn check_log(appended: &[Vec<u64>], read: &[u64]) -> LogCheck {
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

// ---- W1 --------------------------------------------------------------------

async fn w1(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let n = ctx.n;
    phase(pb, "run", n);
    let started = Instant::now();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let range = ctx.share(n, t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(range.len());
            let mut ids = Vec::with_capacity(range.len());
            for _ in range {
                let t0 = Instant::now();
                let r = store.create_session(NewSession::new()).await;
                if let Some(session) = rec.record(t0, r) {
                    ids.push(session.id);
                }
                ticker.tick();
            }
            (rec, ids)
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let mut merged = Merged::default();
    let mut ids = Vec::with_capacity(n);
    for (rec, task_ids) in outputs {
        merged.add(rec);
        ids.extend(task_ids);
    }
    let distinct = ids.iter().collect::<HashSet<_>>().len();
    let duplicates = (ids.len() - distinct) as i64;
    cleanup.extend(ids);
    Ok(ctx
        .report(Workload::W1, n as u64, elapsed, merged)
        .counter("duplicate_ids", duplicates))
}

// ---- W2 --------------------------------------------------------------------

async fn w2(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let n = ctx.n;
    let ids = create_sessions(ctx, pb, "w2", n, None, cleanup).await?;
    let entries: Arc<Vec<(String, Json)>> = Arc::new(
        (0..W2_KEYS)
            .map(|i| {
                let value = json!({"k": i, "s": format!("value-{i}")});
                (format!("key-{i}"), Json::from(value))
            })
            .collect(),
    );
    let ops = n * W2_KEYS * 2;
    phase(pb, "run", ops);
    let started = Instant::now();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let entries = entries.clone();
        let range = ctx.share(n, t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(range.len() * W2_KEYS * 2);
            let mut mismatches = 0i64;
            let mut versions = [None::<u64>; W2_KEYS];
            for id in &ids[range] {
                for (slot, (key, value)) in versions.iter_mut().zip(entries.iter()) {
                    let value = value.clone();
                    let t0 = Instant::now();
                    let r = store.set_state(id, key, value).await;
                    *slot = rec.record(t0, r);
                    ticker.tick();
                }
                for (version, (key, value)) in versions.iter().zip(entries.iter()) {
                    let t0 = Instant::now();
                    let r = store.get_state(id, key).await;
                    let got = rec.record(t0, r);
                    ticker.tick();
                    // A failed set or get is an error, not a mismatch.
                    let (Some(version), Some(got)) = (version, got) else {
                        continue;
                    };
                    match got {
                        Some(entry) if entry.version == *version && entry.value == *value => {}
                        _ => mismatches += 1,
                    }
                }
            }
            (rec, mismatches)
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let mut merged = Merged::default();
    let mut mismatches = 0;
    for (rec, m) in outputs {
        merged.add(rec);
        mismatches += m;
    }
    Ok(ctx
        .report(Workload::W2, ops as u64, elapsed, merged)
        .counter("readback_mismatches", mismatches))
}

// ---- W3a -------------------------------------------------------------------

/// W3a. With `carry`, a clean run leaves its sessions (M events each, seqs
/// 1..=M on the bench stream) there for W4 instead of deleting them.
async fn w3a(
    ctx: &Ctx,
    pb: &ProgressBar,
    cleanup: &mut Vec<String>,
    carry: Option<&mut Option<Arc<Vec<String>>>>,
) -> Result<Report> {
    let (n, m) = (ctx.n, ctx.m);
    let ids = create_sessions(ctx, pb, "w3a", n, None, cleanup).await?;
    let ops = n * m;
    phase(pb, "run", ops);
    let started = Instant::now();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(n, t);
        let data = payload(t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(range.len() * m);
            let mut seqs: Vec<Vec<Vec<u64>>> = Vec::with_capacity(range.len());
            for id in &ids[range] {
                let mut session_seqs = Vec::with_capacity(m);
                for _ in 0..m {
                    let event = NewEvent::new(STREAM, data.clone());
                    let t0 = Instant::now();
                    let r = store.append_event(id, event).await;
                    if let Some(e) = rec.record(t0, r) {
                        session_seqs.push(e.seq);
                    }
                    ticker.tick();
                }
                seqs.push(vec![session_seqs]);
            }
            (rec, seqs)
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let mut merged = Merged::default();
    let mut appended = Vec::with_capacity(n);
    for (rec, seqs) in outputs {
        merged.add(rec);
        appended.extend(seqs);
    }
    let (check, verify_errors) = verify_logs(ctx, pb, &ids, appended).await?;
    let report = ctx
        .report(Workload::W3a, ops as u64, elapsed, merged)
        .counter("lost_events", check.lost_events)
        .counter("duplicate_ids", check.duplicate_ids)
        .counter("non_increasing", check.non_increasing)
        .counter("verify_errors", verify_errors);
    if let Some(carry) = carry
        && report.passed()
    {
        *carry = Some(ids);
        cleanup.clear();
    }
    Ok(report)
}

/// Read back every session of `ids` (untimed, `C` tasks) and check it
/// against `appended`: per session of `ids`, the seqs each of its appenders
/// got back.
async fn verify_logs(
    ctx: &Ctx,
    pb: &ProgressBar,
    ids: &Arc<Vec<String>>,
    appended: Vec<Vec<Vec<u64>>>,
) -> Result<(LogCheck, i64)> {
    let n = ids.len();
    if appended.len() != n {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("verify: {} sessions but {} logs", n, appended.len()),
        ));
    }
    phase(pb, "verify", n);
    // Shares are contiguous and in task order: hand each task its slice.
    let mut appended = appended.into_iter();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(n, t);
        let appended: Vec<Vec<Vec<u64>>> = appended.by_ref().take(range.len()).collect();
        let mut ticker = Ticker::new(pb);
        async move {
            let mut total = LogCheck::default();
            let mut errors = 0i64;
            let mut first = None;
            for (id, lists) in ids[range].iter().zip(appended) {
                match read_seqs(&store, id).await {
                    Ok(read) => total.add(check_log(&lists, &read)),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
                ticker.tick();
            }
            (total, errors, first)
        }
    })
    .await?;
    let mut total = LogCheck::default();
    let mut errors = 0;
    let mut first_error = None;
    for (check, e, first) in outputs {
        total.add(check);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
    }
    if let Some(e) = first_error {
        pb.suspend(|| {
            eprintln!("verify: reading {errors} event log(s) back failed; the first: {e}")
        });
    }
    Ok((total, errors))
}

// ---- W3b / W3c -------------------------------------------------------------

/// What the W3c tail reader saw.
#[derive(Default)]
struct Tail {
    seen: Vec<u64>,
    out_of_order: i64,
    polls: u64,
    rec: Option<Recorder>,
}

async fn w3bc(
    ctx: &Ctx,
    pb: &ProgressBar,
    cleanup: &mut Vec<String>,
    with_tail: bool,
) -> Result<Report> {
    let (c, m) = (ctx.c, ctx.m);
    let (w, tag) = if with_tail {
        (Workload::W3c, "w3c")
    } else {
        (Workload::W3b, "w3b")
    };
    let ids = create_sessions(ctx, pb, tag, 1, None, cleanup).await?;
    let id: Arc<str> = Arc::from(ids[0].as_str());
    let ops = c * m;
    let done = Arc::new(AtomicBool::new(false));
    let reader = with_tail.then(|| {
        let store = ctx.store.clone();
        let id = id.clone();
        let done = done.clone();
        tokio::spawn(tail(store, id, done, ops))
    });
    phase(pb, "run", ops);
    let started = Instant::now();
    let outputs = run_tasks(c, |t| {
        let store = ctx.store.clone();
        let id = id.clone();
        let data = payload(t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(m);
            let mut seqs = Vec::with_capacity(m);
            for _ in 0..m {
                let event = NewEvent::new(STREAM, data.clone());
                let t0 = Instant::now();
                let r = store.append_event(&id, event).await;
                if let Some(e) = rec.record(t0, r) {
                    seqs.push(e.seq);
                }
                ticker.tick();
            }
            (rec, seqs)
        }
    });
    let outputs = outputs.await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    let tail = match reader {
        Some(handle) => handle.await.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("the tail reader task failed: {e}"),
            )
        })?,
        None => Tail::default(),
    };
    let outputs = outputs?;
    let mut merged = Merged::default();
    let mut appended = Vec::with_capacity(c);
    for (rec, seqs) in outputs {
        merged.add(rec);
        appended.push(seqs);
    }
    let mut tail_errors = None;
    if let Some(rec) = &tail.rec {
        // The reader's failed polls happened during the timed part.
        tail_errors = rec.first_error.clone();
        merged.errors += rec.errors;
    }
    let missed = tail_missed(&tail, &appended);
    let (check, verify_errors) = verify_logs(ctx, pb, &ids, vec![appended]).await?;
    let mut report = ctx
        .report(w, ops as u64, elapsed, merged)
        .counter("lost_events", check.lost_events)
        .counter("duplicate_ids", check.duplicate_ids)
        .counter("non_increasing", check.non_increasing)
        .counter("verify_errors", verify_errors);
    if report.first_error.is_none() {
        report.first_error = tail_errors;
    }
    if with_tail {
        report = report
            .counter("missed_by_tail_reader", missed)
            .extra("tail_polls", tail.polls)
            .extra("tail_events_seen", tail.seen.len() as u64);
    }
    Ok(report)
}

/// Tail reader: appended seqs it never saw, and seqs it saw out of order.
fn tail_missed(tail: &Tail, appended: &[Vec<u64>]) -> i64 {
    let mut seen = tail.seen.clone();
    seen.sort_unstable();
    seen.dedup();
    let mut all: Vec<u64> = appended.iter().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    all.iter()
        .filter(|s| seen.binary_search(s).is_err())
        .count() as i64
        + tail.out_of_order
}

/// The W3c reader: poll `events_after(last seen)` until the appenders are
/// done and a poll started after that returned nothing new.
async fn tail(store: Store, id: Arc<str>, done: Arc<AtomicBool>, expected: usize) -> Tail {
    let mut rec = Recorder::new(0);
    let mut seen = Vec::with_capacity(expected);
    let mut out_of_order = 0i64;
    let mut polls = 0u64;
    let mut cursor = EventId::start(STREAM);
    loop {
        // Read the flag before polling: if the appenders were done by then,
        // this poll sees every event they appended.
        let finished = done.load(Ordering::Acquire);
        polls += 1;
        match store.events_after(&id, &cursor, READ_PAGE).await {
            Ok(page) if !page.items.is_empty() => {
                for e in &page.items {
                    seen.push(e.seq);
                    if e.seq > cursor.seq {
                        cursor.seq = e.seq;
                    } else {
                        out_of_order += 1;
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => rec.error(&e),
        }
        if finished {
            break;
        }
        tokio::time::sleep(TAIL_IDLE).await;
    }
    Tail {
        seen,
        out_of_order,
        polls,
        rec: Some(rec),
    }
}

// ---- W4 --------------------------------------------------------------------

async fn w4(
    ctx: &Ctx,
    pb: &ProgressBar,
    cleanup: &mut Vec<String>,
    carried: Option<Arc<Vec<String>>>,
) -> Result<Report> {
    let (n, m) = (ctx.n, ctx.m);
    let ids = match carried {
        Some(ids) => {
            cleanup.extend(ids.iter().cloned());
            ids
        }
        None => {
            let ids = create_sessions(ctx, pb, "w4", n, None, cleanup).await?;
            fill_events(ctx, pb, &ids).await?;
            ids
        }
    };
    let middle = (m / 2) as u64;
    let limit = m.clamp(1, MAX_PAGE_LIMIT);
    phase(pb, "run", n);
    let started = Instant::now();
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(n, t);
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(range.len());
            let mut wrong = 0i64;
            let mut events = 0u64;
            let mut cursor = EventId::new(STREAM, middle);
            for id in &ids[range] {
                // One replay: usually one call (pages only when M > 10000).
                cursor.seq = middle;
                let mut expect = middle + 1;
                let mut ok = true;
                let mut took = Duration::ZERO;
                loop {
                    let t0 = Instant::now();
                    let r = store.events_after(id, &cursor, limit).await;
                    took += t0.elapsed();
                    let page = match r {
                        Ok(page) => page,
                        Err(e) => {
                            rec.error(&e);
                            ok = false;
                            break;
                        }
                    };
                    events += page.items.len() as u64;
                    for e in &page.items {
                        ok &= e.seq == expect;
                        expect += 1;
                    }
                    match page.items.last() {
                        Some(last) if page.next.is_some() && last.seq > cursor.seq => {
                            cursor.seq = last.seq;
                        }
                        _ => break,
                    }
                }
                rec.latencies_ns.push(took.as_nanos() as u64);
                if !ok || expect != m as u64 + 1 {
                    wrong += 1;
                }
                ticker.tick();
            }
            (rec, wrong, events)
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let mut merged = Merged::default();
    let mut wrong = 0;
    let mut events = 0;
    for (rec, w, e) in outputs {
        merged.add(rec);
        wrong += w;
        events += e;
    }
    Ok(ctx
        .report(Workload::W4, n as u64, elapsed, merged)
        .counter("wrong_replays", wrong)
        .extra(
            "events_per_sec",
            round_to(per_sec(events, elapsed.as_secs_f64()), 1),
        )
        .extra("events_replayed", events))
}

/// Append M events to each session of `ids` (untimed, `C` tasks).
async fn fill_events(ctx: &Ctx, pb: &ProgressBar, ids: &Arc<Vec<String>>) -> Result<()> {
    let (n, m) = (ids.len(), ctx.m);
    phase(pb, "setup", n * m);
    let outputs = run_tasks(ctx.c, |t| {
        let store = ctx.store.clone();
        let ids = ids.clone();
        let range = ctx.share(n, t);
        let data = payload(t);
        let mut ticker = Ticker::new(pb);
        async move {
            for id in &ids[range] {
                for _ in 0..m {
                    store
                        .append_event(id, NewEvent::new(STREAM, data.clone()))
                        .await?;
                    ticker.tick();
                }
            }
            Ok::<(), Error>(())
        }
    })
    .await?;
    outputs.into_iter().collect::<Result<()>>().map_err(|e| {
        Error::new(
            e.kind(),
            format!("setup: appending events: {}", e.message()),
        )
    })
}

// ---- W5 --------------------------------------------------------------------

async fn w5(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let n = ctx.n;
    let live_count = n.min(W5_LIVE_MAX);
    create_sessions(
        ctx,
        pb,
        "w5-expired",
        n,
        Some(Duration::from_millis(1)),
        cleanup,
    )
    .await?;
    let live = create_sessions(ctx, pb, "w5-live", live_count, None, cleanup).await?;
    tokio::time::sleep(W5_WAIT).await;
    phase(pb, "run", 1);
    let mut rec = Recorder::new(1);
    let started = Instant::now();
    let r = ctx.store.cleanup_expired().await;
    let elapsed = started.elapsed();
    let stats = rec.record(started, r).unwrap_or_default();
    pb.inc(1);
    phase(pb, "verify", live_count);
    let mut wrongly_expired = 0i64;
    for id in live.iter() {
        if ctx.store.get_session(id).await?.is_none() {
            wrongly_expired += 1;
        }
        pb.inc(1);
    }
    let mut merged = Merged::default();
    merged.add(rec);
    Ok(ctx
        .report(Workload::W5, stats.sessions, elapsed, merged)
        .counter("wrongly_expired", wrongly_expired)
        .counter(
            "stale_not_expired",
            (n as u64).saturating_sub(stats.sessions) as i64,
        )
        .extra("state_entries_removed", stats.state_entries)
        .extra("events_removed", stats.events))
}

// ---- W6 --------------------------------------------------------------------

async fn w6(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let c = ctx.c;
    let ids = create_sessions(ctx, pb, "w6", 1, None, cleanup).await?;
    let id: Arc<str> = Arc::from(ids[0].as_str());
    let ops = c * W6_INCREMENTS;
    phase(pb, "run", ops);
    let started = Instant::now();
    let outputs = run_tasks(c, |_| {
        let store = ctx.store.clone();
        let id = id.clone();
        let mut ticker = Ticker::new(pb);
        async move {
            let mut rec = Recorder::new(W6_INCREMENTS);
            let mut applied = 0u64;
            for _ in 0..W6_INCREMENTS {
                let t0 = Instant::now();
                let r = store
                    .update_state(&id, "counter", |v| {
                        let n = v.as_ref().and_then(Value::as_u64).unwrap_or(0);
                        Ok(Value::from(n + 1))
                    })
                    .await;
                if rec.record(t0, r).is_some() {
                    applied += 1;
                }
                ticker.tick();
            }
            (rec, applied)
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let mut merged = Merged::default();
    let mut applied = 0u64;
    for (rec, a) in outputs {
        merged.add(rec);
        applied += a;
    }
    let last = ctx.store.get_state(&id, "counter").await?;
    let value = last.map(|e| e.value.to_value());
    let final_value = match value.as_ref().map(Value::as_u64) {
        None => 0,
        Some(Some(v)) => v,
        Some(None) => {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("the counter holds {:?}, not a number", value),
            ));
        }
    };
    Ok(ctx
        .report(Workload::W6, ops as u64, elapsed, merged)
        .counter("lost_updates", applied as i64 - final_value as i64)
        .extra("final_counter", final_value))
}

// ---- W7 / W8: child processes ----------------------------------------------

/// What a `bench-child` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildRole {
    /// W7: C tasks each append M events as fast as they can.
    Append,
    /// W8: one task appends M events, one every 2 ms, each carrying its send
    /// time.
    Paced,
}

impl ChildRole {
    fn arg(self) -> &'static str {
        match self {
            ChildRole::Append => "append",
            ChildRole::Paced => "paced",
        }
    }
}

/// Arguments of the hidden `bench-child` command: one child process of W7 or
/// W8, started by `bench` itself. It prints `"ready"` once the store is open,
/// waits for `go` on stdin, appends, prints its result and exits; every line
/// it prints is JSON.
#[derive(Debug, Clone, Args)]
pub struct ChildArgs {
    /// What to do.
    #[arg(long, value_enum)]
    role: ChildRole,
    /// The store URL (the parent's).
    #[arg(long, value_name = "URL")]
    store: String,
    /// The session to append to.
    #[arg(long, value_name = "ID")]
    session: String,
    /// Appending tasks (C; `paced` uses one).
    #[arg(long, value_name = "C", default_value_t = 1,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    concurrency: usize,
    /// Events per task (M).
    #[arg(long, value_name = "M",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    events: usize,
    /// The parent's max_events_per_session, so this process trims alike.
    #[arg(long, value_name = "N")]
    max_events_per_session: u64,
    /// This child's number (its tasks' payloads say which they are).
    #[arg(long, value_name = "P", default_value_t = 0)]
    process: usize,
}

/// One line a child process prints on its stdout.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildMsg {
    /// The store is open: waiting for `go` on stdin.
    Ready,
    /// This many more appends are done.
    Progress(u64),
    /// The appends are done.
    Done(ChildResult),
}

/// What a child process appended.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ChildResult {
    /// Per task, the seqs its appends got, in order.
    seqs: Vec<Vec<u64>>,
    /// Every append's latency, in nanoseconds.
    latencies_ns: Vec<u64>,
    /// Appends that failed or timed out.
    errors: u64,
    /// The first failure.
    first_error: Option<String>,
}

/// `bench-child`: see [`ChildArgs`].
pub async fn run_child(args: ChildArgs) -> Result<ExitCode> {
    let options = StoreOptions::default().with_max_events_per_session(args.max_events_per_session);
    let store = Store::open_with(&args.store, options).await?;
    let result = child_run(&store, &args).await;
    let closed = store.close().await;
    result?;
    closed?;
    Ok(ExitCode::SUCCESS)
}

async fn child_run(store: &Store, args: &ChildArgs) -> Result<()> {
    let mut out = Out::new();
    out.line(&ChildMsg::Ready)?;
    out.flush()?;
    wait_for_go().await?;
    let progress = Arc::new(AtomicU64::new(0));
    let work = child_appends(store, args, progress.clone());
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(CHILD_PROGRESS_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reported = 0;
    let result = loop {
        tokio::select! {
            result = &mut work => break result?,
            _ = ticks.tick() => {
                let now = progress.load(Ordering::Relaxed);
                if now > reported {
                    out.line(&ChildMsg::Progress(now - reported))?;
                    out.flush()?;
                    reported = now;
                }
            }
        }
    };
    out.line(&ChildMsg::Done(result))?;
    out.flush()
}

/// Wait (at most [`CHILD_START_TIMEOUT`]) for the parent's `go` line.
async fn wait_for_go() -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread: a blocked read of stdin must not keep the process
    // alive once it gives up (tokio's blocking pool would be waited for).
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    match tokio::time::timeout(CHILD_START_TIMEOUT, rx).await {
        Ok(Ok(Ok(line))) if line.trim() == "go" => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorKind::Unavailable,
            "the parent bench process went away before the start signal",
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "no start signal from the parent bench process within {} s",
                CHILD_START_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// The child's timed part: its appends, per its role.
async fn child_appends(
    store: &Store,
    args: &ChildArgs,
    progress: Arc<AtomicU64>,
) -> Result<ChildResult> {
    let id: Arc<str> = Arc::from(args.session.as_str());
    let m = args.events;
    let outputs = match args.role {
        ChildRole::Append => {
            let c = args.concurrency;
            let first_task = args.process.saturating_mul(c);
            run_tasks(c, |t| {
                let store = store.clone();
                let id = id.clone();
                let data = payload(first_task + t);
                let progress = progress.clone();
                async move {
                    let mut rec = Recorder::new(m);
                    let mut seqs = Vec::with_capacity(m);
                    for _ in 0..m {
                        let event = NewEvent::new(STREAM, data.clone());
                        let t0 = Instant::now();
                        let r = append_within(&store, &id, event).await;
                        if let Some(e) = rec.record(t0, r) {
                            seqs.push(e.seq);
                        }
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    (rec, seqs)
                }
            })
            .await?
        }
        ChildRole::Paced => {
            let mut rec = Recorder::new(m);
            let mut seqs = Vec::with_capacity(m);
            let mut pace = tokio::time::interval(W8_PACE);
            pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
            for i in 0..m {
                pace.tick().await;
                let event = NewEvent::new(STREAM, stamped_payload(i, unix_ns()));
                let t0 = Instant::now();
                let r = append_within(store, &id, event).await;
                if let Some(e) = rec.record(t0, r) {
                    seqs.push(e.seq);
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            vec![(rec, seqs)]
        }
    };
    let mut result = ChildResult::default();
    for (rec, seqs) in outputs {
        result.latencies_ns.extend_from_slice(&rec.latencies_ns);
        result.errors += rec.errors;
        if result.first_error.is_none() {
            result.first_error = rec.first_error;
        }
        result.seqs.push(seqs);
    }
    Ok(result)
}

/// `append_event`, failing with `Timeout` after [`CHILD_APPEND_TIMEOUT`].
async fn append_within(store: &Store, id: &str, event: NewEvent) -> Result<Event> {
    match tokio::time::timeout(CHILD_APPEND_TIMEOUT, store.append_event(id, event)).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "an append took longer than {} s",
                CHILD_APPEND_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Nanoseconds since the Unix epoch, by the wall clock (comparable across
/// processes of one machine).
fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A W8 payload of about [`PAYLOAD_BYTES`] bytes carrying its send time.
fn stamped_payload(i: usize, sent_ns: u64) -> Json {
    let mut value = json!({
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "logger": "bench", "i": i, "sent_ns": sent_ns, "data": ""},
    });
    let len = value.to_string().len();
    value["params"]["data"] = Value::String("x".repeat(PAYLOAD_BYTES.saturating_sub(len)));
    Json::from(value)
}

/// The send time a W8 event carries.
fn sent_ns(event: &Event) -> Option<u64> {
    event
        .data
        .as_ref()?
        .to_value()
        .pointer("/params/sent_ns")?
        .as_u64()
}

/// How long a child with `appends` appends at `pace` may run.
fn child_limit(appends: usize, pace: Duration) -> Duration {
    let each = CHILD_TIME_PER_APPEND + pace;
    let n = u32::try_from(appends).unwrap_or(u32::MAX);
    CHILD_RUN_TIMEOUT.saturating_add(each.saturating_mul(n))
}

/// A child process of W7/W8 (this binary, `bench-child`), killed if dropped
/// before it exited.
struct ChildProc {
    label: String,
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl ChildProc {
    /// Start a child appending `events` per task with `concurrency` tasks to
    /// session `id` of the bench's store.
    fn spawn(
        ctx: &Ctx,
        label: String,
        role: ChildRole,
        id: &str,
        concurrency: usize,
        process: usize,
    ) -> Result<ChildProc> {
        let exe = std::env::current_exe().map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot find this program to start {label}: {e}"),
            )
        })?;
        let mut child = tokio::process::Command::new(exe)
            .arg("bench-child")
            .args(["--role", role.arg(), "--store", &ctx.url, "--session", id])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--events", &ctx.m.to_string()])
            .args(["--max-events-per-session", &ctx.max_events.to_string()])
            .args(["--process", &process.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start {label}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Internal, format!("{label} has no stdout")))?;
        Ok(ChildProc {
            label,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn failed(&self, what: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::Internal, format!("{}: {what}", self.label))
    }

    /// The child's next message; `None` once its stdout is closed.
    async fn next_msg(&mut self) -> Result<Option<ChildMsg>> {
        let line = match self.lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.failed(format_args!("reading its output: {e}"))),
        };
        serde_json::from_str(&line).map(Some).map_err(|e| {
            let shown: String = line.chars().take(200).collect();
            self.failed(format_args!("unexpected output {shown:?}: {e}"))
        })
    }

    /// Why the child stopped talking: how it exited (its error, if any, is
    /// on stderr already).
    async fn ended(&mut self, when: &str) -> Error {
        let how = match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => format!("exited ({status})"),
            _ => "closed its stdout".to_string(),
        };
        self.failed(format_args!("{how} {when}"))
    }

    /// Wait until the child has opened the store.
    async fn ready(&mut self) -> Result<()> {
        match tokio::time::timeout(CHILD_START_TIMEOUT, self.next_msg()).await {
            Ok(Ok(Some(ChildMsg::Ready))) => Ok(()),
            Ok(Ok(Some(other))) => Err(self.failed(format_args!("said {other:?} before ready"))),
            Ok(Ok(None)) => Err(self.ended("before it was ready").await),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} was not ready within {} s",
                    self.label,
                    CHILD_START_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// Send the start signal.
    async fn go(&mut self) -> Result<()> {
        let Some(mut stdin) = self.stdin.take() else {
            return Err(self.failed("started twice"));
        };
        let sent = async {
            stdin.write_all(b"go\n").await?;
            stdin.flush().await
        }
        .await;
        // Dropping stdin closes it: the child reads nothing more.
        sent.map_err(|e| self.failed(format_args!("cannot send the start signal: {e}")))
    }

    /// Follow the child's progress on `pb` until it exits (within `limit`,
    /// else it is killed), and return what it appended.
    async fn finish(mut self, pb: &ProgressBar, limit: Duration) -> Result<ChildResult> {
        let run = async {
            let mut result = None;
            while let Some(msg) = self.next_msg().await? {
                match msg {
                    ChildMsg::Progress(n) => pb.inc(n),
                    ChildMsg::Done(r) => result = Some(r),
                    ChildMsg::Ready => {}
                }
            }
            let status = self
                .child
                .wait()
                .await
                .map_err(|e| self.failed(format_args!("waiting for it to exit: {e}")))?;
            match result {
                Some(r) if status.success() => Ok(r),
                Some(_) => Err(self.failed(format_args!("exited ({status}) after its result"))),
                None => Err(self.failed(format_args!("exited ({status}) without a result"))),
            }
        };
        match tokio::time::timeout(limit, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not finish within {} s: killed",
                    self.label,
                    limit.as_secs()
                ),
            )),
        }
    }
}

/// A spawned task, aborted if dropped before it was joined.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self, what: &str) -> Result<T> {
        (&mut self.0)
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("{what} failed: {e}")))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---- W7 --------------------------------------------------------------------

async fn w7(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let (c, m) = (ctx.c, ctx.m);
    let ids = create_sessions(ctx, pb, "w7", 1, None, cleanup).await?;
    let id: Arc<str> = Arc::from(ids[0].as_str());
    let ops = W7_PROCESSES * c * m;
    // Start the children and let them open the store, untimed.
    phase(pb, "start", W7_PROCESSES);
    let spawned = Instant::now();
    let mut children = Vec::with_capacity(W7_PROCESSES);
    for p in 0..W7_PROCESSES {
        let label = format!("W7 child process {p}");
        children.push(ChildProc::spawn(ctx, label, ChildRole::Append, &id, c, p)?);
    }
    for child in &mut children {
        child.ready().await?;
        pb.inc(1);
    }
    let startup = spawned.elapsed();
    let done = Arc::new(AtomicBool::new(false));
    let reader = AbortOnDrop(tokio::spawn(tail(
        ctx.store.clone(),
        id.clone(),
        done.clone(),
        ops,
    )));
    phase(pb, "run", ops);
    let started = Instant::now();
    for child in &mut children {
        child.go().await?;
    }
    // A watcher per child; dropping the set (on an error) kills the rest.
    let limit = child_limit(c * m, Duration::ZERO);
    let mut running = tokio::task::JoinSet::new();
    for (p, child) in children.into_iter().enumerate() {
        let pb = pb.clone();
        running.spawn(async move { (p, child.finish(&pb, limit).await) });
    }
    let mut results: Vec<Option<ChildResult>> = (0..W7_PROCESSES).map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        let (p, result) = joined.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("watching a child process failed: {e}"),
            )
        })?;
        results[p] = Some(result?);
    }
    let elapsed = started.elapsed();
    // Both children have exited: every append they made is committed.
    done.store(true, Ordering::Release);
    let tail = reader.join("the tail reader task").await?;
    let mut merged = Merged::default();
    let mut appended = Vec::with_capacity(W7_PROCESSES * c);
    for r in results.into_iter().flatten() {
        merged.add(Recorder {
            latencies_ns: r.latencies_ns,
            errors: r.errors,
            first_error: r.first_error,
        });
        appended.extend(r.seqs);
    }
    let mut tail_errors = None;
    if let Some(rec) = &tail.rec {
        tail_errors = rec.first_error.clone();
        merged.errors += rec.errors;
    }
    let missed = tail_missed(&tail, &appended);
    let (check, verify_errors) = verify_logs(ctx, pb, &ids, vec![appended]).await?;
    let mut report = ctx
        .report(Workload::W7, ops as u64, elapsed, merged)
        .counter("lost_events", check.lost_events)
        .counter("duplicate_ids", check.duplicate_ids)
        .counter("non_increasing", check.non_increasing)
        .counter("verify_errors", verify_errors)
        .counter("missed_by_tail_reader", missed)
        .extra("processes", W7_PROCESSES as u64)
        .extra("startup_s", round_to(startup.as_secs_f64(), 6))
        .extra("tail_polls", tail.polls)
        .extra("tail_events_seen", tail.seen.len() as u64);
    if report.first_error.is_none() {
        report.first_error = tail_errors;
    }
    Ok(report)
}

// ---- W8 --------------------------------------------------------------------

/// What the W8 subscriber received.
struct Received {
    /// Seqs delivered, strictly increasing (repeats are not kept).
    seqs: Vec<u64>,
    /// Events delivered again or out of order.
    duplicated: i64,
    /// Delivery latencies, and failures (a failed `next`, an event without
    /// its send time).
    rec: Recorder,
    /// When the last event arrived, or the subscriber gave up.
    finished_at: Instant,
}

/// The W8 subscriber: take `k` events from `sub`, recording each one's
/// delivery latency, until all came, the subscription ended, or the deadline
/// (set once the child is done; at most `limit` from now) passed.
async fn receive(
    mut sub: Subscription,
    k: usize,
    mut deadline: watch::Receiver<Option<tokio::time::Instant>>,
    limit: Duration,
    pb: ProgressBar,
) -> Received {
    let hard = tokio::time::Instant::now() + limit;
    // `next` runs in a task of its own that is never interrupted: a `next`
    // cancelled (here, by a deadline change) and called again would re-read
    // the log at once instead of on the subscription's own schedule.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _forward = AbortOnDrop(tokio::spawn(async move {
        loop {
            let next = sub.next().await;
            let received_ns = unix_ns();
            let more = matches!(next, Some(Ok(_)));
            if tx.send((next, received_ns)).is_err() || !more {
                break;
            }
        }
    }));
    let mut rec = Recorder::new(k);
    let mut seqs = Vec::with_capacity(k);
    let mut duplicated = 0i64;
    let mut last = 0u64;
    while seqs.len() < k {
        let until = (*deadline.borrow()).map_or(hard, |d| d.min(hard));
        tokio::select! {
            next = rx.recv() => match next {
                Some((Some(Ok(event)), received_ns)) => {
                    if event.seq <= last {
                        duplicated += 1;
                        continue;
                    }
                    last = event.seq;
                    seqs.push(event.seq);
                    pb.inc(1);
                    match sent_ns(&event) {
                        Some(sent) => rec.latencies_ns.push(received_ns.saturating_sub(sent)),
                        None => rec.error(&Error::new(
                            ErrorKind::Backend,
                            format!("event {} came back without its send time", event.seq),
                        )),
                    }
                }
                Some((Some(Err(e)), _)) => {
                    rec.error(&e);
                    break;
                }
                Some((None, _)) | None => break,
            },
            changed = deadline.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(until) => break,
        }
    }
    Received {
        seqs,
        duplicated,
        rec,
        finished_at: Instant::now(),
    }
}

async fn w8(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
    let k = ctx.m;
    let ids = create_sessions(ctx, pb, "w8", 1, None, cleanup).await?;
    let id = ids[0].as_str();
    let sub = ctx.store.subscribe(id, EventId::start(STREAM)).await?;
    phase(pb, "start", 1);
    let mut child = ChildProc::spawn(
        ctx,
        "W8 child process".to_string(),
        ChildRole::Paced,
        id,
        1,
        0,
    )?;
    child.ready().await?;
    pb.inc(1);
    let limit = child_limit(k, W8_PACE);
    let poll = ctx.store.options().poll_interval;
    let grace = W8_GRACE + poll.saturating_mul(2).min(W8_GRACE_POLLS_MAX);
    let (deadline_tx, deadline_rx) = watch::channel(None);
    phase(pb, "run", k);
    let started = Instant::now();
    let receiver = AbortOnDrop(tokio::spawn(receive(
        sub,
        k,
        deadline_rx,
        limit + grace,
        pb.clone(),
    )));
    child.go().await?;
    // The subscriber shows the progress; the child's is not needed.
    let appended = child.finish(&ProgressBar::hidden(), limit).await?;
    // What was appended gets `grace` more to be delivered.
    let _ = deadline_tx.send(Some(tokio::time::Instant::now() + grace));
    let got = receiver.join("the subscriber task").await?;
    drop(deadline_tx);
    let elapsed = got.finished_at.saturating_duration_since(started);
    let missed = appended
        .seqs
        .iter()
        .flatten()
        .filter(|s| got.seqs.binary_search(s).is_err())
        .count() as i64;
    let mut append_ns = appended.latencies_ns;
    append_ns.sort_unstable();
    let merged = Merged {
        latencies_ns: got.rec.latencies_ns,
        errors: appended.errors + got.rec.errors,
        first_error: appended.first_error.or(got.rec.first_error),
    };
    Ok(ctx
        .report(Workload::W8, k as u64, elapsed, merged)
        .counter("missed", missed)
        .counter("duplicated", got.duplicated)
        .extra("delivered", got.seqs.len() as u64)
        .extra("append_p50_us", percentile_us(&append_ns, 0.50))
        .extra("append_p99_us", percentile_us(&append_ns, 0.99))
        .extra("pace_us", W8_PACE.as_micros() as u64)
        .extra("poll_interval_ms", round_to(poll.as_secs_f64() * 1000.0, 3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_id_and_name() {
        assert_eq!(Workload::parse("w3a"), Some(Workload::W3a));
        assert_eq!(Workload::parse("W4_replay"), Some(Workload::W4));
        assert_eq!(Workload::parse("W3"), None);
        let sel = select(&["W6".into(), "w1".into(), "W1".into()]).unwrap();
        assert_eq!(sel, [Workload::W1, Workload::W6]);
        assert_eq!(select(&[]).unwrap().len(), 10);
        let sel = select(&["W8_subscribe_latency".into(), "w7".into()]).unwrap();
        assert_eq!(sel, [Workload::W7, Workload::W8]);
        assert!(sel.iter().all(|w| w.cross_process()));
        let err = select(&["nope".into()]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

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
    fn percentiles_and_payload() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&samples, 0.50), 50.0);
        assert_eq!(percentile_us(&samples, 0.99), 99.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
        let p = payload(3);
        assert!((PAYLOAD_BYTES - 5..=PAYLOAD_BYTES + 5).contains(&p.len()));
    }

    #[test]
    fn child_messages_round_trip() {
        let done = ChildMsg::Done(ChildResult {
            seqs: vec![vec![1, 3], vec![2]],
            latencies_ns: vec![10, 20, 30],
            errors: 1,
            first_error: Some("boom".into()),
        });
        for msg in [ChildMsg::Ready, ChildMsg::Progress(7), done] {
            let line = serde_json::to_string(&msg).unwrap();
            assert!(!line.contains('\n'));
            let back: ChildMsg = serde_json::from_str(&line).unwrap();
            assert_eq!(format!("{back:?}"), format!("{msg:?}"));
        }
        let p = stamped_payload(4, 1_700_000_000_123_456_789);
        assert!((PAYLOAD_BYTES - 5..=PAYLOAD_BYTES + 5).contains(&p.len()));
        let event = Event::new("s".into(), 1, NewEvent::new(STREAM, p), 0);
        assert_eq!(sent_ns(&event), Some(1_700_000_000_123_456_789));
        assert_eq!(
            sent_ns(&Event::new("s".into(), 2, NewEvent::priming(STREAM), 0)),
            None
        );
    }

    #[test]
    fn shares_cover_everything() {
        let ctx_c = 8;
        for total in [0usize, 1, 7, 8, 1000, 1001] {
            let mut next = 0;
            for t in 0..ctx_c {
                let r = total * t / ctx_c..total * (t + 1) / ctx_c;
                assert_eq!(r.start, next);
                next = r.end;
            }
            assert_eq!(next, total);
        }
    }
}
