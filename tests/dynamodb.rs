//! DynamoDB's own behaviour: URL options, an unreachable or silent endpoint,
//! a missing or foreign table, the 400 KB item limit, the table layout and
//! native TTL attribute, the shard count, and trimming after the limit is
//! lowered. Runs when `MSS_TEST_BACKENDS` names `dynamodb` (against the
//! server at `MSS_TEST_DYNAMODB_ENDPOINT`, default `http://127.0.0.1:8000`,
//! started by `scripts/dynamodb.sh`); otherwise every test is listed as
//! ignored.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, Store, StoreOptions};
use mcp_session_store_conformance::{Namespace, TestFn, dynamodb_client, run_backend_tests, tests};
use serde_json::json;

const TESTS: &[(&str, TestFn)] = tests![
    unreachable_endpoint_is_unavailable,
    silent_endpoint_is_timeout,
    missing_table_is_not_found_naming_it,
    foreign_table_is_refused,
    bad_options_are_invalid_input,
    items_over_400_kb_are_limit_exceeded_and_lose_nothing,
    table_layout_and_native_ttl_attribute,
    shard_count_is_fixed_per_table,
    lowering_the_event_limit_trims_exactly,
    max_sessions_counts_live_sessions_across_shards,
];

fn main() {
    run_backend_tests("dynamodb", TESTS)
}

fn endpoint() -> String {
    std::env::var("MSS_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:8000".to_string())
}

/// The namespace's table name (the URL's location).
fn table(ns: &Namespace) -> String {
    let url = ns.url("");
    let rest = url.strip_prefix("dynamodb://").expect("a dynamodb URL");
    rest.split('?').next().unwrap().to_string()
}

fn random_table() -> String {
    format!("mss_t_{:016x}", fastrand::u64(..))
}

#[track_caller]
fn err<T: std::fmt::Debug>(r: mcp_session_store::Result<T>) -> mcp_session_store::Error {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

async fn unreachable_endpoint_is_unavailable(_ns: Namespace) {
    // Nothing listens on port 1: connections are refused.
    let url = "dynamodb://mss_unreachable?endpoint=http://127.0.0.1:1&region=us-east-1\
               &connect_timeout=500ms&timeout=5s&max_attempts=2";
    let started = Instant::now();
    let e = err(Store::open(url).await);
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("mss_unreachable"), "{e}");
    // It gives up within its own timeout (a generous bound, not a speed check).
    assert!(started.elapsed() < Duration::from_secs(30), "{e}");
}

async fn silent_endpoint_is_timeout(_ns: Namespace) {
    // A listener that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!(
        "dynamodb://mss_silent?endpoint=http://127.0.0.1:{port}&region=us-east-1\
         &connect_timeout=500ms&timeout=700ms&max_attempts=1"
    );
    let e = err(Store::open(&url).await);
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    drop(listener);
}

async fn missing_table_is_not_found_naming_it(_ns: Namespace) {
    let name = random_table();
    let url = format!("dynamodb://{name}?endpoint={}&region=us-east-1", endpoint());
    let e = err(Store::open(&url).await);
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains(&name), "names the table: {e}");
    assert!(
        e.message().contains("create_table"),
        "says how to fix it: {e}"
    );
    // And it did not create it.
    let client = dynamodb_client(&endpoint()).await;
    let described = client.describe_table().table_name(&name).send().await;
    assert!(described.is_err(), "the table was not created");
}

async fn foreign_table_is_refused(_ns: Namespace) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = random_table();
    let client = dynamodb_client(&endpoint()).await;
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let url = format!(
        "dynamodb://{name}?endpoint={}&region=us-east-1&create_table=true",
        endpoint()
    );
    let e = err(Store::open(&url).await);
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.message().contains(&name), "{e}");
    let _ = client.delete_table().table_name(&name).send().await;
}

