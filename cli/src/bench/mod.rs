//! `mcp-session-store bench`: the workloads W1–W8 defined in cli/BENCH.md.
//!
//! Each workload sets up its data untimed, runs its timed part on `C` tokio
//! tasks (each on a contiguous share of the sessions), checks correctness
//! untimed, prints one JSON line and deletes the sessions it created.
//! Latency is measured with [`Instant`](std::time::Instant) around each store
//! call into preallocated per-task vectors, merged afterwards.
//!
//! This module holds the command's arguments, the workload list and the run
//! that drives them, with the machinery every workload shares (the context,
//! running tasks, creating and deleting sessions). The parts:
//!
//! - [`measure`]: latency samples, percentiles and the log checks;
//! - [`report`]: the JSON line per workload, and the progress bars;
//! - [`workloads`]: W1–W6, on one store;
//! - [`cross_process`]: W7 and W8, with child processes (`bench-child`).

mod cross_process;
mod measure;
mod report;
mod workloads;

use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use clap::builder::RangedU64ValueParser;
use indicatif::ProgressBar;
use mcp_session_store::{Error, ErrorKind, NewSession, Result, Store, StoreOptions};

pub use cross_process::{ChildArgs, run_child};
use cross_process::{W7_PROCESSES, w7, w8};
use report::{Ticker, phase, print_outcome, progress_bar};
use workloads::{w1, w2, w3a, w3bc, w4, w5, w6};

use crate::out::Out;

pub const LONG_ABOUT: &str = "\
Run the benchmark workloads (defined in cli/BENCH.md of the mcp-session-store \
repository) against a store and print one JSON object per workload on stdout \
(progress bars and logs go to stderr).

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
W7 and W8 need a store shared between processes (every backend but memory://): \
on memory:// they are skipped, with one line on stderr, and do not fail the run. \
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
    /// Store URL: `memory://`, `sqlite://PATH`, `postgres://…`, `redis://…` /
    /// `rediss://…` or `dynamodb://TABLE?…` (options as query parameters).
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

/// A workload of cli/BENCH.md.
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

// ---- entry -----------------------------------------------------------------

/// `bench`: run the selected workloads in order. `verbosity` (the count of
/// `-v`) is passed on to the child processes of W7 and W8.
pub async fn run(args: BenchArgs, verbosity: u8) -> Result<ExitCode> {
    let workloads = select(&args.only)?;
    let (n, m, c) = (args.sessions, args.events, args.concurrency);
    let max_events = m
        .max(c.saturating_mul(m).saturating_mul(W7_PROCESSES))
        .max(1000) as u64;
    let options = StoreOptions::default().with_max_events_per_session(max_events);
    let store = Store::open_with(&args.store, options).await?;
    let kept = store.options().max_events_per_session;
    let shared = shared_between_processes(&store);
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
        verbosity,
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
        failed |= !print_outcome(&mut out, w, result)?;
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

/// Whether other processes see what this store writes (every backend but
/// memory), which W7 and W8 need. The one place the bench asks the backend.
fn shared_between_processes(store: &Store) -> bool {
    store.backend_info().shared
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
    /// How many `-v` this process got, passed on to child processes.
    verbosity: u8,
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
