//! One test's namespace: the URL that selects it, and the clean-up that
//! removes it when the last clone drops.

use std::sync::Arc;

use mcp_session_store::{Store, StoreOptions};

use crate::Backend;

/// A namespace's clean-up, run once when it drops.
pub(crate) type CleanupFn = Box<dyn FnOnce() + Send + Sync>;

/// Runs a clean-up when the last clone of a namespace is dropped.
struct Cleanup(Option<CleanupFn>);

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
#[cfg(any(feature = "postgres", feature = "redis", feature = "dynamodb"))]
pub(crate) fn block_on_fresh<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime")
            .block_on(f)
    })
    .join();
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
    /// A namespace of `backend` at `base` selected by `params`; `cleanup`
    /// runs when the last clone drops.
    pub(crate) fn new(
        backend: Backend,
        base: String,
        params: String,
        cleanup: Option<CleanupFn>,
    ) -> Namespace {
        Namespace {
            backend,
            base,
            params,
            _cleanup: Arc::new(Cleanup(cleanup)),
        }
    }

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
