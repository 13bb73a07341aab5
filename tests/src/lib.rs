//! Support for the conformance suite: which backends to test, and a fresh,
//! self-cleaning namespace per test.
//!
//! `MSS_TEST_BACKENDS` names the backends (comma-separated; default
//! `memory,sqlite`). `memory` and `sqlite` need nothing else: each test gets
//! a new in-process store or a new database file in its own temporary
//! directory, removed when the test ends. Backends that talk to a server
//! join by reading their URL from `MSS_TEST_<NAME>_URL` in [`Backend::from_env`]
//! (DynamoDB: `MSS_TEST_DYNAMODB_ENDPOINT`, default `http://127.0.0.1:8000`;
//! each namespace is a table of its own, deleted when the namespace drops).
//! `redis-cluster` is the Redis backend on a Redis Cluster
//! (`MSS_TEST_REDIS_CLUSTER_URL`, default the node `scripts/redis-cluster.sh`
//! starts first, with `cluster=true`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mcp_session_store::{Result, Store, StoreOptions};

/// The backend names `MSS_TEST_BACKENDS` accepts.
const KNOWN: &str = "memory, sqlite, postgres, dynamodb, redis, redis-cluster";

/// A backend under test.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its name, as in `MSS_TEST_BACKENDS`.
    pub name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Memory,
    Sqlite,
    /// `MSS_TEST_POSTGRES_URL`; each namespace is a schema of its own.
    Postgres(String),
    /// `MSS_TEST_DYNAMODB_ENDPOINT`; each namespace is a table of its own.
    Dynamodb(String),
    /// `MSS_TEST_REDIS_URL` (or `MSS_TEST_REDIS_CLUSTER_URL`); each namespace
    /// is a key prefix of its own.
    Redis(String),
}

/// An environment variable, or its default.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A random lower-case name for one test's namespace.
fn random_name() -> String {
    format!("mss_t_{:016x}", fastrand::u64(..))
}

/// Runs a clean-up when the last clone of a namespace is dropped.
struct Cleanup(Option<Box<dyn FnOnce() + Send + Sync>>);

/// A namespace's clean-up, run once when it drops.
type CleanupFn = Box<dyn FnOnce() + Send + Sync>;

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl std::fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cleanup")
    }
}

/// Run `f` to completion on a small runtime of its own, from a fresh thread
/// (a namespace may be dropped inside another runtime).
fn block_on_fresh<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime")
            .block_on(f)
    })
    .join();
}

impl Backend {
    /// The backends named by `MSS_TEST_BACKENDS`. An unknown name, or a
    /// backend whose URL variable is missing, is an error: a backend that was
    /// asked for is never skipped silently.
    pub fn from_env() -> Result<Vec<Backend>, String> {
        let names =
            std::env::var("MSS_TEST_BACKENDS").unwrap_or_else(|_| "memory,sqlite".to_string());
        let mut out = Vec::new();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = match name {
                "memory" => Kind::Memory,
                "sqlite" => Kind::Sqlite,
                "postgres" => Kind::Postgres(env_or(
                    "MSS_TEST_POSTGRES_URL",
                    "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
                )),
                "redis" => Kind::Redis(env_or("MSS_TEST_REDIS_URL", "redis://127.0.0.1:6379")),
                "redis-cluster" => Kind::Redis(env_or(
                    "MSS_TEST_REDIS_CLUSTER_URL",
                    "redis://127.0.0.1:7101?cluster=true",
                )),
                "dynamodb" => Kind::Dynamodb(env_or(
                    "MSS_TEST_DYNAMODB_ENDPOINT",
                    "http://127.0.0.1:8000",
                )),
                other => {
                    return Err(format!(
                        "MSS_TEST_BACKENDS names unknown backend {other:?} (known: {KNOWN})"
                    ));
                }
            };
            out.push(Backend {
                name: name.to_string(),
                kind,
            });
        }
        if out.is_empty() {
            return Err("MSS_TEST_BACKENDS names no backend".to_string());
        }
        Ok(out)
    }

    /// The backend `name` if `MSS_TEST_BACKENDS` selects it, for tests of
    /// one backend's own features.
    pub fn selected(name: &str) -> Result<Option<Backend>, String> {
        Ok(Backend::from_env()?.into_iter().find(|b| b.name == name))
    }

    /// Whether two stores opened on one URL share data (not `memory://`).
    pub fn is_shared(&self) -> bool {
        !matches!(self.kind, Kind::Memory)
    }

    /// A fresh namespace for one test.
    pub fn namespace(&self, test: &str) -> Namespace {
        let (base, params, cleanup): (String, String, Option<CleanupFn>) = match &self.kind {
            Kind::Memory => ("memory://".to_string(), String::new(), None),
            Kind::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("mss-{test}-"))
                    .tempdir()
                    .expect("create a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                (url, String::new(), Some(Box::new(move || drop(dir))))
            }
            Kind::Postgres(url) => {
                let schema = random_name();
                let params = format!("schema={schema}");
                let url = url.clone();
                let drop_schema = {
                    let url = url.clone();
                    move || block_on_fresh(drop_postgres_schema(url, schema))
                };
                (url, params, Some(Box::new(drop_schema)))
            }
            Kind::Dynamodb(endpoint) => {
                let table = random_name();
                let params = format!("endpoint={endpoint}&region=us-east-1&create_table=true");
                let url = format!("dynamodb://{table}");
                (url, params, dynamodb_cleanup(endpoint.clone(), table))
            }
            Kind::Redis(url) => {
                let prefix = format!("{}:", random_name());
                let params = format!("key_prefix={prefix}");
                (url.clone(), params, redis_cleanup(url.clone(), prefix))
            }
        };
        Namespace {
            backend: self.clone(),
            base,
            params,
            _cleanup: Arc::new(Cleanup(cleanup)),
        }
    }
}

