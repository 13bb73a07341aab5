//! Running tests: one test function type, a runtime per test, the `main` of
//! a backend's own test binary, and the helpers those binaries share.

use std::future::Future;
use std::pin::Pin;

use mcp_session_store::Store;

use crate::{Backend, Namespace};

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