async fn bad_options_are_invalid_input(ns: Namespace) {
    let ep = endpoint();
    for url in [
        "dynamodb://".to_string(),
        format!("dynamodb://ab?endpoint={ep}"),
        format!("dynamodb://bad%20name?endpoint={ep}"),
        "dynamodb://t_ok?endpoint=ftp://127.0.0.1:8000".to_string(),
        format!("dynamodb://t_ok?endpoint={ep}&region=us%20east"),
        format!("dynamodb://t_ok?endpoint={ep}&create_table=maybe"),
        format!("dynamodb://t_ok?endpoint={ep}&timeout=soon"),
        format!("dynamodb://t_ok?endpoint={ep}&connect_timeout=0ms"),
        format!("dynamodb://t_ok?endpoint={ep}&max_attempts=0"),
        format!("dynamodb://t_ok?endpoint={ep}&shards=0"),
        format!("dynamodb://t_ok?endpoint={ep}&ttl_grace=1"),
        format!("dynamodb://t_ok?endpoint={ep}&bogus=1"),
        ns.url("schema=x"),
    ] {
        let e = err(Store::open(&url).await);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}: {e}");
    }
}

async fn items_over_400_kb_are_limit_exceeded_and_lose_nothing(ns: Namespace) {
    // The default payload limit (1 MiB) is above DynamoDB's 400 KB items.
    let store = ns.open().await;
    assert_eq!(store.options().max_payload_bytes, 1024 * 1024);
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&id, "k", json!("kept")).await.unwrap();
    let kept = store
        .append_event(&id, NewEvent::new("s", json!("kept")))
        .await
        .unwrap();
    let big = json!("x".repeat(500 * 1024));
    for (what, e) in
        [
            (
                "event",
                err(store
                    .append_event(&id, NewEvent::new("s", big.clone()))
                    .await),
            ),
            ("state", err(store.set_state(&id, "k", big.clone()).await)),
            (
                "metadata",
                err(store
                    .update_session(
                        &id,
                        serde_json::Map::from_iter([("m".to_string(), big.clone())]),
                    )
                    .await),
            ),
            (
                "new session",
                err(store
                    .create_session(NewSession::new().with_metadata(serde_json::Map::from_iter([
                        ("m".to_string(), big.clone()),
                    ])))
                    .await),
            ),
        ]
    {
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{what}: {e}");
        assert!(e.message().contains("400 KB"), "{what}: {e}");
    }
    // Nothing stored was lost or changed, and seq was not used up.
    let state = store.get_state(&id, "k").await.unwrap().unwrap();
    assert_eq!(state.value.to_value(), json!("kept"));
    let session = store.get_session(&id).await.unwrap().unwrap();
    assert!(session.metadata.is_empty());
    // Just under the item limit fits and round-trips.
    let fits = json!("y".repeat(380 * 1024));
    let e = store
        .append_event(&id, NewEvent::new("s", fits.clone()))
        .await
        .unwrap();
    assert_eq!(e.seq, kept.seq + 1, "the refused event used no seq");
    let page = store.events_after(&id, &kept.id(), 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].data.as_ref().unwrap().to_value(), fits);
}

