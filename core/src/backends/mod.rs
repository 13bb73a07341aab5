//! The backends. [`crate::Store::open`] picks one by URL scheme.

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
