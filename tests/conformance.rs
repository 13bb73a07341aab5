//! The conformance suite: every guarantee of the design, written once against
//! the store and run on every backend in `MSS_TEST_BACKENDS`
//! (default `memory,sqlite`). Test names are `BACKEND::test`.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};
use mcp_session_store::{
    ErrorKind, EventId, Json, NewEvent, NewSession, Result, Store, StoreOptions, validate,
};
use mcp_session_store_conformance::{Backend, Namespace, TestFn, run_test, tests};
use serde_json::{Map, Value, json};

/// Run on every backend.
const ALL: &[(&str, TestFn)] = tests![
    session_create_generates_unique_random_ids,
    session_create_given_id_and_already_exists,
    session_concurrent_create_of_one_id_has_one_winner,
    session_get_missing_is_none,
    session_update_shallow_merges_metadata,
    session_touch_renews_expiry_without_version_bump,
    session_delete_cascades_to_state_and_events,
    session_list_paginates_and_count_matches,
    state_crud_and_versions,
    state_set_if_version_is_compare_and_set,
    state_eight_tasks_times_100_atomic_increments_give_800,
    state_eight_tasks_writing_distinct_keys_lose_none,
    state_on_missing_session_is_not_found,
    events_append_round_trips_fields,
    events_concurrent_appends_are_unique_increasing_and_tail_misses_none,
    events_replay_is_stream_scoped_and_paginated,
    events_replay_never_crosses_sessions,
    events_tampered_or_unknown_ids_replay_nothing,
    events_trimming_reports_cursor_expired_and_never_reuses_seq,
    events_on_missing_session_are_not_found,
    subscribe_replays_then_follows_without_gap_or_duplicate,
    subscribe_ends_with_not_found_when_the_session_goes,
    subscribe_next_is_cancel_safe,
    subscribe_reports_a_subscriber_left_behind_by_trimming,
    expiry_hides_expired_session_before_cleanup,
    expiry_cleanup_removes_exactly_the_expired,
    expiry_cleanup_handles_many_sessions,
    expiry_ttl_slides_with_every_write,
    expiry_expired_id_can_be_created_again,
    expiry_sweeper_cleans_and_stops_on_drop,
    bad_input_gets_the_right_kind_and_keeps_data,
    limits_max_sessions_counts_live_sessions,
    options_from_url_apply,
];

/// Run only where two handles on one URL share data.
const SHARED: &[(&str, TestFn)] = tests![
    shared_two_handles_append_and_increment_without_loss,
    shared_data_survives_reopen,
    shared_closed_store_is_unavailable,
    shared_subscriber_sees_appends_of_another_handle,
    shared_two_processes_append_and_increment_while_a_tail_reads,
];

/// How long a test waits for something that must happen before it calls it
/// a hang: generous, because an emulator on a loaded machine is slow. It is
/// a guard, not a speed assertion.
const HANG: Duration = Duration::from_secs(180);

/// Set in a child process started by a cross-process test: the child runs
/// its part and exits instead of running the suite.
const CHILD_ENV: &str = "MSS_CONFORMANCE_CHILD";

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        std::process::exit(rt().block_on(cross_process_child(&spec)));
    }
    let args = Arguments::from_args();
    let backends = match Backend::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut trials = Vec::new();
    for backend in &backends {
        let shared = if backend.is_shared() { SHARED } else { &[] };
        for (name, f) in ALL.iter().chain(shared) {
            let backend = backend.clone();
            let f = *f;
            let name = *name;
            let label = format!("{}::{name}", backend.name);
            trials.push(Trial::test(label, move || {
                run_test(backend.namespace(name), f)
            }));
        }
    }
    trials.push(Trial::test(
        "global::no_tokio_runtime_is_an_error_not_a_panic",
        || {
            no_tokio_runtime_is_an_error_not_a_panic();
            Ok(())
        },
    ));
    trials.push(Trial::test("global::open_rejects_bad_urls", || {
        rt().block_on(open_rejects_bad_urls());
        Ok(())
    }));
    libtest_mimic::run(&args, trials).exit();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- helpers ---------------------------------------------------------------

#[track_caller]
fn err_kind<T: Debug>(result: Result<T>) -> ErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

