//! Tests of the SQLite backend's own behaviour (the conformance suite
//! covers the contract).

use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{ErrorKind, NewSession, Store};

/// A write that SQLite itself rejects (here: a trigger) fails alone; the
/// writes batched with it commit, and nothing stored before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_does_not_fail_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&id, "kept", json!("before")).await.unwrap();

    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER boom BEFORE INSERT ON mss_state WHEN NEW.key = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    for round in 0..20 {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let key = if t == 3 {
                        "boom".to_string()
                    } else {
                        format!("k{t}")
                    };
                    (t, store.set_state(&id, &key, json!(round)).await)
                })
            })
            .collect();
        for task in tasks {
            let (t, result) = task.await.unwrap();
            if t == 3 {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Backend);
            } else {
                result.unwrap();
            }
        }
    }
    let all = store.state_all(&id).await.unwrap();
    let keys: Vec<_> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k4", "k5", "k6", "k7", "kept"]);
    assert!(
        all.iter()
            .filter(|e| e.key != "kept")
            .all(|e| e.value.to_value() == json!(19))
    );
    assert_eq!(all[7].value.to_value(), json!("before"));
}
