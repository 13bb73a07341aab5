//! The Redis backend on a Redis Cluster: detection from any node, shards
//! spread over the nodes' slots, pub/sub across nodes, more seed nodes, and
//! a slot moving to another node under load. Runs when `MSS_TEST_BACKENDS`
//! names `redis-cluster` (the cluster `scripts/redis-cluster.sh` starts, or
//! `MSS_TEST_REDIS_CLUSTER_URL`); otherwise every test is listed as ignored.
//!
//! The slot-moving test moves one slot and moves it back; the cluster is
//! left as it was found. The failover test starts a cluster of its own (three
//! primaries with a replica each, on spare ports) and kills a primary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_session_store::{ErrorKind, EventId, NewEvent, NewSession, Store, StoreOptions};
use mcp_session_store_conformance::{
    Namespace, TestFn, append_until_seen, no_hang, redis_connection, redis_keys, run_backend_tests,
    spare_port, tests,
};
use serde_json::json;

const TESTS: &[(&str, TestFn)] = tests![
    any_node_is_detected_as_a_cluster_and_shards_spread_over_every_node,
    a_subscriber_is_woken_by_pubsub_from_a_store_on_another_node,
    more_seed_nodes_are_tried_when_the_first_is_down,
    a_cluster_node_opened_as_a_single_server_says_so,
    a_slot_moving_to_another_node_under_load_loses_nothing,
    a_primary_failing_over_to_its_replica_needs_no_reopening,
];

fn main() {
    run_backend_tests("redis-cluster", TESTS)
}

/// The namespace's key prefix.
fn prefix(ns: &Namespace) -> String {
    ns.param("key_prefix").expect("a key_prefix parameter")
}

/// `host:port` of the node the namespace's URL names.
fn first_node(ns: &Namespace) -> String {
    let base = ns.base_url();
    let rest = base.split("://").nth(1).expect("a URL");
    let rest = rest.rsplit('@').next().unwrap();
    rest.split(['/', '?']).next().unwrap().to_string()
}

/// A plain connection to one node.
async fn node(addr: &str) -> redis::aio::MultiplexedConnection {
    redis_connection(&format!("redis://{addr}")).await
}

/// A cluster primary: its id and address.
#[derive(Debug, Clone)]
struct Primary {
    id: String,
    addr: String,
}

/// The cluster's primaries, from `CLUSTER NODES` of the namespace's node.
async fn primaries(ns: &Namespace) -> Vec<Primary> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut node(&first_node(ns)).await)
        .await
        .unwrap();
    let mut out: Vec<Primary> = nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = f.get(2)?;
            (flags.split(',').any(|x| x == "master") && !flags.contains("fail")).then(|| Primary {
                id: f[0].to_string(),
                addr: f[1].split('@').next().unwrap().to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.addr.cmp(&b.addr));
    assert!(
        out.len() >= 2,
        "a cluster of two primaries or more: {nodes}"
    );
    out
}

/// The keys under `prefix` on one node.
async fn keys_on(addr: &str, prefix: &str) -> Vec<String> {
    redis_keys(&mut node(addr).await, prefix).await
}

/// The hash tag of a key.
fn tag_of(key: &str) -> &str {
    let start = key.find('{').expect("a hash tag") + 1;
    let end = start + key[start..].find('}').expect("a hash tag");
    &key[start..end]
}

async fn keyslot(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u32 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// The seqs of session `id`'s events on stream `"s"`, as stored.
async fn stored_seqs(store: &Store, id: &str) -> Vec<u64> {
    store
        .events_after(id, &EventId::start("s"), 10_000)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// The primary serving `slot`.
async fn owner(ns: &Namespace, slot: u32) -> Primary {
    let mut conn = node(&first_node(ns)).await;
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .unwrap();
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => *n as u32,
            other => panic!("CLUSTER SLOTS: {other:?}"),
        };
        let (lo, hi) = (int(&parts[0]), int(&parts[1]));
        if (lo..=hi).contains(&slot) {
            let redis::Value::Array(primary) = &parts[2] else {
                panic!("CLUSTER SLOTS: {parts:?}");
            };
            let redis::Value::BulkString(id) = &primary[2] else {
                panic!("CLUSTER SLOTS: {primary:?}");
            };
            let id = String::from_utf8(id.clone()).unwrap();
            return primaries(ns)
                .await
                .into_iter()
                .find(|p| p.id == id)
                .expect("the owner is a primary");
        }
    }
    panic!("no node serves slot {slot}");
}

