//! The workloads W1–W6 on one store (see cli/BENCH.md), and what W7 reuses
//! of them: the event payload, reading a log back and checking it
//! ([`verify_logs`]), and the live tail reader ([`tail`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use mcp_session_store::validate::MAX_PAGE_LIMIT;
use mcp_session_store::{Error, ErrorKind, EventId, Json, NewEvent, NewSession, Result, Store};
use serde_json::{Value, json};

use super::measure::{LogCheck, Merged, Recorder, check_log, per_sec, round_to};
use super::report::{Report, Ticker, phase};
use super::{Ctx, PAYLOAD_BYTES, READ_PAGE, STREAM, Workload, create_sessions, run_tasks};

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

/// An event payload of about [`PAYLOAD_BYTES`] bytes, built once per task.
pub(super) fn payload(task: usize) -> Json {
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

// ---- W1 --------------------------------------------------------------------

/// W1: create N sessions with generated ids.
pub(super) async fn w1(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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

/// W2: per session, set [`W2_KEYS`] small JSON values, then read each back.
pub(super) async fn w2(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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
pub(super) async fn w3a(
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
pub(super) async fn verify_logs(
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
pub(super) struct Tail {
    pub(super) seen: Vec<u64>,
    out_of_order: i64,
    pub(super) polls: u64,
    pub(super) rec: Option<Recorder>,
}

/// W3b (`with_tail` false) and W3c: C tasks append M events each to one
/// session; in W3c a reader tails the session meanwhile.
pub(super) async fn w3bc(
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
pub(super) fn tail_missed(tail: &Tail, appended: &[Vec<u64>]) -> i64 {
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
pub(super) async fn tail(
    store: Store,
    id: Arc<str>,
    done: Arc<AtomicBool>,
    expected: usize,
) -> Tail {
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

/// W4: per session, one replay from the middle event. Uses the sessions W3a
/// left in `carried`, or sets up its own.
pub(super) async fn w4(
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

/// W5: one `cleanup_expired()` over N expired and up to [`W5_LIVE_MAX`] live
/// sessions.
pub(super) async fn w5(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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

/// W6: C tasks each increment one counter [`W6_INCREMENTS`] times with
/// `update_state`.
pub(super) async fn w6(ctx: &Ctx, pb: &ProgressBar, cleanup: &mut Vec<String>) -> Result<Report> {
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
    fn payload_size() {
        let p = payload(3);
        assert!((PAYLOAD_BYTES - 5..=PAYLOAD_BYTES + 5).contains(&p.len()));
    }
}