async fn table_layout_and_native_ttl_attribute(ns: Namespace) {
    let store = ns.open().await;
    let id = store
        .create_session(NewSession::new().with_ttl(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    store.set_state(&id, "alpha", json!(1)).await.unwrap();
    store
        .append_event(&id, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    let session = store.get_session(&id).await.unwrap().unwrap();
    let client = dynamodb_client(&endpoint()).await;
    let name = table(&ns);

    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description().unwrap();
    assert_eq!(spec.attribute_name(), Some("ttl"));

    // The session item sits in one of the shard partitions, with a native
    // TTL in epoch seconds at or after its expiry.
    let mut found = None;
    for shard in 0..4 {
        let out = client
            .get_item()
            .table_name(&name)
            .key("pk", AttributeValue::S(format!("S#{shard:02}")))
            .key("sk", AttributeValue::S(id.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if let Some(item) = out.item {
            found = Some(item);
        }
    }
    let item = found.expect("the session item is in a shard partition");
    let num = |name: &str| -> i64 { item[name].as_n().unwrap().parse().unwrap() };
    assert_eq!(num("exp"), session.expires_at);
    assert!(
        num("ttl") * 1000 >= session.expires_at,
        "ttl is at or after expiry"
    );
    assert_eq!(num("lseq"), 1);
    let gen_ = item["gen"].as_s().unwrap().clone();

    // State and events share the session's child partition.
    let out = client
        .query()
        .table_name(&name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("C#{gen_}#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let sks: Vec<String> = out
        .items()
        .iter()
        .map(|i| i["sk"].as_s().unwrap().clone())
        .collect();
    assert_eq!(sks, [format!("E#{:020}", 1), "K#alpha".to_string()]);

    // Deleting the session removes every item of it.
    assert!(store.delete_session(&id).await.unwrap());
    let out = client
        .query()
        .table_name(&name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("C#{gen_}#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.count, 0, "state and events deleted");
}

async fn shard_count_is_fixed_per_table(ns: Namespace) {
    let store = Store::open(&ns.url("shards=7")).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(store.create_session(NewSession::new()).await.unwrap().id);
    }
    ids.sort();
    // Another count is refused; no count reads the stored one.
    let e = err(Store::open(&ns.url("shards=4")).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains('7'), "{e}");
    let again = ns.open().await;
    assert_eq!(again.count_sessions().await.unwrap(), 20);
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = again.list_sessions(after.as_deref(), 6).await.unwrap();
        listed.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(
        listed, ids,
        "every session once, in id order, across 7 shards"
    );
    for id in &ids {
        assert!(again.get_session(id).await.unwrap().is_some());
    }
}

async fn lowering_the_event_limit_trims_exactly(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_events_per_session(10))
        .await;
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    for i in 0..10 {
        store
            .append_event(&id, NewEvent::new("s", json!(i)))
            .await
            .unwrap();
    }
    // Reopened with a lower limit, the next append trims 8 at once.
    let lower = ns
        .open_with(StoreOptions::default().with_max_events_per_session(3))
        .await;
    let e = lower
        .append_event(&id, NewEvent::new("s", json!(10)))
        .await
        .unwrap();
    assert_eq!(e.seq, 11);
    assert_eq!(
        err(lower.events_after(&id, &EventId::new("s", 7), 10).await).kind(),
        ErrorKind::CursorExpired
    );
    let page = lower
        .events_after(&id, &EventId::new("s", 8), 10)
        .await
        .unwrap();
    let seqs: Vec<u64> = page.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [9, 10, 11]);
    // The trimmed items are gone from the table, not only hidden.
    let client = dynamodb_client(&endpoint()).await;
    let name = table(&ns);
    // This test's own small table: a scan counts what is stored.
    let scan = client
        .scan()
        .table_name(&name)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let events = scan
        .items()
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|s| s.starts_with("E#")))
        .count();
    assert_eq!(events, 3, "only the kept events are stored");
}

/// The conformance suite's `max_sessions` test with a TTL long enough for a
/// slow emulator (its 80 ms can pass before three creates are done, each
/// counting every shard).
async fn max_sessions_counts_live_sessions_across_shards(ns: Namespace) {
    let store = ns
        .open_with(StoreOptions::default().with_max_sessions(Some(3)))
        .await;
    let brief = store
        .create_session(NewSession::new().with_ttl(Duration::from_secs(3)))
        .await
        .unwrap()
        .id;
    let a = store.create_session(NewSession::new()).await.unwrap().id;
    store.create_session(NewSession::new()).await.unwrap();
    let e = err(store.create_session(NewSession::new()).await);
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    // Once the brief one expired it does not count.
    while store.get_session(&brief).await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.create_session(NewSession::new()).await.unwrap();
    let e = err(store.create_session(NewSession::new()).await);
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(store.delete_session(&a).await.unwrap());
    store.create_session(NewSession::new()).await.unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 3);
}