async fn any_node_is_detected_as_a_cluster_and_shards_spread_over_every_node(ns: Namespace) {
    let prefix = prefix(&ns);
    let nodes = primaries(&ns).await;
    // The last primary, with no cluster option: the store asks the server.
    let url = format!(
        "redis://{}?key_prefix={prefix}",
        nodes[nodes.len() - 1].addr
    );
    let store = no_hang("open on a cluster node", Store::open(&url))
        .await
        .unwrap();
    for i in 0..64 {
        let id = store
            .create_session(NewSession::new().with_id(format!("spread-{i:02}")))
            .await
            .unwrap()
            .id;
        store.set_state(&id, "k", json!(i)).await.unwrap();
        store
            .append_event(&id, NewEvent::new("s", json!(i)))
            .await
            .unwrap();
    }
    // Every primary holds some of the sessions, and every key of a session
    // is on the same node under the same tag.
    let mut tags = BTreeSet::new();
    let mut where_is: BTreeMap<String, String> = BTreeMap::new();
    for p in &nodes {
        let keys = keys_on(&p.addr, &prefix).await;
        let sessions = keys.iter().filter(|k| k.ends_with(":s")).count();
        assert!(sessions > 0, "no session on {}: {keys:?}", p.addr);
        for key in keys.iter().filter(|k| !k.ends_with("config")) {
            tags.insert(tag_of(key).to_string());
            if let Some(id) = key.strip_suffix(":s").and_then(|k| k.split("}:").nth(1)) {
                where_is.insert(id.to_string(), p.addr.clone());
            }
        }
        for key in keys.iter().filter(|k| k.contains(":spread-")) {
            let id = key.split("}:").nth(1).unwrap().rsplit_once(':').unwrap().0;
            assert_eq!(where_is.get(id), Some(&p.addr), "{key}");
        }
    }
    assert_eq!(where_is.len(), 64);
    // A new prefix on a cluster has 16 shards, whose slots (as the server
    // computes them) are evenly spaced.
    assert_eq!(tags.len(), 16, "{tags:?}");
    let mut conn = node(&nodes[0].addr).await;
    let mut slots = Vec::new();
    for tag in &tags {
        slots.push(keyslot(&mut conn, &format!("{{{tag}}}")).await);
    }
    slots.sort_unstable();
    for (i, slot) in slots.iter().enumerate() {
        assert_eq!(*slot / 1024, i as u32, "slots {slots:?}");
    }
    // Listing, counting and cleanup see every node.
    assert_eq!(store.count_sessions().await.unwrap(), 64);
    let page = store.list_sessions(None, 100).await.unwrap();
    let listed: Vec<String> = page.items.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, where_is.keys().cloned().collect::<Vec<_>>());
    assert_eq!(store.cleanup_expired().await.unwrap().sessions, 0);
}

