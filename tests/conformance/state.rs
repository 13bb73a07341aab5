//! Session state: reads and writes with versions, compare-and-set, atomic
//! updates under contention, and calls on a missing session.

use std::collections::HashSet;

use mcp_session_store::{ErrorKind, Json};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{err_kind, session};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        state_crud_and_versions,
        state_set_if_version_is_compare_and_set,
        state_eight_tasks_times_100_atomic_increments_give_800,
        state_eight_tasks_writing_distinct_keys_lose_none,
        state_on_missing_session_is_not_found,
    ]);
}

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
