//! Event logs: appends and their fields, seqs under concurrent appends,
//! replay scoped to a stream and a session, tampered ids, trimming.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewEvent, StoreOptions};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{err_kind, session};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        events_append_round_trips_fields,
        events_concurrent_appends_are_unique_increasing_and_tail_misses_none,
        events_replay_is_stream_scoped_and_paginated,
        events_replay_never_crosses_sessions,
        events_tampered_or_unknown_ids_replay_nothing,
        events_trimming_reports_cursor_expired_and_never_reuses_seq,
        events_on_missing_session_are_not_found,
    ]);
}

async fn events_append_round_trips_fields(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let before = store.get_session(&id).await.unwrap().unwrap();
    let priming = store
        .append_event(&id, NewEvent::priming("req-1"))
        .await
        .unwrap();
    let full = store
        .append_event(
            &id,
            NewEvent::new(
                "req-1",
                json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
            )
            .with_event_type("message")
            .with_retry_ms(1500),
        )
        .await
        .unwrap();
    assert_eq!((priming.seq, full.seq), (1, 2));
    assert!(priming.is_priming() && !full.is_priming());
    assert_eq!(full.session_id, id);
    let after = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(after.last_seq, 2);
    assert!(
        after.version >= before.version + 2,
        "appends bump the session version"
    );

    let page = store
        .events_after(&id, &EventId::start("req-1"), 10)
        .await
        .unwrap();
    assert_eq!(page.items, vec![priming.clone(), full.clone()]);
    assert_eq!(page.next, None);
    let e = &page.items[1];
    assert_eq!(e.event_type.as_deref(), Some("message"));
    assert_eq!(e.retry_ms, Some(1500));
    assert!(e.created_at >= before.created_at);
    // The wire id parses back in its session, and replays what came after.
    assert_eq!(
        EventId::parse(&priming.wire_id(), &id).unwrap(),
        priming.id()
    );
    let replay = store.replay(&id, &priming.wire_id(), 10).await.unwrap();
    assert_eq!(replay.items, vec![full.clone()]);
    assert!(
        store
            .replay(&id, &full.wire_id(), 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn events_concurrent_appends_are_unique_increasing_and_tail_misses_none(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let id = id.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = store
                    .events_after(&id, &EventId::new("tail", last), 1000)
                    .await
                    .expect("tail read");
                for e in &page.items {
                    seen.push(e.seq);
                    last = e.seq;
                }
                if page.items.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(100);
                for i in 0..100 {
                    let e = store
                        .append_event(&id, NewEvent::new("tail", json!({"task": t, "i": i})))
                        .await
                        .expect("append");
                    seqs.push(e.seq);
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        let seqs = w.await.unwrap();
        assert!(
            seqs.windows(2).all(|p| p[0] < p[1]),
            "one task's seqs increase: {seqs:?}"
        );
        all.extend(seqs);
    }
    done.store(true, Ordering::Release);
    let seen = reader.await.unwrap();
    all.sort_unstable();
    let expected: Vec<u64> = (1..=800).collect();
    assert_eq!(all, expected, "800 unique seqs, no gaps");
    assert_eq!(
        seen, expected,
        "the tail reader saw every event, in order, once"
    );
}

async fn events_replay_is_stream_scoped_and_paginated(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..10 {
        a.push(
            store
                .append_event(&id, NewEvent::new("a", json!({"a": i})))
                .await
                .unwrap(),
        );
        b.push(
            store
                .append_event(&id, NewEvent::new("b", json!({"b": i})))
                .await
                .unwrap(),
        );
    }
    let replay = store.replay(&id, &a[2].wire_id(), 100).await.unwrap();
    assert_eq!(
        replay.items,
        a[3..].to_vec(),
        "only stream a, after the cursor"
    );

    // Pages of 3: 3 + 3 + 1, following `next`.
    let mut pages = Vec::new();
    let mut cursor = a[2].wire_id();
    loop {
        let page = store.replay(&id, &cursor, 3).await.unwrap();
        pages.push(page.items.iter().map(|e| e.seq).collect::<Vec<_>>());
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let expected: Vec<Vec<u64>> = a[3..]
        .chunks(3)
        .map(|c| c.iter().map(|e| e.seq).collect())
        .collect();
    assert_eq!(pages, expected);

    let whole_b = store
        .events_after(&id, &EventId::start("b"), 100)
        .await
        .unwrap();
    assert_eq!(whole_b.items, b);
    assert!(
        store
            .events_after(&id, &EventId::start("c"), 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn events_replay_never_crosses_sessions(ns: Namespace) {
    let store = ns.open().await;
    let one = session(&store).await;
    let two = session(&store).await;
    let mut ones = Vec::new();
    for i in 0..5 {
        ones.push(
            store
                .append_event(&one, NewEvent::new("_GET_stream", json!({"one": i})))
                .await
                .unwrap(),
        );
        store
            .append_event(&two, NewEvent::new("_GET_stream", json!({"two": i})))
            .await
            .unwrap();
    }
    // Same stream name, same seqs: the id of session one means nothing in two.
    let foreign = store.replay(&two, &ones[0].wire_id(), 100).await;
    assert_eq!(err_kind(foreign), ErrorKind::InvalidInput);
    let own = store.replay(&one, &ones[0].wire_id(), 100).await.unwrap();
    assert_eq!(own.items, ones[1..].to_vec());
    assert!(
        own.items
            .iter()
            .all(|e| e.session_id == one && e.data.as_ref().unwrap().to_value()["one"].is_number())
    );
}

async fn events_tampered_or_unknown_ids_replay_nothing(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(
            store
                .append_event(&id, NewEvent::new("s", json!(i)))
                .await
                .unwrap(),
        );
    }
    let good = events[1].wire_id();
    let (seq, rest) = good.split_once('.').unwrap();
    let (stream, tag) = rest.split_once('.').unwrap();
    let flipped_tag: String = tag
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    let tampered = [
        format!("{}.{stream}.{tag}", seq.parse::<u64>().unwrap() - 1),
        format!("{seq}.{}.{tag}", "Yg"),
        format!("{seq}.{stream}.{flipped_tag}"),
        format!("{seq}.{stream}"),
        format!("{good}.extra"),
        "garbage".to_string(),
        String::new(),
        "1\r\n.cw.0000000000000000".to_string(),
    ];
    for wire in &tampered {
        let result = store.replay(&id, wire, 100).await;
        assert_eq!(err_kind(result), ErrorKind::InvalidInput, "{wire:?}");
    }
    // A well-formed typed cursor past the newest event is unknown.
    assert_eq!(
        err_kind(store.events_after(&id, &EventId::new("s", 99), 10).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.replay(&id, &good, 100).await.unwrap().items,
        events[2..].to_vec()
    );
}

async fn events_trimming_reports_cursor_expired_and_never_reuses_seq(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_events_per_session(5))
        .await;
    let id = session(&store).await;
    let mut events = Vec::new();
    for i in 0..12 {
        events.push(
            store
                .append_event(&id, NewEvent::new("s", json!(i)))
                .await
                .unwrap(),
        );
    }
    // Kept: seqs 8..=12. Events after 6 include the trimmed 7: expired.
    assert_eq!(
        err_kind(store.events_after(&id, &EventId::start("s"), 100).await),
        ErrorKind::CursorExpired
    );
    assert_eq!(
        err_kind(store.replay(&id, &events[5].wire_id(), 100).await),
        ErrorKind::CursorExpired
    );
    // After 7 (itself trimmed), nothing is missing: 8..=12.
    let tail = store.replay(&id, &events[6].wire_id(), 100).await.unwrap();
    assert_eq!(
        tail.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [8, 9, 10, 11, 12]
    );
    // Seq keeps counting after trimming.
    let next = store
        .append_event(&id, NewEvent::new("s", json!(12)))
        .await
        .unwrap();
    assert_eq!(next.seq, 13);
    assert_eq!(store.get_session(&id).await.unwrap().unwrap().last_seq, 13);
}

async fn events_on_missing_session_are_not_found(ns: Namespace) {
    let store = ns.open().await;
    assert_eq!(
        err_kind(
            store
                .append_event("ghost", NewEvent::new("s", json!(1)))
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.events_after("ghost", &EventId::start("s"), 10).await),
        ErrorKind::NotFound
    );
    assert_eq!(store.count_sessions().await.unwrap(), 0);
}