async fn session(store: &Store) -> String {
    store
        .create_session(NewSession::new())
        .await
        .expect("create session")
        .id
}

async fn all_events(store: &Store, id: &str, stream: &str) -> Vec<u64> {
    let mut cursor = EventId::start(stream);
    let mut seqs = Vec::new();
    loop {
        let page = store
            .events_after(id, &cursor, 100)
            .await
            .expect("events_after");
        for e in &page.items {
            seqs.push(e.seq);
        }
        match page.items.last() {
            Some(last) if page.next.is_some() => cursor = last.id(),
            _ => return seqs,
        }
    }
}

// ---- sessions --------------------------------------------------------------

async fn session_create_generates_unique_random_ids(ns: Namespace) {
    let store = ns.open().await;
    let mut ids = HashSet::new();
    for _ in 0..50 {
        let s = store.create_session(NewSession::new()).await.unwrap();
        validate::session_id(&s.id).unwrap();
        // UUID v4: 36 characters, version nibble 4, variant 8-b.
        assert_eq!(s.id.len(), 36, "{}", s.id);
        assert_eq!(&s.id[14..15], "4", "{}", s.id);
        assert!("89ab".contains(&s.id[19..20]), "{}", s.id);
        assert!(ids.insert(s.id.clone()), "duplicate id {}", s.id);
        assert_eq!(s.ttl_ms, 30 * 60 * 1000);
        assert_eq!(s.created_at, s.last_activity);
        assert_eq!(s.expires_at, s.last_activity + s.ttl_ms as i64);
        assert_eq!(s.last_seq, 0);
        assert!(s.metadata.is_empty());
        assert_eq!(store.get_session(&s.id).await.unwrap(), Some(s));
    }
    assert_eq!(store.count_sessions().await.unwrap(), 50);
}

