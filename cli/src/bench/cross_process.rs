//! The workloads that need a store shared between processes: W7 (two child
//! processes append to one session while this one tails it) and W8 (a child
//! appends, this process receives through `subscribe`). The child processes
//! are this binary, run as the hidden `bench-child` command ([`run_child`]);
//! they talk to the parent in JSON lines on their stdout ([`ChildMsg`]).

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use indicatif::ProgressBar;
use mcp_session_store::{
    Error, ErrorKind, Event, EventId, Json, NewEvent, Result, Store, StoreOptions, Subscription,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::measure::{Merged, Recorder, percentile_us, round_to};
use super::report::{Report, phase};
use super::workloads::{payload, tail, tail_missed, verify_logs};
use super::{Ctx, PAYLOAD_BYTES, STREAM, Workload, create_sessions, run_tasks};
use crate::out::Out;

/// Child processes appending in W7.
pub(super) const W7_PROCESSES: usize = 2;
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
        let mut command = tokio::process::Command::new(exe);
        // The child logs (to the inherited stderr) as verbosely as this process.
        if ctx.verbosity > 0 {
            command.arg(format!("-{}", "v".repeat(usize::from(ctx.verbosity))));
        }
        let mut child = command
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

/// W7: two child processes × C tasks append M events each to one session
/// while this process tails it.
pub(super) async fn w7(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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

/// W8: a child process appends M paced events; this process receives them
/// through `subscribe` and measures append→delivery.
pub(super) async fn w8(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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
}
