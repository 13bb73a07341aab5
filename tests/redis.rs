//! Redis's own features: URL options, an unreachable server, a server that
//! restarts under a running store, the key layout (hash tags, native TTL),
//! native expiry before cleanup and corrupt data. Runs when
//! `MSS_TEST_BACKENDS` names `redis`; otherwise every test is listed as
//! ignored.
//!
//! The restart test starts a second `redis-server` of its own on a spare
//! port (never the one under `MSS_TEST_REDIS_URL`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, Store, StoreOptions};
use mcp_session_store_conformance::{
    Namespace, TestFn, delete_redis_prefix, no_hang, redis_connection, redis_keys,
    run_backend_tests, spare_port, test_certificates, tests,
};
use serde_json::json;

const TESTS: &[(&str, TestFn)] = tests![
    unreachable_server_is_unavailable_within_connect_timeout,
    bad_options_are_invalid_input,
    tls_to_a_plain_server_is_unavailable_not_a_panic,
    keys_share_the_session_hash_tag_and_carry_native_ttl,
    native_expiry_before_cleanup_loses_nothing_live,
    corrupt_stored_data_is_a_backend_error,
    server_restart_recovers_without_reopening,
    rediss_with_a_trusted_ca_works_and_an_unknown_ca_is_refused,
    shards_are_fixed_per_prefix_and_list_count_and_clean_across_them,
    a_cluster_url_for_a_single_server_is_refused,
];

fn main() {
    run_backend_tests("redis", TESTS)
}

/// The namespace's key prefix.
fn prefix(ns: &Namespace) -> String {
    ns.param("key_prefix").expect("a key_prefix parameter")
}

async fn unreachable_server_is_unavailable_within_connect_timeout(_ns: Namespace) {
    let port = spare_port();
    let url = format!("redis://127.0.0.1:{port}?connect_timeout=300ms&timeout=300ms");
    let started = Instant::now();
    let err = no_hang("open on a closed port", Store::open(&url))
        .await
        .expect_err("nothing listens there");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains(&port.to_string()), "{err}");
    eprintln!("closed port: {err} (after {took:?}, connect_timeout 300ms)");

    // A host that drops packets instead of refusing: the timeout decides.
    // (192.0.2.1 is TEST-NET-1, never routed.)
    let url = "redis://192.0.2.1:6379?connect_timeout=300ms";
    let err = no_hang("open on an unroutable host", Store::open(url))
        .await
        .expect_err("nothing answers there");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

async fn bad_options_are_invalid_input(ns: Namespace) {
    let base = ns.base_url().to_string();
    let with = |q: &str| {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{q}")
    };
    for (what, url) in [
        ("unknown option", with("key_prefx=a:")),
        ("brace in prefix", with("key_prefix=a{b}:")),
        ("space in prefix", with("key_prefix=a%20b")),
        (
            "long prefix",
            with(&format!("key_prefix={}", "p".repeat(129))),
        ),
        ("zero connect timeout", with("connect_timeout=0ms")),
        ("bad timeout", with("timeout=soon")),
        ("huge timeout", with("timeout=2h")),
        ("huge grace", with("expire_grace=400d")),
        ("option twice", with("key_prefix=a:&key_prefix=b:")),
        ("zero shards", with("shards=0")),
        ("too many shards", with("shards=257")),
        ("cluster neither true nor false", with("cluster=maybe")),
        (
            "cluster nodes without a cluster",
            with("cluster=false&cluster_nodes=127.0.0.1:7000"),
        ),
        (
            "cluster node without a port",
            with("cluster_nodes=127.0.0.1"),
        ),
        ("bad port", "redis://127.0.0.1:notaport".to_string()),
        ("bad db", "redis://127.0.0.1:6379/notadb".to_string()),
    ] {
        let result = no_hang(what, Store::open(&url)).await;
        match result {
            Ok(_) => panic!("{what}: {url} opened"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}"),
        }
    }
    // Defaults and every option at once open fine.
    let store = Store::open(&ns.url("connect_timeout=2s&timeout=2s&expire_grace=0ms"))
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "redis");
}

