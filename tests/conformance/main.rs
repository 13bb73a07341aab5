//! The conformance suite: every guarantee of the design, written once against
//! the store and run on every backend in `MSS_TEST_BACKENDS`
//! (default `memory,sqlite`). Test names are `BACKEND::test`.
//!
//! Each area of the contract is a module that registers its own tests in
//! [`Registry`]; adding a test touches only its area's file.

mod events;
mod expiry;
mod helpers;
mod input;
mod open;
mod sessions;
mod shared;
mod state;
mod subscribe;

use libtest_mimic::{Arguments, Trial};
use mcp_session_store_conformance::{Backend, TestFn, run_test};

/// Every area, in the order its tests are listed.
const AREAS: &[fn(&mut Registry)] = &[
    sessions::register,
    state::register,
    events::register,
    subscribe::register,
    expiry::register,
    input::register,
    open::register,
    shared::register,
];

/// The tests the areas register.
#[derive(Default)]
pub(crate) struct Registry {
    /// Run on every backend.
    all: Vec<(&'static str, TestFn)>,
    /// Run only where two handles on one URL share data.
    shared: Vec<(&'static str, TestFn)>,
    /// Run once, on no backend of `MSS_TEST_BACKENDS` (named `global::test`).
    global: Vec<(&'static str, fn())>,
}

impl Registry {
    /// Tests to run on every backend.
    pub(crate) fn all(&mut self, tests: &[(&'static str, TestFn)]) {
        self.all.extend_from_slice(tests);
    }

    /// Tests to run only on backends whose handles share data.
    pub(crate) fn shared(&mut self, tests: &[(&'static str, TestFn)]) {
        self.shared.extend_from_slice(tests);
    }

    /// A test of its own, run once whatever the backends.
    pub(crate) fn global(&mut self, name: &'static str, test: fn()) {
        self.global.push((name, test));
    }
}

fn main() {
    if let Ok(spec) = std::env::var(shared::CHILD_ENV) {
        std::process::exit(helpers::rt().block_on(shared::cross_process_child(&spec)));
    }
    let args = Arguments::from_args();
    let backends = match Backend::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut registry = Registry::default();
    for register in AREAS {
        register(&mut registry);
    }
    let mut trials = Vec::new();
    for backend in &backends {
        let shared = if backend.is_shared() {
            registry.shared.as_slice()
        } else {
            &[]
        };
        for &(name, f) in registry.all.iter().chain(shared) {
            let backend = backend.clone();
            let label = format!("{}::{name}", backend.name);
            trials.push(Trial::test(label, move || {
                run_test(backend.namespace(name), f)
            }));
        }
    }
    for &(name, f) in &registry.global {
        trials.push(Trial::test(format!("global::{name}"), move || {
            f();
            Ok(())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
