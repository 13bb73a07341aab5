//! PostgreSQL's own features: URL options, TLS, LISTEN/NOTIFY, timeouts,
//! batched appends and an unreachable server. Runs when `MSS_TEST_BACKENDS` names `postgres`;
//! otherwise every test is listed as ignored.

use std::time::{Duration, Instant};

use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, Store, StoreOptions};
use mcp_session_store_conformance::{
    Namespace, TestFn, append_until_seen, run_backend_tests, tests,
};
use serde_json::json;
use sqlx::{Connection, Executor};

const TESTS: &[(&str, TestFn)] = tests![
    unreachable_server_is_unavailable_within_connect_timeout,
    bad_options_are_invalid_input,
    sslmode_require_connects_over_tls,
    concurrent_opens_of_a_new_schema_migrate_once,
    subscriber_is_woken_by_notify_from_another_store,
    appends_work_without_notify,
    statement_timeout_is_timeout_and_loses_nothing,
    cleanup_skips_a_session_a_writer_holds,
    appends_batched_under_load_keep_order_trim_and_not_found_apart,
    batched_appends_notify_listeners,
];

fn main() {
    run_backend_tests("postgres", TESTS)
}

/// A connection of the test's own to the namespace's server.
async fn raw(ns: &Namespace) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(ns.base_url())
        .await
        .expect("connect to PostgreSQL")
}

/// The namespace's schema name.
fn schema(ns: &Namespace) -> String {
    ns.param("schema")
        .expect("a postgres namespace names its schema")
}

async fn unreachable_server_is_unavailable_within_connect_timeout(_ns: Namespace) {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        Store::open(&format!(
            "postgres://postgres@127.0.0.1:{port}/test?connect_timeout=500ms"
        )),
    )
    .await
    .expect("open must give up by itself, not hang");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains(&port.to_string()), "{err}");
    // The refused connect is retried until connect_timeout, not longer than
    // a generous multiple of it (this guards against a hang, it is not a
    // speed assertion).
    assert!(started.elapsed() < Duration::from_secs(30));
}

async fn bad_options_are_invalid_input(ns: Namespace) {
    for params in [
        "schema=Bad-Name",
        "schema=pg_catalog",
        "schema=1abc",
        "schema=a_schema_name_that_is_far_too_long_for_a_channel_name_x",
        "pool_size=0",
        "pool_size=many",
        "connect_timeout=0s",
        "statement_timeout=soon",
        "notify=maybe",
        "sslmode=sometimes",
        "unknown_option=1",
    ] {
        let url = format!("{}&{params}", ns.url(""));
        let err = Store::open(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{params}: {err}");
    }
}

async fn sslmode_require_connects_over_tls(ns: Namespace) {
    let url = ns.url("").replace("sslmode=disable", "sslmode=require");
    assert!(url.contains("sslmode=require"), "{url}");
    let store = Store::open(&url).await.expect("open over TLS");
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&id, "k", json!("over tls")).await.unwrap();
    let mut conn = raw(&ns).await;
    // The server reports the store's connections as encrypted.
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
         WHERE s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(encrypted >= 1, "no encrypted connection of the store");
    assert_eq!(
        store
            .get_state(&id, "k")
            .await
            .unwrap()
            .unwrap()
            .value
            .to_value(),
        json!("over tls")
    );
    store.close().await.unwrap();
}

async fn concurrent_opens_of_a_new_schema_migrate_once(ns: Namespace) {
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = ns.url("");
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().expect("every concurrent open succeeds"));
    }
    let mut conn = raw(&ns).await;
    let applied: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.mss_migrations",
        schema(&ns)
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(applied, 2, "each migration is applied once");
    let id = stores[0]
        .create_session(NewSession::new())
        .await
        .unwrap()
        .id;
    assert!(stores[5].get_session(&id).await.unwrap().is_some());
}

