//! Support for the conformance suite: which backends to test, and a fresh,
//! self-cleaning namespace per test.
//!
//! `MSS_TEST_BACKENDS` names the backends (comma-separated; default
//! `memory,sqlite`). `memory` and `sqlite` need nothing else: each test gets
//! a new in-process store or a new database file in its own temporary
//! directory, removed when the test ends. Backends that talk to a server
//! join by reading their URL from `MSS_TEST_<NAME>_URL` in [`Backend::from_env`].

use std::sync::Arc;

use mcp_session_store::{Result, Store, StoreOptions};

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
                other => {
                    return Err(format!(
                        "MSS_TEST_BACKENDS names unknown backend {other:?} (known: memory, sqlite)"
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

    /// Whether two stores opened on one URL share data (not `memory://`).
    pub fn is_shared(&self) -> bool {
        !matches!(self.kind, Kind::Memory)
    }

    /// A fresh namespace for one test.
    pub fn namespace(&self, test: &str) -> Namespace {
        let dir = match self.kind {
            Kind::Memory => None,
            Kind::Sqlite => Some(Arc::new(
                tempfile::Builder::new()
                    .prefix(&format!("mss-{test}-"))
                    .tempdir()
                    .expect("create a temporary directory"),
            )),
        };
        Namespace {
            backend: self.clone(),
            dir,
        }
    }
}

/// One test's namespace: every store it opens sees the same data (for shared
/// backends), and nothing outside it. Dropping it removes it.
#[derive(Debug, Clone)]
pub struct Namespace {
    backend: Backend,
    dir: Option<Arc<tempfile::TempDir>>,
}

impl Namespace {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The store URL of this namespace, with extra query parameters
    /// (`"ttl=90s&max_sessions=3"`, or `""`).
    pub fn url(&self, params: &str) -> String {
        let base = match (&self.backend.kind, &self.dir) {
            (Kind::Memory, _) => "memory://".to_string(),
            (Kind::Sqlite, Some(dir)) => {
                format!("sqlite://{}", dir.path().join("store.db").display())
            }
            (Kind::Sqlite, None) => unreachable!("a sqlite namespace has a directory"),
        };
        if params.is_empty() {
            base
        } else {
            format!("{base}?{params}")
        }
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