async fn tls_to_a_plain_server_is_unavailable_not_a_panic(ns: Namespace) {
    // The namespace's server speaks plain RESP: a TLS handshake fails.
    let plain = ns.base_url();
    let tls = plain.replacen("redis://", "rediss://", 1);
    assert!(tls.starts_with("rediss://"), "{tls}");
    let err = no_hang(
        "TLS to a plain server",
        Store::open(&format!("{tls}?connect_timeout=1s")),
    )
    .await
    .expect_err("no TLS there");
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err}"
    );
    eprintln!("TLS to a plain server: {err}");
}

async fn keys_share_the_session_hash_tag_and_carry_native_ttl(ns: Namespace) {
    let store = Store::open(&ns.url("ttl=10m&expire_grace=1m"))
        .await
        .unwrap();
    let prefix = prefix(&ns);
    let mut conn = redis_connection(ns.base_url()).await;
    let id = "tag{odd}id";
    store
        .create_session(NewSession::new().with_id(id))
        .await
        .unwrap();
    store.set_state(id, "k", json!(1)).await.unwrap();
    store
        .append_event(id, NewEvent::new("s", json!({"n": 1})))
        .await
        .unwrap();
    let keys = redis_keys(&mut conn, &prefix).await;
    let session_keys: Vec<&String> = keys.iter().filter(|k| k.contains(id)).collect();
    assert_eq!(session_keys.len(), 4, "{keys:?}");
    // The hash tag is the text between the first `{` and the next `}`: the
    // session's shard, the same for every key of the session (the braces in
    // the id come after it).
    let tag_of = |key: &str| {
        let start = key.find('{').unwrap() + 1;
        let end = start + key[start..].find('}').unwrap();
        key[start..end].to_string()
    };
    let tag = tag_of(session_keys[0]);
    for (key, suffix) in session_keys.iter().zip(["ev", "ix", "s", "st"]) {
        assert_eq!(**key, format!("{prefix}{{{tag}}}:{id}:{suffix}"));
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key.as_str())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            pttl > 10 * 60 * 1000 && pttl <= 11 * 60 * 1000,
            "{key}: native TTL {pttl} ms is the session TTL plus the grace"
        );
    }
    // The prefix's config and the shard's two indexes (same tag), and
    // nothing else.
    let others: Vec<&String> = keys.iter().filter(|k| !k.contains(id)).collect();
    assert_eq!(
        others,
        [
            &format!("{prefix}config"),
            &format!("{prefix}{{{tag}}}:exp"),
            &format!("{prefix}{{{tag}}}:ids"),
        ]
    );
    let config: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}config"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(config["shards"], "1", "one shard on a single server");
    assert_eq!(config["layout"], "2");
    // Deleting the session removes its keys and its index entries; the
    // config stays.
    assert!(store.delete_session(id).await.unwrap());
    assert_eq!(
        redis_keys(&mut conn, &prefix).await,
        [format!("{prefix}config")]
    );
}