async fn a_subscriber_is_woken_by_pubsub_from_a_store_on_another_node(ns: Namespace) {
    let prefix = prefix(&ns);
    let nodes = primaries(&ns).await;
    let url = |addr: &str| format!("redis://{addr}?cluster=true&key_prefix={prefix}");
    // The subscriber polls once an hour: only a published append can wake it.
    let listener = Store::open_with(
        &url(&nodes[0].addr),
        StoreOptions::default().with_poll_interval(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let writer = Store::open(&url(&nodes[nodes.len() - 1].addr))
        .await
        .unwrap();
    let id = writer.create_session(NewSession::new()).await.unwrap().id;
    let mut sub = listener
        .subscribe(&id, EventId::start("live"))
        .await
        .unwrap();
    let (got, appended) = append_until_seen(&writer, &mut sub, &id).await;
    assert_eq!(got.seq, appended[0]);
    // Once it is listening, each append arrives at once.
    for n in 0..5 {
        let e = writer
            .append_event(&id, NewEvent::new("live", json!(n)))
            .await
            .unwrap();
        let mut seen = None;
        while seen.is_none_or(|s| s < e.seq) {
            let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("a published append arrives without polling")
                .expect("the subscription goes on")
                .unwrap();
            seen = Some(event.seq);
        }
    }
}

async fn more_seed_nodes_are_tried_when_the_first_is_down(ns: Namespace) {
    let prefix = prefix(&ns);
    let nodes = primaries(&ns).await;
    let closed = format!("127.0.0.1:{}", spare_port());
    let url = format!(
        "redis://{closed}?cluster=true&cluster_nodes={}&connect_timeout=1s&key_prefix={prefix}",
        nodes[1].addr
    );
    let store = no_hang("open with a live second seed", Store::open(&url))
        .await
        .unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    assert!(store.get_session(&id).await.unwrap().is_some());

    // No seed answers: Unavailable, within the timeouts.
    let url = format!(
        "redis://{closed}?cluster=true&cluster_nodes=127.0.0.1:{}&connect_timeout=500ms&timeout=500ms",
        spare_port()
    );
    let started = Instant::now();
    let err = no_hang("open with no live seed", Store::open(&url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
}

async fn a_cluster_node_opened_as_a_single_server_says_so(ns: Namespace) {
    let prefix = prefix(&ns);
    // A node serves only its own slots: on at least two of the primaries
    // the prefix's config or the one shard is elsewhere.
    let mut refused = 0;
    for p in primaries(&ns).await {
        let url = format!("redis://{}?cluster=false&key_prefix={prefix}", p.addr);
        let outcome = match no_hang("open with cluster=false", Store::open(&url)).await {
            Ok(store) => store.create_session(NewSession::new()).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
            assert!(e.message().contains("cluster=auto"), "{e}");
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} nodes refused keys of other nodes");
}

/// Move `slot` from `from` to `to` as `redis-cli --cluster reshard` does:
/// mark it importing and migrating, `MIGRATE` its keys, then give it to
/// `to` on every primary.
async fn move_slot(nodes: &[Primary], slot: u32, from: &Primary, to: &Primary) {
    let mut src = node(&from.addr).await;
    let mut dst = node(&to.addr).await;
    let setslot = |state: &str, id: &str| {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg(state).arg(id);
        c
    };
    let _: () = setslot("IMPORTING", &from.id)
        .query_async(&mut dst)
        .await
        .unwrap();
    let _: () = setslot("MIGRATING", &to.id)
        .query_async(&mut src)
        .await
        .unwrap();
    let (host, port) = to.addr.rsplit_once(':').unwrap();
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut src)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        let _: redis::Value = redis::cmd("MIGRATE")
            .arg(host)
            .arg(port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query_async(&mut src)
            .await
            .unwrap();
    }
    for p in [to, from].into_iter().chain(nodes.iter()) {
        let _: () = setslot("NODE", &to.id)
            .query_async(&mut node(&p.addr).await)
            .await
            .unwrap();
    }
}

async fn a_slot_moving_to_another_node_under_load_loses_nothing(ns: Namespace) {
    // Nothing trimmed: every acknowledged append must be there.
    let url = ns.url("max_events_per_session=10000");
    let store = Store::open(&url).await.unwrap();
    let other = Store::open(&url).await.unwrap();
    let prefix = prefix(&ns);
    let nodes = primaries(&ns).await;
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    store.set_state(&id, "n", json!(0)).await.unwrap();
    // The session's slot, and a node to move it to.
    let mut hash = None;
    for p in &nodes {
        hash = hash.or(keys_on(&p.addr, &prefix)
            .await
            .into_iter()
            .find(|k| k.ends_with(&format!(":{id}:s"))));
    }
    let hash = hash.expect("the session hash");
    let slot = keyslot(&mut node(&nodes[0].addr).await, &hash).await;
    let from = owner(&ns, slot).await;
    let to = nodes.iter().find(|p| p.id != from.id).unwrap().clone();

    // Two writers append and increment while the slot moves there and back.
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let writer = |store: Store, id: String| {
        let mut done = done.clone();
        tokio::spawn(async move {
            let (mut seqs, mut errors) = (Vec::new(), Vec::new());
            while (!*done.borrow_and_update() || seqs.len() < 20) && seqs.len() < 5000 {
                match store
                    .append_event(&id, NewEvent::new("s", json!(seqs.len())))
                    .await
                {
                    Ok(e) => seqs.push(e.seq),
                    Err(e) => errors.push(format!("append: {e}")),
                }
                let incremented = store
                    .update_state(&id, "n", |v| {
                        Ok(json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1))
                    })
                    .await;
                if let Err(e) = incremented {
                    errors.push(format!("increment: {e}"));
                }
            }
            (seqs, errors)
        })
    };
    let a = writer(store.clone(), id.clone());
    let b = writer(other.clone(), id.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    no_hang("moving the slot", move_slot(&nodes, slot, &from, &to)).await;
    assert_eq!(owner(&ns, slot).await.id, to.id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    no_hang("moving the slot back", move_slot(&nodes, slot, &to, &from)).await;
    assert_eq!(owner(&ns, slot).await.id, from.id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    done_tx.send_replace(true);
    let (seqs_a, errors_a) = no_hang("writer a", a).await.unwrap();
    let (seqs_b, errors_b) = no_hang("writer b", b).await.unwrap();
    let errors: Vec<String> = errors_a.into_iter().chain(errors_b).collect();
    assert!(
        errors.is_empty(),
        "calls failed while the slot moved: {errors:?}"
    );

    // Every acknowledged append is stored once, in order, with no gap; the
    // counter is exact.
    let mut all: Vec<u64> = seqs_a.iter().chain(&seqs_b).copied().collect();
    all.sort_unstable();
    assert_eq!(stored_seqs(&store, &id).await, all);
    assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>());
    let n = store.get_state(&id, "n").await.unwrap().unwrap();
    assert_eq!(n.value.to_value(), json!(all.len()));
    eprintln!(
        "slot {slot} moved {} -> {} -> {} under {} appends and as many increments",
        from.addr,
        to.addr,
        from.addr,
        all.len()
    );
}

/// A port for a cluster node: free, and so is its bus port (+10000).
fn spare_cluster_port() -> u16 {
    loop {
        let port = spare_port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A Redis Cluster of the test's own: three primaries with a replica each,
/// on spare ports, nothing saved. Killed when dropped.
struct SpareCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<(u16, Child)>,
}

impl SpareCluster {
    fn start() -> SpareCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = spare_cluster_port();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(format!("nodes-{port}.conf"))
                .args(["--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (is it installed?)");
            nodes.push((port, child));
        }
        let cluster = SpareCluster { _dir: dir, nodes };
        for &(port, _) in &cluster.nodes {
            wait_for(&format!("node {port} to answer"), || {
                redis_cli(port, &["PING"]).is_some_and(|out| out.trim() == "PONG")
            });
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create");
        for &(port, _) in &cluster.nodes {
            wait_for(&format!("node {port} to see a healthy cluster"), || {
                redis_cli(port, &["CLUSTER", "INFO"])
                    .is_some_and(|out| out.contains("cluster_state:ok"))
            });
        }
        // Every replica has synced with its primary.
        wait_for("three replicas in sync", || {
            cluster
                .nodes
                .iter()
                .filter(|(port, _)| {
                    redis_cli(*port, &["INFO", "replication"]).is_some_and(|out| {
                        out.contains("role:slave") && out.contains("master_link_status:up")
                    })
                })
                .count()
                == 3
        });
        cluster
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[0].0)
    }

    fn kill(&mut self, port: u16) {
        let (_, child) = self
            .nodes
            .iter_mut()
            .find(|(p, _)| *p == port)
            .expect("a node of this cluster");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for SpareCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `redis-cli -p PORT ARGS…`'s output, or `None` if it failed.
fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Poll `ready` for up to 30 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn a_primary_failing_over_to_its_replica_needs_no_reopening(_ns: Namespace) {
    let mut cluster = tokio::task::spawn_blocking(SpareCluster::start)
        .await
        .unwrap();
    let url = format!(
        "{}?cluster=true&key_prefix=failover:&connect_timeout=1s&timeout=1s",
        cluster.url()
    );
    let store = no_hang("open", Store::open(&url)).await.unwrap();
    let id = store.create_session(NewSession::new()).await.unwrap().id;
    let mut before = Vec::new();
    for n in 0..10 {
        let e = store
            .append_event(&id, NewEvent::new("s", json!(n)))
            .await
            .unwrap();
        before.push(e.seq);
    }
    // The primary serving the session, once its replica has everything.
    let ports: Vec<u16> = cluster.nodes.iter().map(|(p, _)| *p).collect();
    let mut primary = None;
    for &port in &ports {
        let mut conn = node(&format!("127.0.0.1:{port}")).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("failover:*:{id}:ev"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let role: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() && role.contains("role:master") {
            let acked: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(5000)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(acked, 1, "the replica acknowledged the writes");
            primary = Some(port);
        }
    }
    let primary = primary.expect("the session's primary");
    cluster.kill(primary);

    // Calls fail while the replica takes over (Unavailable or Timeout), then
    // work again on the same store.
    let killed = Instant::now();
    let mut failed = Vec::new();
    let first = loop {
        match store
            .append_event(&id, NewEvent::new("s", json!("after")))
            .await
        {
            Ok(e) => break e,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                    "a failover is Unavailable or Timeout, not {e}"
                );
                failed.push(e.kind());
                assert!(
                    killed.elapsed() < Duration::from_secs(40),
                    "no append worked 40 s after the primary died: {failed:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    eprintln!(
        "failover: the first append worked {:?} after the kill, {} calls failed before",
        killed.elapsed(),
        failed.len()
    );
    // What the replica acknowledged survived, and seq goes on after it.
    assert_eq!(first.seq, before.len() as u64 + 1);
    assert_eq!(
        stored_seqs(&store, &id).await,
        (1..=first.seq).collect::<Vec<_>>()
    );
    // Other operations work too, and on a new store.
    store.set_state(&id, "k", json!(1)).await.unwrap();
    // (the URL's node may be the dead one: the other nodes as seeds)
    let seeds: Vec<String> = ports
        .iter()
        .filter(|&&p| p != primary)
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let reopened = no_hang(
        "open after the failover",
        Store::open(&format!("{url}&cluster_nodes={}", seeds.join(","))),
    )
    .await
    .unwrap();
    assert_eq!(reopened.count_sessions().await.unwrap(), 1);
}