/// Deletes every key of a namespace's prefix (SCAN + DEL) when the
/// namespace drops.
#[cfg(feature = "redis")]
fn redis_cleanup(url: String, prefix: String) -> Option<Box<dyn FnOnce() + Send + Sync>> {
    Some(Box::new(move || {
        block_on_fresh(async move {
            let _ = delete_redis_prefix(&url, &prefix).await;
        })
    }))
}

/// Without the feature no key is ever written.
#[cfg(not(feature = "redis"))]
fn redis_cleanup(_url: String, _prefix: String) -> Option<Box<dyn FnOnce() + Send + Sync>> {
    None
}

/// Delete every key under `prefix` on the Redis server at `url` (on every
/// primary, if it is a cluster node); returns how many were deleted.
#[cfg(feature = "redis")]
pub async fn delete_redis_prefix(url: &str, prefix: &str) -> redis::RedisResult<u64> {
    let url = url.split('?').next().unwrap_or(url);
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
        return delete_on_node(&mut conn, prefix).await;
    }
    // `CLUSTER NODES`: one line per node, `id host:port@bus flags …`.
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    let mut deleted = 0;
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        let addr = addr.split('@').next().unwrap_or(addr);
        let node = redis::Client::open(format!("redis://{addr}"))?;
        let mut node = node.get_multiplexed_async_connection().await?;
        deleted += delete_on_node(&mut node, prefix).await?;
    }
    Ok(deleted)
}

/// SCAN one server for `prefix*` and delete what it finds, key by key (the
/// keys of a cluster node are in many slots).
#[cfg(feature = "redis")]
async fn delete_on_node(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<u64> {
    let pattern = format!("{}*", prefix.replace('*', "\\*").replace('?', "\\?"));
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("UNLINK").arg(key);
            }
            let counts: Vec<u64> = pipe.query_async(conn).await?;
            deleted += counts.iter().sum::<u64>();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

async fn drop_postgres_schema(url: String, schema: String) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .await;
        let _ = conn.close().await;
    }
}

/// Deletes a namespace's table (created by the store with
/// `create_table=true`) when the namespace drops.
#[cfg(feature = "dynamodb")]
fn dynamodb_cleanup(endpoint: String, table: String) -> Option<Box<dyn FnOnce() + Send + Sync>> {
    Some(Box::new(move || {
        block_on_fresh(async move {
            let _ = dynamodb_client(&endpoint)
                .await
                .delete_table()
                .table_name(table)
                .send()
                .await;
        })
    }))
}