async fn subscriber_is_woken_by_notify_from_another_store(ns: Namespace) {
    // The subscriber polls once an hour: only a notification can wake it.
    let listener = Store::open_with(
        &ns.url(""),
        StoreOptions::default().with_poll_interval(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let writer = ns.open().await;
    let id = writer.create_session(NewSession::new()).await.unwrap().id;
    let mut sub = listener
        .subscribe(&id, EventId::start("live"))
        .await
        .unwrap();
    let (got, appended) = append_until_seen(&writer, &mut sub, &id).await;
    assert_eq!(got.seq, appended[0]);
    assert_eq!(got.session_id, id);
    // The listening store is registered, so appends notify; once it closes
    // they no longer do.
    let listeners = format!("SELECT count(*) FROM {}.mss_listeners", schema(&ns));
    let mut conn = raw(&ns).await;
    let registered: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(listeners.clone()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(registered, 1);
    drop(sub);
    listener.close().await.unwrap();
    let registered: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(listeners))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(registered, 0);
}

async fn appends_work_without_notify(ns: Namespace) {
    let store = Store::open(&ns.url("notify=false")).await.unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    for n in 1..=3 {
        let e = store
            .append_event(&id, NewEvent::new("s", json!(n)))
            .await
            .unwrap();
        assert_eq!(e.seq, n);
    }
    let page = store
        .events_after(&id, &EventId::start("s"), 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
}

async fn statement_timeout_is_timeout_and_loses_nothing(ns: Namespace) {
    let store = Store::open(&ns.url("statement_timeout=300ms"))
        .await
        .unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store
        .append_event(&id, NewEvent::new("s", json!("kept")))
        .await
        .unwrap();
    // Another client holds the session row.
    let mut holder = raw(&ns).await;
    holder.execute("BEGIN").await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {}.mss_sessions WHERE id = $1 FOR UPDATE",
        schema(&ns)
    )))
    .bind(&id)
    .execute(&mut holder)
    .await
    .unwrap();
    let err = store
        .append_event(&id, NewEvent::new("s", json!("blocked")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    holder.execute("ROLLBACK").await.unwrap();
    // Nothing was lost, and the next append takes the next seq.
    let e = store
        .append_event(&id, NewEvent::new("s", json!("after")))
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    let page = store
        .events_after(&id, &EventId::start("s"), 10)
        .await
        .unwrap();
    let data: Vec<_> = page
        .items
        .iter()
        .map(|e| e.data.as_ref().unwrap().to_value())
        .collect();
    assert_eq!(data, [json!("kept"), json!("after")]);
}

async fn cleanup_skips_a_session_a_writer_holds(ns: Namespace) {
    let store = ns.open().await;
    let held = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(50)))
        .await
        .unwrap()
        .id;
    let free = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(50)))
        .await
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut holder = raw(&ns).await;
    holder.execute("BEGIN").await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {}.mss_sessions WHERE id = $1 FOR UPDATE",
        schema(&ns)
    )))
    .bind(&held)
    .execute(&mut holder)
    .await
    .unwrap();
    // Cleanup does not wait for the held row: it removes the other one.
    let stats = tokio::time::timeout(Duration::from_secs(20), store.cleanup_expired())
        .await
        .expect("cleanup does not block on a held row")
        .unwrap();
    assert_eq!(stats.sessions, 1);
    holder.execute("ROLLBACK").await.unwrap();
    let stats = store.cleanup_expired().await.unwrap();
    assert_eq!(stats.sessions, 1);
    assert_eq!(store.count_sessions().await.unwrap(), 0);
    let _ = free;
}

async fn appends_batched_under_load_keep_order_trim_and_not_found_apart(ns: Namespace) {
    // 64 callers and 8 append workers (pool_size 8): appends queue up and
    // go several to a statement, often several to one session, and the
    // batch itself trims (5 events kept).
    let url = ns.url("pool_size=8&max_events_per_session=5");
    let store = Store::open(&url).await.unwrap();
    let deleter = Store::open(&url).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(store.create_session(NewSession::new()).await.unwrap().id);
    }
    let doomed = ids[3].clone();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = store.clone();
        let id = ids[t % 4].clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for n in 0..10 {
                out.push(
                    store
                        .append_event(&id, NewEvent::new("s", json!({"t": t, "n": n})))
                        .await,
                );
            }
            (id, out)
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(deleter.delete_session(&doomed).await.unwrap());

    let mut seqs: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for task in tasks {
        let (id, results) = task.await.unwrap();
        let mut gone = false;
        for result in results {
            match result {
                Ok(e) => {
                    assert!(!gone, "an append to {id} worked after one found it gone");
                    assert_eq!(e.session_id, id);
                    seqs.entry(id.clone()).or_default().push(e.seq);
                }
                Err(e) => {
                    assert_eq!(id, doomed, "{e}");
                    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
                    gone = true;
                }
            }
        }
    }
    for id in &ids[..3] {
        // Every append of the live sessions stored, numbered 1..=160.
        let mut got = seqs.remove(id).unwrap();
        got.sort_unstable();
        assert_eq!(got, (1..=160).collect::<Vec<u64>>(), "{id}");
        assert_eq!(store.get_session(id).await.unwrap().unwrap().last_seq, 160);
        // The newest 5 are kept, in order; before them the cursor expired.
        let page = store
            .events_after(id, &EventId::new("s", 155), 100)
            .await
            .unwrap();
        let kept: Vec<u64> = page.items.iter().map(|e| e.seq).collect();
        assert_eq!(kept, [156, 157, 158, 159, 160]);
        let err = store
            .events_after(id, &EventId::new("s", 150), 100)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CursorExpired, "{err}");
    }
    // The deleted session's appends before the delete got distinct seqs.
    let mut doomed_seqs = seqs.remove(&doomed).unwrap_or_default();
    let n = doomed_seqs.len();
    doomed_seqs.sort_unstable();
    doomed_seqs.dedup();
    assert_eq!(doomed_seqs.len(), n);
    assert!(store.get_session(&doomed).await.unwrap().is_none());
}

async fn batched_appends_notify_listeners(ns: Namespace) {
    // The subscriber polls once an hour: only NOTIFY can wake it.
    let listener = Store::open_with(
        &ns.url(""),
        StoreOptions::default().with_poll_interval(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let writer = Store::open(&ns.url("pool_size=8")).await.unwrap();
    let id = writer.create_session(NewSession::new()).await.unwrap().id;
    let mut sub = listener.subscribe(&id, EventId::start("s")).await.unwrap();
    // Wait until the listener is registered, so appends notify.
    let count = format!("SELECT count(*) FROM {}.mss_listeners", schema(&ns));
    let mut conn = raw(&ns).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the listener never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 32 appends at once: they go in batches.
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let writer = writer.clone();
            let id = id.clone();
            tokio::spawn(async move {
                writer
                    .append_event(&id, NewEvent::new("s", json!(n)))
                    .await
                    .unwrap()
                    .seq
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 32 {
        let event = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("NOTIFY from a batch woke the subscriber")
            .expect("the subscription goes on")
            .unwrap();
        seen.push(event.seq);
    }
    assert_eq!(seen, (1..=32).collect::<Vec<u64>>());
}
