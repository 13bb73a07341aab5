//! Expiry: an expired session is gone before any clean-up, clean-up removes
//! exactly the expired, writes slide the TTL, an expired id can be created
//! again, and the sweeper.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_session_store::{ErrorKind, NewEvent, NewSession};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::{Map, json};

use crate::Registry;
use crate::helpers::{HANG, all_events, err_kind, obj, session};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        expiry_hides_expired_session_before_cleanup,
        expiry_cleanup_removes_exactly_the_expired,
        expiry_cleanup_handles_many_sessions,
        expiry_ttl_slides_with_every_write,
        expiry_expired_id_can_be_created_again,
        expiry_sweeper_cleans_and_stops_on_drop,
    ]);
}

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
