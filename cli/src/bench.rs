//! `mcp-session-store bench`: the workloads of BENCH.md.
//!
//! Each workload sets up its data untimed, runs its timed part on `C` tokio
//! tasks (each on a contiguous share of the sessions), checks correctness
//! untimed, prints one JSON line and deletes the sessions it created.
//! Latency is measured with [`Instant`] around each store call into
//! preallocated per-task vectors, merged afterwards.

use std::collections::HashSet;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use indicatif::{ProgressBar, ProgressStyle};
use mcp_session_store::validate::MAX_PAGE_LIMIT;
use mcp_session_store::{
    Error, ErrorKind, EventId, Json, NewEvent, NewSession, Result, Store, StoreOptions,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::out::Out;

pub const LONG_ABOUT: &str = "\
Run the benchmark workloads of BENCH.md against a store and print one JSON \
object per workload on stdout (progress bars go to stderr).

Workloads (select with --only, default all of W1-W6):
  W1   W1_create_session               create N sessions (generated ids)
  W2   W2_state_set_get                per session set 10 small JSON keys, read each back
  W3a  W3a_event_append                M events (~200-byte JSON) per session, C tasks on distinct sessions
  W3b  W3b_event_append_same_session   C tasks each append M events to ONE session
  W3c  W3c_live_tail                   as W3b while one reader polls events_after(last seen)
  W4   W4_replay                       per session, events_after the middle event (seq M/2)
  W5   W5_cleanup                      N expired sessions (+ up to 100 live ones), one cleanup_expired()
  W6   W6_state_counter                C tasks each increment one counter 100 times with update_state
W7 (cross-process) and W8 (subscribe latency) are not implemented yet.

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
The exit code is 1 if any counter or errors is nonzero, after all lines are \
printed.

Session ids are prefixed with bench-<random run id>- (W1 uses generated \
ids), and every workload deletes the sessions it created, so the store is \
left as it was. The store is opened with max_events_per_session of at least \
max(M, C*M) so W3b/W3c do not trim; a max_events_per_session in the URL \
overrides that.";

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
    /// Events per session (M), and per task in W3b/W3c.
    #[arg(long, value_name = "M", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub events: usize,
    /// Concurrent tokio tasks (C).
    #[arg(long, value_name = "C", default_value_t = 8,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub concurrency: usize,
    /// Comma-separated workloads to run, by id or full name (e.g.
    /// `W1,W3a,W4_replay`); default: W1,W2,W3a,W3b,W3c,W4,W5,W6.
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

    fn implemented(self) -> bool {
        !matches!(self, Workload::W7 | Workload::W8)
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
        return Ok(Workload::ALL
            .into_iter()
            .filter(|w| w.implemented())
            .collect());
    }
    let mut selected = Vec::new();
    for name in only.iter().filter(|s| !s.trim().is_empty()) {
        let w = Workload::parse(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "unknown workload {name:?} in --only: expected W1, W2, W3a, W3b, W3c, W4, W5 or W6"
                ),
            )
        })?;
        if !w.implemented() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "workload {} is not implemented yet (W7 and W8 are later work); \
                     available: W1, W2, W3a, W3b, W3c, W4, W5, W6",
                    w.name()
                ),
            ));
        }
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
/// The W3c reader's pause when a poll returned nothing.
const TAIL_IDLE: Duration = Duration::from_micros(200);
/// Operations a task counts before it advances the shared progress bar.
const TICK_BATCH: u64 = 256;

// ---- entry -----------------------------------------------------------------

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    let workloads = select(&args.only)?;
    let (n, m, c) = (args.sessions, args.events, args.concurrency);
    let max_events = m.max(c.saturating_mul(m)).max(1000) as u64;
    let options = StoreOptions::default().with_max_events_per_session(max_events);
    let store = Store::open_with(&args.store, options).await?;
    let kept = store.options().max_events_per_session;
    if kept < c.saturating_mul(m) as u64 {
        let which = if kept < m as u64 {
            "W3a/W3b/W3c append"
        } else {
            "W3b/W3c append"
        };
        eprintln!(
            "warning: the store keeps {kept} events per session (max_events_per_session in the URL) \
             but {which} up to {} per session: their logs get trimmed and cannot be verified",
            c * m
        );
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let ctx = Ctx {
        backend: store.backend_name(),
        store: store.clone(),
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
            Workload::W7 | Workload::W8 => unreachable!("rejected by select()"),
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
    if let Some(rec) = tail.rec {
        // The reader's failed polls happened during the timed part.
        tail_errors = rec.first_error.clone();
        merged.errors += rec.errors;
    }
    // Tail reader: appended seqs it never saw, and seqs it saw out of order.
    let missed = {
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
    };
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
        assert_eq!(select(&[]).unwrap().len(), 8);
        let err = select(&["W7".into()]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("not implemented yet"));
        assert!(select(&["nope".into()]).is_err());
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
