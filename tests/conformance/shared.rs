//! Backends whose handles share data (every one but `memory`): two handles
//! on one URL, reopening, a closed handle, a subscriber woken by another
//! handle, and two processes writing while a third reads.

use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewEvent, Store};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{all_events, err_kind, session, take};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.shared(tests![
        shared_two_handles_append_and_increment_without_loss,
        shared_data_survives_reopen,
        shared_closed_store_is_unavailable,
        shared_subscriber_sees_appends_of_another_handle,
        shared_two_processes_append_and_increment_while_a_tail_reads,
    ]);
}

/// Set in a child process started by a cross-process test: the child runs
/// its part and exits instead of running the suite.
pub(crate) const CHILD_ENV: &str = "MSS_CONFORMANCE_CHILD";

async fn shared_two_handles_append_and_increment_without_loss(ns: Namespace) {
    let one = ns.open().await;
    let two = ns.open().await;
    let id = session(&one).await;
    assert!(
        two.get_session(&id).await.unwrap().is_some(),
        "the second handle sees the session"
    );
    let mut tasks = Vec::new();
    for (h, store) in [one.clone(), two.clone()].into_iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    let e = store
                        .append_event(&id, NewEvent::new("x", json!({"h": h, "t": t, "i": i})))
                        .await
                        .expect("append through either handle");
                    seqs.push(e.seq);
                    if i % 2 == 0 {
                        store
                            .update_state(&id, "n", |v| {
                                Ok(json!(v.and_then(|v| v.as_u64()).unwrap_or(0) + 1))
                            })
                            .await
                            .expect("increment through either handle");
                    }
                }
                seqs
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|p| p[0] < p[1]));
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<u64>>());
    assert_eq!(all_events(&two, &id, "x").await, all);
    assert_eq!(
        one.get_state(&id, "n")
            .await
            .unwrap()
            .unwrap()
            .value
            .to_value(),
        json!(200)
    );
}

async fn shared_data_survives_reopen(ns: Namespace) {
    let id;
    {
        let store = ns.open().await;
        id = session(&store).await;
        store.set_state(&id, "k", json!([1, 2])).await.unwrap();
        store
            .append_event(&id, NewEvent::new("s", json!(1)))
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let store = ns.open().await;
    assert_eq!(
        store
            .get_state(&id, "k")
            .await
            .unwrap()
            .unwrap()
            .value
            .to_value(),
        json!([1, 2])
    );
    let next = store
        .append_event(&id, NewEvent::new("s", json!(2)))
        .await
        .unwrap();
    assert_eq!(next.seq, 2, "seq continues after reopen");
    assert_eq!(all_events(&store, &id, "s").await, [1, 2]);
}

async fn shared_closed_store_is_unavailable(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    store.close().await.unwrap();
    assert_eq!(
        err_kind(store.set_state(&id, "k", json!(1)).await),
        ErrorKind::Unavailable
    );
    assert_eq!(
        err_kind(store.get_session(&id).await),
        ErrorKind::Unavailable
    );
    let reopened = ns.open().await;
    assert!(
        reopened.get_session(&id).await.unwrap().is_some(),
        "closing lost nothing"
    );
}

async fn shared_subscriber_sees_appends_of_another_handle(ns: Namespace) {
    let writer = ns.open().await;
    let reader = Store::open(&ns.url("poll_interval=20ms")).await.unwrap();
    let id = session(&writer).await;
    let mut sub = reader.subscribe(&id, EventId::start("x")).await.unwrap();
    let task = {
        let writer = writer.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..30 {
                seqs.push(
                    writer
                        .append_event(&id, NewEvent::new("x", json!(i)))
                        .await
                        .unwrap()
                        .seq,
                );
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            seqs
        })
    };
    let got: Vec<u64> = take(&mut sub, 30).await.iter().map(|e| e.seq).collect();
    assert_eq!(
        got,
        task.await.unwrap(),
        "every append of the other handle, in order, once"
    );
}

const CHILD_TASKS: u64 = 4;
const CHILD_APPENDS: u64 = 100;
const CHILD_INCREMENTS: u64 = 50;

/// The child's part: `URL SESSION`. 4 tasks each append 100 events and
/// increment the counter 50 times; prints the seqs it got, one per line.
pub(crate) async fn cross_process_child(spec: &str) -> i32 {
    let Some((url, id)) = spec.split_once(' ') else {
        eprintln!("child: bad spec {spec:?}");
        return 2;
    };
    let store = match Store::open(url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: open: {e}");
            return 1;
        }
    };
    let tasks: Vec<_> = (0..CHILD_TASKS)
        .map(|t| {
            let store = store.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..CHILD_APPENDS {
                    let e = store
                        .append_event(
                            &id,
                            NewEvent::new("x", json!({"pid": std::process::id(), "t": t, "i": i})),
                        )
                        .await?;
                    seqs.push(e.seq);
                    if i < CHILD_INCREMENTS {
                        store
                            .update_state(&id, "n", |v| {
                                Ok(json!(v.and_then(|v| v.as_u64()).unwrap_or(0) + 1))
                            })
                            .await?;
                    }
                }
                Ok::<_, mcp_session_store::Error>(seqs)
            })
        })
        .collect();
    let mut out = String::new();
    for task in tasks {
        match task.await {
            Ok(Ok(seqs)) => {
                if !seqs.windows(2).all(|p| p[0] < p[1]) {
                    eprintln!("child: one task's seqs do not increase: {seqs:?}");
                    return 1;
                }
                for seq in seqs {
                    out.push_str(&format!("{seq}\n"));
                }
            }
            Ok(Err(e)) => {
                eprintln!("child: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("child: task failed: {e}");
                return 1;
            }
        }
    }
    if let Err(e) = store.close().await {
        eprintln!("child: close: {e}");
        return 1;
    }
    print!("{out}");
    0
}

async fn shared_two_processes_append_and_increment_while_a_tail_reads(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .env(CHILD_ENV, format!("{} {id}", ns.url("")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let total = 2 * CHILD_TASKS * CHILD_APPENDS;
    // The tail reader in this process: it must see every seq, in order.
    let tail = {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            // Guards against a hang only: an emulator under load is slow.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
            while (seen.len() as u64) < total && tokio::time::Instant::now() < deadline {
                let page = store
                    .events_after(&id, &EventId::new("x", last), 1000)
                    .await
                    .expect("tail read");
                for e in &page.items {
                    seen.push(e.seq);
                    last = e.seq;
                }
                if page.items.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            seen
        })
    };
    let mut all = Vec::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| l.parse::<u64>().unwrap()),
        );
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(all, expected, "no lost or duplicate seq across processes");
    assert_eq!(
        tail.await.unwrap(),
        expected,
        "the tail reader missed nothing, in order"
    );
    let n = store
        .get_state(&id, "n")
        .await
        .unwrap()
        .unwrap()
        .value
        .to_value();
    assert_eq!(
        n,
        json!(2 * CHILD_TASKS * CHILD_INCREMENTS),
        "the counter is exact"
    );
}
