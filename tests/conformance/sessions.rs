//! Sessions: creating (random or given ids, one winner under contention),
//! reading, merging metadata, touching, deleting with everything under a
//! session, listing and counting.

use std::collections::HashSet;
use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, validate};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::{Value, json};

use crate::Registry;
use crate::helpers::{all_events, err_kind, obj};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        session_create_generates_unique_random_ids,
        session_create_given_id_and_already_exists,
        session_concurrent_create_of_one_id_has_one_winner,
        session_get_missing_is_none,
        session_update_shallow_merges_metadata,
        session_touch_renews_expiry_without_version_bump,
        session_delete_cascades_to_state_and_events,
        session_list_paginates_and_count_matches,
    ]);
}

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