async fn native_expiry_before_cleanup_loses_nothing_live(ns: Namespace) {
    // No grace: Redis drops an expired session's keys by itself.
    let store = Store::open(&ns.url("expire_grace=0ms")).await.unwrap();
    let prefix = prefix(&ns);
    let mut conn = redis_connection(ns.base_url()).await;
    let brief = store
        .create_session(NewSession::new().with_ttl(Duration::from_millis(50)))
        .await
        .unwrap()
        .id;
    store.set_state(&brief, "k", json!(1)).await.unwrap();
    store
        .append_event(&brief, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    let kept = store.create_session(NewSession::new()).await.unwrap().id;
    store
        .append_event(&kept, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = redis_keys(&mut conn, &prefix).await;
    assert!(
        left.iter().all(|k| !k.contains(&brief)),
        "Redis expired the session's keys natively: {left:?}"
    );
    assert_eq!(store.get_session(&brief).await.unwrap(), None);
    assert_eq!(store.count_sessions().await.unwrap(), 1);
    let stats = store.cleanup_expired().await.unwrap();
    assert_eq!(stats.sessions, 1, "the index entry is removed");
    assert_eq!((stats.state_entries, stats.events), (0, 0));
    // The index entries are gone, the live session is whole.
    let exp_key = redis_keys(&mut conn, &prefix)
        .await
        .into_iter()
        .find(|k| k.ends_with("}:exp"))
        .expect("the expiry index");
    let exp: Vec<String> = redis::cmd("ZRANGE")
        .arg(exp_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exp, vec![kept.clone()]);
    let page = store
        .events_after(&kept, &EventId::start("s"), 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    // The id can be used again.
    store
        .create_session(NewSession::new().with_id(brief.as_str()))
        .await
        .unwrap();
}

async fn corrupt_stored_data_is_a_backend_error(ns: Namespace) {
    let store = ns.open().await;
    let prefix = prefix(&ns);
    let mut conn = redis_connection(ns.base_url()).await;
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&id, "k", json!(1)).await.unwrap();
    store
        .append_event(&id, NewEvent::new("s", json!(1)))
        .await
        .unwrap();
    let hash = redis_keys(&mut conn, &prefix)
        .await
        .into_iter()
        .find(|k| k.ends_with(&format!("}}:{id}:s")))
        .expect("the session hash");
    let key = |suffix: &str| format!("{}{suffix}", &hash[..hash.len() - 1]);
    let _: () = redis::cmd("HSET")
        .arg(key("s"))
        .arg("metadata")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key("st"))
        .arg("k")
        .arg("no-version")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key("ev"))
        .arg("1")
        .arg("truncated")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store.get_session(&id).await.unwrap_err().kind(),
        ErrorKind::Backend
    );
    assert_eq!(
        store.get_state(&id, "k").await.unwrap_err().kind(),
        ErrorKind::Backend
    );
    assert_eq!(
        store
            .events_after(&id, &EventId::start("s"), 10)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Backend
    );
    // A key of the wrong type: the server refuses, the store reports it.
    let _: () = redis::cmd("DEL")
        .arg(key("st"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(key("st"))
        .arg("a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store
            .set_state(&id, "k", json!(2))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Backend
    );
    // Other sessions are untouched.
    let other = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&other, "k", json!(3)).await.unwrap();
    assert_eq!(
        store
            .get_state(&other, "k")
            .await
            .unwrap()
            .unwrap()
            .value
            .to_value(),
        json!(3)
    );
}

/// A `redis-server` of the test's own, with an append-only file synced on
/// every write (so a killed server restarts with everything it
/// acknowledged). Killed when dropped.
struct SpareServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Serve TLS only, with a self-signed certificate for 127.0.0.1.
    tls: bool,
}

