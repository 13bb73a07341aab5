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
//!
//! Modules: `namespace` (one test's namespace and its clean-up), `run`
//! (running tests, and the helpers the backend test files share), one module
//! per server backend (its clean-up and raw access), and `tls` (test
//! certificates).

mod dynamodb;
mod namespace;
mod postgres;
mod redis;
mod run;
mod tls;

#[cfg(feature = "dynamodb")]
pub use crate::dynamodb::dynamodb_client;
#[cfg(feature = "redis")]
pub use crate::redis::{delete_redis_prefix, redis_connection, redis_keys};
pub use namespace::Namespace;
pub use run::{
    CALL_HANG, TestFn, append_until_seen, no_hang, run_backend_tests, run_test, spare_port,
};
pub use tls::test_certificates;

use mcp_session_store::Result;

use namespace::CleanupFn;

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
                (
                    url.clone(),
                    params,
                    postgres::postgres_cleanup(url.clone(), schema),
                )
            }
            Kind::Dynamodb(endpoint) => {
                let table = random_name();
                let params = format!("endpoint={endpoint}&region=us-east-1&create_table=true");
                let url = format!("dynamodb://{table}");
                (
                    url,
                    params,
                    dynamodb::dynamodb_cleanup(endpoint.clone(), table),
                )
            }
            Kind::Redis(url) => {
                let prefix = format!("{}:", random_name());
                let params = format!("key_prefix={prefix}");
                (
                    url.clone(),
                    params,
                    crate::redis::redis_cleanup(url.clone(), prefix),
                )
            }
        };
        Namespace::new(self.clone(), base, params, cleanup)
    }
}