async fn session_create_given_id_and_already_exists(ns: Namespace) {
    let store = ns.open().await;
    let first = store
        .create_session(
            NewSession::new()
                .with_id("given-1")
                .with_metadata(obj(json!({"a": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(first.id, "given-1");
    let again = store
        .create_session(
            NewSession::new()
                .with_id("given-1")
                .with_metadata(obj(json!({"a": 2}))),
        )
        .await;
    assert_eq!(err_kind(again), ErrorKind::AlreadyExists);
    let kept = store.get_session("given-1").await.unwrap().unwrap();
    assert_eq!(kept, first, "a failed create must not change the session");
}

async fn session_concurrent_create_of_one_id_has_one_winner(ns: Namespace) {
    let store = ns.open().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_session(
                        NewSession::new()
                            .with_id("contested")
                            .with_metadata(obj(json!({"winner": i}))),
                    )
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => won.push(s),
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one create wins");
    let stored = store.get_session("contested").await.unwrap().unwrap();
    assert_eq!(stored.metadata, won[0].metadata);
}

async fn session_get_missing_is_none(ns: Namespace) {
    let store = ns.open().await;
    assert_eq!(store.get_session("never-created").await.unwrap(), None);
}

async fn session_update_shallow_merges_metadata(ns: Namespace) {
    let store = ns.open().await;
    let created = store
        .create_session(
            NewSession::new()
                .with_id("merge")
                .with_metadata(obj(json!({"a": 1, "nested": {"x": 1}, "keep": true}))),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let updated = store
        .update_session(
            "merge",
            obj(json!({"a": 2, "nested": {"y": 2}, "new": null})),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(updated.metadata.clone()),
        json!({"a": 2, "nested": {"y": 2}, "keep": true, "new": null})
    );
    assert!(updated.version > created.version);
    assert!(updated.last_activity > created.last_activity);
    assert!(updated.expires_at > created.expires_at);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(store.get_session("merge").await.unwrap().unwrap(), updated);
    let missing = store.update_session("nobody", obj(json!({"a": 1}))).await;
    assert_eq!(err_kind(missing), ErrorKind::NotFound);
}

async fn session_touch_renews_expiry_without_version_bump(ns: Namespace) {
    let store = ns.open().await;
    let created = store.create_session(NewSession::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let touched = store.touch_session(&created.id).await.unwrap();
    assert!(touched.expires_at > created.expires_at);
    assert!(touched.last_activity > created.last_activity);
    assert_eq!(touched.version, created.version);
    assert_eq!(
        err_kind(store.touch_session("nobody").await),
        ErrorKind::NotFound
    );
}

async fn session_delete_cascades_to_state_and_events(ns: Namespace) {
    let store = ns.open().await;
    store
        .create_session(NewSession::new().with_id("doomed"))
        .await
        .unwrap();
    store.set_state("doomed", "k", json!(1)).await.unwrap();
    store
        .append_event("doomed", NewEvent::new("s", json!({"n": 1})))
        .await
        .unwrap();
    assert!(store.delete_session("doomed").await.unwrap());
    assert_eq!(store.get_session("doomed").await.unwrap(), None);
    assert_eq!(
        err_kind(store.get_state("doomed", "k").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.events_after("doomed", &EventId::start("s"), 10).await),
        ErrorKind::NotFound
    );
    assert!(
        !store.delete_session("doomed").await.unwrap(),
        "delete is idempotent"
    );
    // The same id created again starts empty.
    let fresh = store
        .create_session(NewSession::new().with_id("doomed"))
        .await
        .unwrap();
    assert_eq!(fresh.last_seq, 0);
    assert!(store.state_keys("doomed").await.unwrap().is_empty());
    assert!(all_events(&store, "doomed", "s").await.is_empty());
    assert_eq!(store.cleanup_expired().await.unwrap().events, 0);
}

async fn session_list_paginates_and_count_matches(ns: Namespace) {
    let store = ns.open().await;
    let mut expected = Vec::new();
    for i in (0..25).rev() {
        let id = format!("s-{i:02}");
        store
            .create_session(NewSession::new().with_id(id.as_str()))
            .await
            .unwrap();
        expected.push(id);
    }
    expected.sort();
    // An expired session is not listed.
    store
        .create_session(
            NewSession::new()
                .with_id("s-expired")
                .with_ttl(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.count_sessions().await.unwrap(), 25);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = store.list_sessions(after.as_deref(), 10).await.unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, vec![10, 10, 5]);
    assert_eq!(seen, expected);
    let from_middle = store.list_sessions(Some("s-09"), 3).await.unwrap();
    let ids: Vec<_> = from_middle.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s-10", "s-11", "s-12"]);
    assert_eq!(from_middle.next.as_deref(), Some("s-12"));
}

// ---- state -----------------------------------------------------------------

async fn state_crud_and_versions(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let va = store.set_state(&id, "a", json!(1)).await.unwrap();
    let vb = store
        .set_state(&id, "b", json!({"x": [1, 2]}))
        .await
        .unwrap();
    assert!(vb > va, "versions grow: {va} then {vb}");
    let session = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(
        session.version, vb,
        "a state write bumps the session version"
    );

    let a = store.get_state(&id, "a").await.unwrap().unwrap();
    assert_eq!(
        (a.key.as_str(), a.value.to_value(), a.version),
        ("a", json!(1), va)
    );
    assert_eq!(store.get_state(&id, "missing").await.unwrap(), None);
    assert_eq!(store.state_keys(&id).await.unwrap(), ["a", "b"]);

    // Writing b leaves a's version alone.
    let vb2 = store.set_state(&id, "b", json!("replaced")).await.unwrap();
    assert!(vb2 > vb);
    assert_eq!(
        store.get_state(&id, "a").await.unwrap().unwrap().version,
        va
    );

    let all = store.state_all(&id).await.unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|e| (e.key.as_str(), e.value.to_value(), e.version))
        .collect();
    assert_eq!(
        all,
        vec![("a", json!(1), va), ("b", json!("replaced"), vb2)]
    );

    assert!(store.delete_state(&id, "a").await.unwrap());
    assert!(!store.delete_state(&id, "a").await.unwrap());
    assert_eq!(store.get_state(&id, "a").await.unwrap(), None);
    assert_eq!(store.state_keys(&id).await.unwrap(), ["b"]);

    // Raw JSON text round-trips as the same value.
    let raw = Json::parse(r#"{"deep": {"list": [true, null, 1.5, "ü"]}}"#).unwrap();
    store.set_state(&id, "raw", raw.clone()).await.unwrap();
    assert_eq!(
        store.get_state(&id, "raw").await.unwrap().unwrap().value,
        raw
    );
}

async fn state_set_if_version_is_compare_and_set(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let v1 = store
        .set_state_if_version(&id, "k", json!("one"), None)
        .await
        .unwrap();
    assert_eq!(
        err_kind(
            store
                .set_state_if_version(&id, "k", json!("dup"), None)
                .await
        ),
        ErrorKind::Conflict,
        "create-if-absent on an existing key"
    );
    let v2 = store
        .set_state_if_version(&id, "k", json!("two"), Some(v1))
        .await
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(
        err_kind(
            store
                .set_state_if_version(&id, "k", json!("stale"), Some(v1))
                .await
        ),
        ErrorKind::Conflict
    );
    let now = store.get_state(&id, "k").await.unwrap().unwrap();
    assert_eq!(
        (now.value.to_value(), now.version),
        (json!("two"), v2),
        "a lost CAS writes nothing"
    );
    let session_version = store.get_session(&id).await.unwrap().unwrap().version;
    assert_eq!(session_version, v2, "a lost CAS does not bump the session");

    // Delete and re-create: the old version never matches again (no ABA).
    store.delete_state(&id, "k").await.unwrap();
    let v3 = store.set_state(&id, "k", json!("three")).await.unwrap();
    assert!(v3 > v2);
    assert_eq!(
        err_kind(
            store
                .set_state_if_version(&id, "k", json!("aba"), Some(v2))
                .await
        ),
        ErrorKind::Conflict
    );
    assert_eq!(
        err_kind(
            store
                .set_state_if_version(&id, "absent", json!(1), Some(1))
                .await
        ),
        ErrorKind::Conflict
    );
}

async fn state_eight_tasks_times_100_atomic_increments_give_800(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    store
                        .update_state(&id, "counter", |v| {
                            Ok(json!(v.and_then(|v| v.as_u64()).unwrap_or(0) + 1))
                        })
                        .await
                        .expect("update_state");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let counter = store.get_state(&id, "counter").await.unwrap().unwrap();
    assert_eq!(counter.value.to_value(), json!(800));
}

async fn state_eight_tasks_writing_distinct_keys_lose_none(ns: Namespace) {
    let store = ns.open().await;
    let id = session(&store).await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for k in 0..50 {
                    store
                        .set_state(&id, &format!("task{t}-key{k}"), json!({"t": t, "k": k}))
                        .await
                        .expect("set_state");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = store.state_all(&id).await.unwrap();
    assert_eq!(all.len(), 400);
    let versions: HashSet<u64> = all.iter().map(|e| e.version).collect();
    assert_eq!(versions.len(), 400, "every write got its own version");
    for e in &all {
        let (t, k) = e.key.trim_start_matches("task").split_once("-key").unwrap();
        assert_eq!(
            e.value.to_value(),
            json!({"t": t.parse::<u64>().unwrap(), "k": k.parse::<u64>().unwrap()})
        );
    }
}

async fn state_on_missing_session_is_not_found(ns: Namespace) {
    let store = ns.open().await;
    assert_eq!(
        err_kind(store.get_state("ghost", "k").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.set_state("ghost", "k", json!(1)).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(
            store
                .set_state_if_version("ghost", "k", json!(1), None)
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.delete_state("ghost", "k").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.state_keys("ghost").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.state_all("ghost").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.update_state("ghost", "k", |_| Ok(json!(1))).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.count_sessions().await.unwrap(),
        0,
        "no write created a session"
    );
}

// ---- events ----------------------------------------------------------------

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

// ---- live delivery ---------------------------------------------------------

/// Read `n` events from a subscription, failing after 10 s without one.
async fn take(
    sub: &mut mcp_session_store::Subscription,
    n: usize,
) -> Vec<mcp_session_store::Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(HANG, sub.next()).await {
            Ok(Some(Ok(e))) => out.push(e),
            Ok(Some(Err(e))) => panic!("subscription failed after {} events: {e}", out.len()),
            Ok(None) => panic!("subscription ended after {} events", out.len()),
            Err(_) => panic!("no event within {HANG:?} after {} events", out.len()),
        }
    }
    out
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

// ---- expiry ----------------------------------------------------------------

async fn expiry_hides_expired_session_before_cleanup(ns: Namespace) {
    let store = ns.open().await;
    let short = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(150)))
        .await
        .unwrap()
        .id;
    store.set_state(&short, "k", json!(1)).await.unwrap();
    let e = store
        .append_event(&short, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    let long = session(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(store.get_session(&short).await.unwrap(), None);
    assert_eq!(
        err_kind(store.get_state(&short, "k").await),
        ErrorKind::NotFound
    );
    assert_eq!(err_kind(store.state_all(&short).await), ErrorKind::NotFound);
    assert_eq!(
        err_kind(store.set_state(&short, "k", json!(2)).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.delete_state(&short, "k").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(
            store
                .append_event(&short, NewEvent::new("s", json!(2)))
                .await
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.replay(&short, &e.wire_id(), 10).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.touch_session(&short).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(store.update_session(&short, Map::new()).await),
        ErrorKind::NotFound
    );
    assert_eq!(store.count_sessions().await.unwrap(), 1);
    let listed: Vec<_> = store
        .list_sessions(None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![long]);
}

async fn expiry_cleanup_removes_exactly_the_expired(ns: Namespace) {
    let store = ns.open().await;
    let mut expired = Vec::new();
    let mut live = Vec::new();
    for i in 0..6 {
        let ttl = if i % 2 == 0 {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(600)
        };
        let id = store
            .create_session(NewSession::new().with_ttl(ttl))
            .await
            .unwrap()
            .id;
        store.set_state(&id, "a", json!(i)).await.unwrap();
        store.set_state(&id, "b", json!(i)).await.unwrap();
        for n in 0..3 {
            store
                .append_event(&id, NewEvent::new("s", json!(n)))
                .await
                .unwrap();
        }
        if i % 2 == 0 {
            expired.push(id)
        } else {
            live.push(id)
        }
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let stats = store.cleanup_expired().await.unwrap();
    assert_eq!(
        (stats.sessions, stats.state_entries, stats.events),
        (3, 6, 9)
    );
    for id in &live {
        assert!(store.get_session(id).await.unwrap().is_some());
        assert_eq!(store.state_keys(id).await.unwrap(), ["a", "b"]);
        assert_eq!(all_events(&store, id, "s").await, [1, 2, 3]);
    }
    for id in &expired {
        assert_eq!(store.get_session(id).await.unwrap(), None);
    }
    assert_eq!(
        store.cleanup_expired().await.unwrap().sessions,
        0,
        "nothing left to clean"
    );
    assert_eq!(store.count_sessions().await.unwrap(), 3);
}

async fn expiry_cleanup_handles_many_sessions(ns: Namespace) {
    let store = ns.open().await;
    for i in 0..1200 {
        let ttl = if i % 100 == 0 {
            Duration::from_secs(600)
        } else {
            Duration::from_millis(1)
        };
        store
            .create_session(NewSession::new().with_ttl(ttl))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = store.cleanup_expired().await.unwrap();
    assert_eq!(stats.sessions, 1188);
    assert_eq!(store.count_sessions().await.unwrap(), 12);
}

async fn expiry_ttl_slides_with_every_write(ns: Namespace) {
    let store = ns.open().await;
    let id = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(400)))
        .await
        .unwrap()
        .id;
    let mut last = store.get_session(&id).await.unwrap().unwrap().expires_at;
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match round % 4 {
            0 => drop(store.set_state(&id, "k", json!(round)).await.unwrap()),
            1 => drop(
                store
                    .append_event(&id, NewEvent::new("s", json!(round)))
                    .await
                    .unwrap(),
            ),
            2 => drop(
                store
                    .update_session(&id, obj(json!({"r": round})))
                    .await
                    .unwrap(),
            ),
            _ => drop(store.delete_state(&id, "k").await.unwrap()),
        }
        let now = store
            .get_session(&id)
            .await
            .unwrap()
            .expect("kept alive by writes");
        assert!(
            now.expires_at > last,
            "round {round}: write renewed the TTL"
        );
        last = now.expires_at;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.get_session(&id).await.unwrap(), None);
}

async fn expiry_expired_id_can_be_created_again(ns: Namespace) {
    let store = ns.open().await;
    store
        .create_session(
            NewSession::new()
                .with_id("phoenix")
                .with_ttl(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    store
        .set_state("phoenix", "old", json!(true))
        .await
        .unwrap();
    store
        .append_event("phoenix", NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let again = store
        .create_session(NewSession::new().with_id("phoenix"))
        .await
        .unwrap();
    assert_eq!(again.last_seq, 0);
    assert!(
        store.state_keys("phoenix").await.unwrap().is_empty(),
        "old state is gone"
    );
    assert!(
        all_events(&store, "phoenix", "s").await.is_empty(),
        "old events are gone"
    );
}

async fn expiry_sweeper_cleans_and_stops_on_drop(ns: Namespace) {
    let store = ns.open().await;
    assert_eq!(
        err_kind(store.spawn_sweeper(Duration::ZERO)),
        ErrorKind::InvalidInput
    );
    for _ in 0..3 {
        store
            .create_session(NewSession::new().with_ttl(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    let keep = session(&store).await;
    let sweeper = store.spawn_sweeper(Duration::from_millis(25)).unwrap();
    let stats = sweeper.stats().clone();
    let deadline = tokio::time::Instant::now() + HANG;
    while stats.sessions_removed.load(Ordering::Relaxed) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper removed the expired sessions"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    drop(sweeper);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let runs = stats.runs.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        stats.runs.load(Ordering::Relaxed),
        runs,
        "no run after drop"
    );
    assert!(store.get_session(&keep).await.unwrap().is_some());
}

// ---- bad input -------------------------------------------------------------

async fn bad_input_gets_the_right_kind_and_keeps_data(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_payload_bytes(1024))
        .await;
    let created = store
        .create_session(
            NewSession::new()
                .with_id("intact")
                .with_metadata(obj(json!({"m": "x".repeat(400)}))),
        )
        .await
        .unwrap();
    store
        .set_state("intact", "k", json!({"v": 1}))
        .await
        .unwrap();
    store
        .append_event("intact", NewEvent::new("s", json!({"e": 1})))
        .await
        .unwrap();
    let snapshot = store.get_session("intact").await.unwrap().unwrap();
    let state_before = store.state_all("intact").await.unwrap();
    let events_before = all_events(&store, "intact", "s").await;

    let big = json!("x".repeat(2000));
    // Nested one level deeper than any reader decodes.
    let too_deep = (0..=validate::MAX_JSON_DEPTH).fold(json!(1), |v, _| json!([v]));
    let deepest_ok = (0..validate::MAX_JSON_DEPTH).fold(json!(1), |v, _| json!([v]));
    let long_id = "i".repeat(256);
    let long_key = "k".repeat(256);
    use ErrorKind::{InvalidInput, LimitExceeded};
    let cases: Vec<(&str, ErrorKind, ErrorKind)> = vec![
        (
            "empty session id",
            InvalidInput,
            err_kind(store.create_session(NewSession::new().with_id("")).await),
        ),
        (
            "space in id",
            InvalidInput,
            err_kind(store.create_session(NewSession::new().with_id("a b")).await),
        ),
        (
            "non-ASCII id",
            InvalidInput,
            err_kind(
                store
                    .create_session(NewSession::new().with_id("sessión"))
                    .await,
            ),
        ),
        (
            "256-byte id",
            InvalidInput,
            err_kind(
                store
                    .create_session(NewSession::new().with_id(long_id.as_str()))
                    .await,
            ),
        ),
        (
            "zero ttl",
            InvalidInput,
            err_kind(
                store
                    .create_session(NewSession::new().with_ttl(Duration::ZERO))
                    .await,
            ),
        ),
        (
            "oversize metadata",
            LimitExceeded,
            err_kind(
                store
                    .create_session(NewSession::new().with_metadata(obj(json!({"m": big.clone()}))))
                    .await,
            ),
        ),
        (
            "bad id on get",
            InvalidInput,
            err_kind(store.get_session("bad\nid").await),
        ),
        (
            "bad id on delete",
            InvalidInput,
            err_kind(store.delete_session("").await),
        ),
        (
            "empty key",
            InvalidInput,
            err_kind(store.set_state("intact", "", json!(1)).await),
        ),
        (
            "control char in key",
            InvalidInput,
            err_kind(store.set_state("intact", "a\0b", json!(1)).await),
        ),
        (
            "256-byte key",
            InvalidInput,
            err_kind(store.get_state("intact", &long_key).await),
        ),
        (
            "oversize state",
            LimitExceeded,
            err_kind(store.set_state("intact", "k", big.clone()).await),
        ),
        (
            "oversize CAS",
            LimitExceeded,
            err_kind(
                store
                    .set_state_if_version("intact", "k", big.clone(), Some(1))
                    .await,
            ),
        ),
        (
            "oversize update",
            LimitExceeded,
            err_kind(store.update_state("intact", "k", |_| Ok(big.clone())).await),
        ),
        (
            "state nested too deep",
            InvalidInput,
            err_kind(store.set_state("intact", "k", too_deep.clone()).await),
        ),
        (
            "event nested too deep",
            InvalidInput,
            err_kind(
                store
                    .append_event("intact", NewEvent::new("s", too_deep.clone()))
                    .await,
            ),
        ),
        (
            "metadata nested too deep",
            InvalidInput,
            err_kind(
                store
                    .update_session("intact", obj(json!({"n": too_deep.clone()})))
                    .await,
            ),
        ),
        (
            "empty stream",
            InvalidInput,
            err_kind(
                store
                    .append_event("intact", NewEvent::new("", json!(1)))
                    .await,
            ),
        ),
        (
            "newline in event type",
            InvalidInput,
            err_kind(
                store
                    .append_event(
                        "intact",
                        NewEvent::new("s", json!(1)).with_event_type("a\nb"),
                    )
                    .await,
            ),
        ),
        (
            "oversize event",
            LimitExceeded,
            err_kind(
                store
                    .append_event("intact", NewEvent::new("s", big.clone()))
                    .await,
            ),
        ),
        (
            "oversize metadata patch",
            LimitExceeded,
            err_kind(
                store
                    .update_session("intact", obj(json!({"n": big.clone()})))
                    .await,
            ),
        ),
        (
            "merged metadata over the limit",
            LimitExceeded,
            err_kind(
                store
                    .update_session("intact", obj(json!({"n": "y".repeat(700)})))
                    .await,
            ),
        ),
        (
            "limit 0",
            InvalidInput,
            err_kind(store.events_after("intact", &EventId::start("s"), 0).await),
        ),
        (
            "limit too big",
            InvalidInput,
            err_kind(store.list_sessions(None, 10_001).await),
        ),
        (
            "bad list cursor",
            InvalidInput,
            err_kind(store.list_sessions(Some(""), 10).await),
        ),
        (
            "garbage event id",
            InvalidInput,
            err_kind(store.replay("intact", "not-an-id", 10).await),
        ),
        (
            "bad cursor stream",
            InvalidInput,
            err_kind(
                store
                    .events_after("intact", &EventId::start("a\rb"), 10)
                    .await,
            ),
        ),
        (
            "invalid JSON text",
            InvalidInput,
            err_kind(Json::parse("{\"unterminated\": ")),
        ),
        (
            "update fn error",
            InvalidInput,
            err_kind(
                store
                    .update_state("intact", "k", |_| {
                        Err(mcp_session_store::Error::new(InvalidInput, "no"))
                    })
                    .await,
            ),
        ),
    ];
    for (what, want, got) in cases {
        assert_eq!(got, want, "{what}");
    }

    let after = store.get_session("intact").await.unwrap().unwrap();
    assert_eq!(after.metadata, created.metadata, "metadata intact");
    assert_eq!(after.version, snapshot.version, "no failed call wrote");
    assert_eq!(after.last_seq, snapshot.last_seq);
    assert_eq!(store.state_all("intact").await.unwrap(), state_before);
    assert_eq!(all_events(&store, "intact", "s").await, events_before);
    assert_eq!(store.count_sessions().await.unwrap(), 1);

    // The deepest accepted value reads back whole.
    store
        .set_state("intact", "deep", deepest_ok.clone())
        .await
        .unwrap();
    let read = store.get_state("intact", "deep").await.unwrap().unwrap();
    assert_eq!(read.value.to_value(), deepest_ok);
}

async fn limits_max_sessions_counts_live_sessions(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_sessions(Some(3)))
        .await;
    let brief = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(1000)))
        .await
        .unwrap()
        .id;
    let a = session(&store).await;
    session(&store).await;
    assert_eq!(
        err_kind(store.create_session(NewSession::new()).await),
        ErrorKind::LimitExceeded
    );
    // An expired session does not count. (The TTL leaves room for three
    // creates on a slow backend before it runs out.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.get_session(&brief).await.unwrap(), None);
    session(&store).await;
    assert_eq!(
        err_kind(store.create_session(NewSession::new()).await),
        ErrorKind::LimitExceeded
    );
    assert!(store.delete_session(&a).await.unwrap());
    session(&store).await;
    assert_eq!(store.count_sessions().await.unwrap(), 3);
}

async fn options_from_url_apply(ns: Namespace) {
    let store = Store::open(&ns.url("ttl=90s&max_events_per_session=2&max_payload_bytes=64"))
        .await
        .unwrap();
    assert_eq!(store.options().max_events_per_session, 2);
    let s = store.create_session(NewSession::new()).await.unwrap();
    assert_eq!(s.ttl_ms, 90_000);
    for i in 0..3 {
        store
            .append_event(&s.id, NewEvent::new("s", json!(i)))
            .await
            .unwrap();
    }
    assert_eq!(
        err_kind(store.events_after(&s.id, &EventId::start("s"), 10).await),
        ErrorKind::CursorExpired
    );
    assert_eq!(
        err_kind(store.set_state(&s.id, "k", json!("x".repeat(64))).await),
        ErrorKind::LimitExceeded
    );
    assert_eq!(
        err_kind(Store::open(&ns.url("bogus_option=1")).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        err_kind(Store::open(&ns.url("ttl=soon")).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        err_kind(Store::open(&ns.url("max_events_per_session=0")).await),
        ErrorKind::InvalidInput
    );
}

// ---- shared backends -------------------------------------------------------

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
async fn cross_process_child(spec: &str) -> i32 {
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

// ---- URLs ------------------------------------------------------------------

async fn open_rejects_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, ErrorKind)> = vec![
        ("no-scheme.db".into(), ErrorKind::InvalidInput),
        ("nope://x".into(), ErrorKind::InvalidInput),
        ("memory://somewhere".into(), ErrorKind::InvalidInput),
        ("memory://?bogus=1".into(), ErrorKind::InvalidInput),
        ("memory://?ttl=1&ttl=2".into(), ErrorKind::InvalidInput),
        (
            "memory://?max_payload_bytes=-5".into(),
            ErrorKind::InvalidInput,
        ),
        ("sqlite://".into(), ErrorKind::InvalidInput),
        ("sqlite://:memory:".into(), ErrorKind::InvalidInput),
        (
            format!(
                "sqlite://{}/x.db?synchronous=sometimes",
                dir.path().display()
            ),
            ErrorKind::InvalidInput,
        ),
        (
            format!("sqlite://{}/x.db?read_pool_size=0", dir.path().display()),
            ErrorKind::InvalidInput,
        ),
        (
            format!("sqlite://{}/missing/dir/x.db", dir.path().display()),
            ErrorKind::Unavailable,
        ),
    ];
    for (url, want) in cases {
        assert_eq!(err_kind(Store::open(&url).await), want, "{url}");
    }
    let ok = Store::open(&format!(
        "sqlite://{}/x.db?synchronous=full&busy_timeout=2s",
        dir.path().display()
    ))
    .await
    .unwrap();
    assert_eq!(ok.backend_name(), "sqlite");
}

fn no_tokio_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/x.db", dir.path().display());
    // An executor that is not tokio: the SQLite writer cannot be started.
    let opened = futures::executor::block_on(Store::open(&url));
    assert_eq!(err_kind(opened), ErrorKind::Internal);
    // memory:// needs no background task and works anywhere.
    let store = futures::executor::block_on(Store::open("memory://")).unwrap();
    let s = futures::executor::block_on(store.create_session(NewSession::new())).unwrap();
    assert!(
        futures::executor::block_on(store.get_session(&s.id))
            .unwrap()
            .is_some()
    );
    // The sweeper is a tokio task.
    assert_eq!(
        err_kind(store.spawn_sweeper(Duration::from_secs(1))),
        ErrorKind::Internal
    );
}