impl SpareServer {
    fn start() -> SpareServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = SpareServer {
            port: spare_port(),
            dir,
            child: None,
            tls: false,
        };
        server.launch();
        server
    }

    /// A TLS-only server; its certificate is `ca_file()`.
    fn start_tls() -> SpareServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // A CA, and a certificate for 127.0.0.1 that it signed.
        test_certificates(dir.path());
        let mut server = SpareServer {
            port: spare_port(),
            dir,
            child: None,
            tls: true,
        };
        server.launch();
        server
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1"]);
        if self.tls {
            cmd.args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.path().join("cert.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.path().join("key.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.arg("--port").arg(self.port.to_string());
        }
        let child = cmd
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        if self.tls {
            // Wait until the port accepts connections.
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            panic!("the TLS redis-server on port {} did not start", self.port);
        }
        // Wait until it answers.
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..200 {
            if let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the spare redis-server on port {} did not start", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SpareServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn server_restart_recovers_without_reopening(_ns: Namespace) {
    let mut server = SpareServer::start();
    let url = format!(
        "{}?key_prefix=restart:&connect_timeout=500ms&timeout=5s",
        server.url()
    );
    // Subscriptions that never poll in practice: after the restart only the
    // pub/sub listener, reconnected, can wake them.
    let options = StoreOptions::default().with_poll_interval(Duration::from_secs(3600));
    let store = Store::open_with(&url, options.clone()).await.unwrap();
    let watcher = Store::open_with(&url, options).await.unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let e = store
            .append_event(&id, NewEvent::new("s", json!({"before": i})))
            .await
            .unwrap();
        acknowledged.push(e.seq);
    }
    store.set_state(&id, "n", json!(20)).await.unwrap();
    let mut sub = watcher.subscribe(&id, EventId::start("s")).await.unwrap();
    for want in 1..=20 {
        let got = no_hang("replay", sub.next()).await.unwrap().unwrap();
        assert_eq!(got.seq, want);
    }

    server.kill();
    // During the outage every call fails with Unavailable or Timeout.
    for i in 0..5 {
        let result = no_hang(
            "append during the outage",
            store.append_event(&id, NewEvent::new("s", json!({"outage": i}))),
        )
        .await;
        let err = result.expect_err("the server is down");
        assert!(
            matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "append during the outage: {err}"
        );
        if i == 0 {
            eprintln!("append during the outage: {err}");
        }
        let err = no_hang("read during the outage", store.get_session(&id))
            .await
            .expect_err("the server is down");
        assert!(
            matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "read during the outage: {err}"
        );
    }

    server.launch();
    // The same store, not reopened: the first call may still meet the old
    // connection, then it reconnects.
    let mut failures = 0;
    let first = loop {
        match no_hang(
            "append after the restart",
            store.append_event(&id, NewEvent::new("s", json!({"after": 0}))),
        )
        .await
        {
            Ok(e) => break e,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                    "{e}"
                );
                failures += 1;
                assert!(failures < 50, "no recovery after 50 attempts: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    eprintln!("recovered after {failures} failed calls");
    assert_eq!(
        first.seq, 21,
        "the acknowledged events survived, seq goes on"
    );
    let mut after = vec![first.seq];
    for i in 1..20 {
        let e = store
            .append_event(&id, NewEvent::new("s", json!({"after": i})))
            .await
            .expect("appends work again");
        after.push(e.seq);
    }
    assert_eq!(after, (21..=40).collect::<Vec<u64>>());
    // Scripts were loaded again (the restarted server had none) and state
    // writes work too.
    let n = store
        .update_state(&id, "n", |v| {
            Ok(json!(v.and_then(|v| v.as_u64()).unwrap_or(0) + 1))
        })
        .await
        .unwrap();
    assert_eq!(n.value.to_value(), json!(21));
    let log: Vec<u64> = store
        .events_after(&id, &EventId::start("s"), 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(log, (1..=40).collect::<Vec<u64>>(), "no loss, no duplicate");

    // The subscription on the other handle outlived the outage: once its
    // listener is subscribed again, an append wakes it and it reads
    // everything it missed. Appends published before that are only lost
    // as wake-ups, never as events.
    let mut delivered = Vec::new();
    let mut extra = 0;
    while delivered.len() < 20 + extra {
        match tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            Ok(Some(Ok(e))) => delivered.push(e.seq),
            Ok(Some(Err(e))) => panic!("the subscription failed: {e}"),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => {
                assert!(extra < 60, "the subscription was never woken again");
                extra += 1;
                store
                    .append_event(&id, NewEvent::new("s", json!({"wake": extra})))
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(
        delivered,
        (21..=40 + extra as u64).collect::<Vec<u64>>(),
        "every event after the outage, in order, once"
    );
    drop(sub);
    store.close().await.unwrap();
    watcher.close().await.unwrap();
    let _ = delete_redis_prefix(&server.url(), "restart:").await;
}

async fn rediss_with_a_trusted_ca_works_and_an_unknown_ca_is_refused(_ns: Namespace) {
    let server = SpareServer::start_tls();
    let ca = server.ca_file();
    let base = format!("rediss://127.0.0.1:{}", server.port);
    let url = format!(
        "{base}?key_prefix=tls:&connect_timeout=2s&tls_ca_file={}",
        ca.display()
    );
    let store = no_hang("open over TLS", Store::open(&url))
        .await
        .expect("TLS with the server's certificate as CA");
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    let e = store
        .append_event(&id, NewEvent::new("s", json!({"over": "tls"})))
        .await
        .unwrap();
    let replay = store
        .events_after(&id, &EventId::start("s"), 10)
        .await
        .unwrap();
    assert_eq!(replay.items, vec![e]);
    store.delete_session(&id).await.unwrap();

    // The system roots do not know a self-signed certificate.
    let err = no_hang(
        "TLS with an unknown CA",
        Store::open(&format!("{base}?connect_timeout=2s")),
    )
    .await
    .expect_err("an untrusted certificate");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    eprintln!("untrusted certificate: {err}");
    // The option needs TLS and a readable file of certificates.
    let not_pem = server.dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    for url in [
        format!(
            "redis://127.0.0.1:{}?tls_ca_file={}",
            server.port,
            ca.display()
        ),
        format!("{base}?tls_ca_file=/nonexistent/ca.pem"),
        format!("{base}?tls_ca_file={}", not_pem.display()),
        format!("{base}?cluster=true&tls_ca_file={}", not_pem.display()),
    ] {
        let err = Store::open(&url).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
    }
}

async fn shards_are_fixed_per_prefix_and_list_count_and_clean_across_them(ns: Namespace) {
    let store = Store::open(&ns.url("shards=5")).await.unwrap();
    let prefix = prefix(&ns);
    let mut conn = redis_connection(ns.base_url()).await;
    // The count is stored: another count is refused, none means the stored.
    let err = Store::open(&ns.url("shards=6")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("5 shards"), "{err}");
    let other = Store::open(&ns.url("")).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..40 {
        let ttl = if i % 4 == 0 { 100 } else { 600_000 };
        let id = store
            .create_session(
                NewSession::new()
                    .with_id(format!("s{i:02}"))
                    .with_ttl(Duration::from_millis(ttl)),
            )
            .await
            .unwrap()
            .id;
        other
            .append_event(&id, NewEvent::new("s", json!(i)))
            .await
            .unwrap();
        ids.push(id);
    }
    // Five shards, each with its own tag on its keys and indexes.
    let keys = redis_keys(&mut conn, &prefix).await;
    let tags: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.split_once('{')?.1.split_once('}').map(|(t, _)| t))
        .collect();
    assert_eq!(tags.len(), 5, "{tags:?}");
    assert_eq!(keys.iter().filter(|k| k.ends_with("}:exp")).count(), 5);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let live: Vec<&String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 0)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(other.count_sessions().await.unwrap(), live.len() as u64);
    // Pages of 7 list every live session once, in id order.
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = other.list_sessions(after.as_deref(), 7).await.unwrap();
        assert!(page.items.len() <= 7);
        listed.extend(page.items.into_iter().map(|s| s.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.iter().collect::<Vec<_>>(), live);
    // Cleanup removes exactly the expired, from every shard.
    let stats = store.cleanup_expired().await.unwrap();
    assert_eq!(stats.sessions, 10);
    assert_eq!(stats.events, 10);
    assert_eq!(other.count_sessions().await.unwrap(), live.len() as u64);
    // max_sessions counts every shard.
    let limited = Store::open(&ns.url(&format!("max_sessions={}", live.len() + 1)))
        .await
        .unwrap();
    limited.create_session(NewSession::new()).await.unwrap();
    let err = limited.create_session(NewSession::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
}

async fn a_cluster_url_for_a_single_server_is_refused(ns: Namespace) {
    let err = no_hang(
        "cluster=true on a single server",
        Store::open(&ns.url("cluster=true&connect_timeout=2s")),
    )
    .await
    .unwrap_err();
    eprintln!("cluster=true on a single server: {err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Nothing was written.
    let mut conn = redis_connection(ns.base_url()).await;
    assert!(redis_keys(&mut conn, &prefix(&ns)).await.is_empty());
}
