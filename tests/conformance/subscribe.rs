//! Live delivery: a subscription replays, then follows appends without a gap
//! or a duplicate; `next` is cancel-safe; it ends when the session goes or
//! trimming leaves it behind.

use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewEvent, Store, StoreOptions};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{HANG, all_events, err_kind, session, take};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        subscribe_replays_then_follows_without_gap_or_duplicate,
        subscribe_ends_with_not_found_when_the_session_goes,
        subscribe_next_is_cancel_safe,
        subscribe_reports_a_subscriber_left_behind_by_trimming,
    ]);
}

/// A store whose subscriptions never poll in practice: what they deliver,
/// appends through the same store woke them for.
async fn open_without_polling(ns: &Namespace) -> Store {
    ns.open_with(StoreOptions::default().with_poll_interval(Duration::from_secs(3600)))
        .await
}

async fn subscribe_replays_then_follows_without_gap_or_duplicate(ns: Namespace) {
    let store = open_without_polling(&ns).await;
    let id = session(&store).await;
    let mut first = Vec::new();
    for i in 0..10 {
        first.push(
            store
                .append_event(&id, NewEvent::new("live", json!({"pre": i})))
                .await
                .unwrap(),
        );
        store
            .append_event(&id, NewEvent::new("other", json!(i)))
            .await
            .unwrap();
    }
    let mut sub = store.subscribe(&id, first[4].id()).await.unwrap();
    // The replay: events 5..9 of the stream.
    let replayed = take(&mut sub, 5).await;
    assert_eq!(replayed, first[5..].to_vec());
    // Then live appends from four tasks, interleaved with another stream.
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .append_event(&id, NewEvent::new("live", json!({"t": t, "i": i})))
                        .await
                        .unwrap();
                    store
                        .append_event(&id, NewEvent::new("other", json!(i)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let live = take(&mut sub, 200).await;
    for w in writers {
        w.await.unwrap();
    }
    assert!(live.iter().all(|e| e.stream_id == "live"));
    assert!(
        live.windows(2).all(|p| p[0].seq < p[1].seq),
        "in seq order, no duplicate"
    );
    assert!(
        live[0].seq > replayed.last().unwrap().seq,
        "no overlap at the seam"
    );
    let stored = all_events(&store, &id, "live").await;
    let delivered: Vec<u64> = replayed.iter().chain(&live).map(|e| e.seq).collect();
    assert_eq!(
        delivered,
        stored[5..].to_vec(),
        "no gap: everything after the cursor was delivered"
    );
    // Nothing more is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), sub.next())
            .await
            .is_err()
    );
    // A subscription from the start of a stream that has nothing yet waits
    // for the first event.
    let mut empty = store.subscribe(&id, EventId::start("later")).await.unwrap();
    let appended = store
        .append_event(&id, NewEvent::new("later", json!(1)))
        .await
        .unwrap();
    assert_eq!(take(&mut empty, 1).await, vec![appended]);
}

async fn subscribe_next_is_cancel_safe(ns: Namespace) {
    let store = open_without_polling(&ns).await;
    let id = session(&store).await;
    let mut sub = store.subscribe(&id, EventId::start("s")).await.unwrap();
    let writer = {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                store
                    .append_event(&id, NewEvent::new("s", json!(i)))
                    .await
                    .unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        })
    };
    // Give up on `next` after a very short time, over and over: a wake-up
    // consumed by a cancelled call must not be lost (nothing polls here).
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + HANG;
    while got.len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck after {} events",
            got.len()
        );
        if let Ok(item) = tokio::time::timeout(Duration::from_micros(200), sub.next()).await {
            got.push(item.expect("not ended").expect("no error").seq);
        }
    }
    writer.await.unwrap();
    assert_eq!(got, (1..=100).collect::<Vec<u64>>());
}

async fn subscribe_ends_with_not_found_when_the_session_goes(ns: Namespace) {
    let store = open_without_polling(&ns).await;
    assert_eq!(
        err_kind(store.subscribe("ghost", EventId::start("s")).await),
        ErrorKind::NotFound
    );
    let id = session(&store).await;
    let mut sub = store.subscribe(&id, EventId::start("s")).await.unwrap();
    let waiting = tokio::spawn(async move {
        let first = sub.next().await;
        let after = sub.next().await;
        (first.map(|r| r.map_err(|e| e.kind())), after.is_none())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.delete_session(&id).await.unwrap();
    let (first, ended) = tokio::time::timeout(HANG, waiting).await.unwrap().unwrap();
    assert_eq!(first, Some(Err(ErrorKind::NotFound)));
    assert!(ended, "after the error the subscription ends");
}

async fn subscribe_reports_a_subscriber_left_behind_by_trimming(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_events_per_session(10))
        .await;
    let id = session(&store).await;
    let e1 = store
        .append_event(&id, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    let mut sub = store.subscribe(&id, e1.id()).await.unwrap();
    for i in 0..30 {
        store
            .append_event(&id, NewEvent::new("s", json!(i)))
            .await
            .unwrap();
    }
    // The subscription buffered nothing yet: events 2.. were trimmed.
    let next = tokio::time::timeout(HANG, sub.next()).await.unwrap();
    assert_eq!(
        next.map(|r| r.map_err(|e| e.kind()).map(|e| e.seq)),
        Some(Err(ErrorKind::CursorExpired))
    );
    assert!(sub.next().await.is_none());
    assert_eq!(
        err_kind(store.subscribe(&id, e1.id()).await),
        ErrorKind::CursorExpired
    );
}
