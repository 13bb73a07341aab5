//! Bad input: every malformed or oversize argument gets its error kind and
//! writes nothing.

use std::time::Duration;

use mcp_session_store::{ErrorKind, EventId, Json, NewEvent, NewSession, StoreOptions, validate};
use mcp_session_store_conformance::{Namespace, tests};
use serde_json::json;

use crate::Registry;
use crate::helpers::{all_events, err_kind, obj};

/// Register this area's tests.
pub(crate) fn register(r: &mut Registry) {
    r.all(tests![bad_input_gets_the_right_kind_and_keeps_data]);
}

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