/// Without the feature no table is ever created.
#[cfg(not(feature = "dynamodb"))]
fn dynamodb_cleanup(_endpoint: String, _table: String) -> Option<Box<dyn FnOnce() + Send + Sync>> {
    None
}

/// A DynamoDB client for a local endpoint (dummy credentials), for tests
/// that inspect or change a table behind the store's back.
#[cfg(feature = "dynamodb")]
pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "mss-local",
            "mss-local",
            None,
            None,
            "mss-tests",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// One test's namespace: every store it opens sees the same data (for shared
/// backends), and nothing outside it. Dropping it removes it.
#[derive(Debug, Clone)]
pub struct Namespace {
    backend: Backend,
    /// The URL without the namespace's own parameters.
    base: String,
    /// Query parameters that select the namespace (`schema=…`), or `""`.
    params: String,
    _cleanup: Arc<Cleanup>,
}

impl Namespace {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The URL of the server or file, without the namespace's parameters.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The store URL of this namespace, with extra query parameters
    /// (`"ttl=90s&max_sessions=3"`, or `""`).
    pub fn url(&self, params: &str) -> String {
        let mut url = self.base.clone();
        for p in [self.params.as_str(), params] {
            if !p.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(p);
            }
        }
        url
    }

    /// The value of one of the namespace's own parameters (`schema`,
    /// `key_prefix`), if it has it.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.split('&').find_map(|p| {
            p.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    }

    /// Open a store in this namespace with default options.
    pub async fn open(&self) -> Store {
        self.open_with(StoreOptions::default()).await
    }

    /// Open a store in this namespace.
    pub async fn open_with(&self, options: StoreOptions) -> Store {
        Store::open_with(&self.url(""), options)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url("")))
    }
}

/// One test: an async function of its namespace.
pub type TestFn = fn(Namespace) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A list of `(name, TestFn)` from async functions taking a [`Namespace`].
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|ns| Box::pin($name(ns))) as $crate::TestFn)),*]
    };
}

/// Run one test in `ns` on a runtime of its own; a panic fails the test
/// with its message.
pub fn run_test(ns: Namespace, f: TestFn) -> Result<(), libtest_mimic::Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f(ns)))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "test panicked".to_string())
            .into()
    })
}

/// The `main` of a backend's own test binary: runs `tests` (named
/// `BACKEND::test`) when `MSS_TEST_BACKENDS` selects `backend`, and lists
/// them as ignored otherwise.
pub fn run_backend_tests(backend: &str, tests: &'static [(&'static str, TestFn)]) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let selected = match Backend::selected(backend) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let trials = tests
        .iter()
        .map(|&(name, f)| {
            let selected = selected.clone();
            let ignored = selected.is_none();
            libtest_mimic::Trial::test(format!("{backend}::{name}"), move || match selected {
                Some(b) => run_test(b.namespace(name), f),
                None => Ok(()),
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// How long a call in a backend's own tests may take before the test fails
/// as hung.
pub const CALL_HANG: std::time::Duration = std::time::Duration::from_secs(60);

/// Await `f`, failing the test if it takes longer than [`CALL_HANG`].
pub async fn no_hang<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {CALL_HANG:?}"))
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn spare_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a spare port");
    listener.local_addr().expect("a bound address").port()
}

/// Append to session `id` on stream `"live"` through `writer` until `sub`
/// yields an event (failing after 20 s): a listening connection may still be
/// starting when the first append is published, so one append is not
/// enough. Returns the event seen first and the seqs appended.
pub async fn append_until_seen(
    writer: &Store,
    sub: &mut mcp_session_store::Subscription,
    id: &str,
) -> (mcp_session_store::Event, Vec<u64>) {
    let mut appended = Vec::new();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let event = mcp_session_store::NewEvent::new("live", serde_json::json!(appended.len()));
            let e = writer.append_event(id, event).await.expect("append");
            appended.push(e.seq);
            let wait = std::time::Duration::from_millis(500);
            if let Ok(Some(event)) = tokio::time::timeout(wait, sub.next()).await {
                return event.expect("the subscription's first event");
            }
        }
    })
    .await
    .expect("an append from another store woke the subscriber");
    (seen, appended)
}
