//! The handle registry: opaque handle numbers that C sees as pointers,
//! looked up on every call and never dereferenced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use crate::boundary::{FfiError, FfiResult};

/// Handle numbers are never reused, so a freed handle can never alias a newer
/// one. One counter serves every handle type, so a handle of one type is not
/// a valid handle of another.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(1);

/// Live handles of one type. A handle is an opaque number that C sees as a
/// pointer; the library never dereferences it, so a freed, forged or
/// mistyped handle is reported as `MSS_INVALID_INPUT`, never undefined
/// behaviour.
pub(crate) struct Registry<T> {
    what: &'static str,
    live: LazyLock<RwLock<HashMap<usize, Arc<T>, foldhash::fast::RandomState>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(what: &'static str) -> Registry<T> {
        Registry {
            what,
            live: LazyLock::new(|| RwLock::new(HashMap::default())),
        }
    }

    /// Register `value`; returns its handle.
    pub(crate) fn insert<H>(&self, value: T) -> *mut H {
        // Step by 16 so handles look like aligned pointers and never hit 0.
        let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed).wrapping_mul(16);
        self.live.write().insert(id, Arc::new(value));
        std::ptr::without_provenance_mut(id)
    }

    /// The live object behind `handle`.
    pub(crate) fn get<H>(&self, handle: *const H) -> FfiResult<Arc<T>> {
        if handle.is_null() {
            return Err(FfiError::invalid(format!("{} is NULL", self.what)));
        }
        self.live
            .read()
            .get(&handle.addr())
            .cloned()
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "{} handle is not open (already freed, or not a {})",
                    self.what, self.what
                ))
            })
    }

    /// Unregister `handle`; `None` if it was not live.
    pub(crate) fn remove<H>(&self, handle: *const H) -> Option<Arc<T>> {
        if handle.is_null() {
            return None;
        }
        self.live.write().remove(&handle.addr())
    }
}
