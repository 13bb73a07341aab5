//! Opening a store: options from the URL, the session limit, URLs that are
//! refused, and opening where there is no tokio runtime.

use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, Store, StoreOptions};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{err_kind, session};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![
        limits_max_sessions_counts_live_sessions,
        options_from_url_apply,
    ]);
    r.global(
        "no_tokio_runtime_is_an_error_not_a_panic",
        no_tokio_runtime_is_an_error_not_a_panic,
    );
    r.global("open_rejects_bad_urls", || {
        crate::helpers::rt().block_on(open_rejects_bad_urls())
    });
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

/// URLs no store opens; the SQLite ones only with the `sqlite` feature.
async fn open_rejects_bad_urls() {
    let cases = [
        "no-scheme.db",
        "nope://x",
        "memory://somewhere",
        "memory://?bogus=1",
        "memory://?ttl=1&ttl=2",
        "memory://?max_payload_bytes=-5",
    ];
    for url in cases {
        assert_eq!(
            err_kind(Store::open(url).await),
            ErrorKind::InvalidInput,
            "{url}"
        );
    }
    #[cfg(feature = "sqlite")]
    sqlite_urls().await;
}

/// SQLite's own URL mistakes, and a URL it opens.
#[cfg(feature = "sqlite")]
async fn sqlite_urls() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, ErrorKind)> = vec![
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
    // An executor that is not tokio: the SQLite writer cannot be started.
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/x.db", dir.path().display());
        let opened = futures::executor::block_on(Store::open(&url));
        assert_eq!(err_kind(opened), ErrorKind::Internal);
    }
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
