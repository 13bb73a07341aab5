//! The backends, and the scheme table that opens one from a URL.
//!
//! Each backend lives in its own module (a folder for the server backends),
//! parses its own URL options, and implements [`crate::Backend`]. Nothing
//! here or below imports [`crate::Store`]: the store sits on top of the
//! backends, not beside them.

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::options::{Limits, StoreUrl};

pub(crate) mod common;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// One URL scheme: the names it answers to, the cargo feature it needs, and
/// whether this build has it.
struct Scheme {
    names: &'static [&'static str],
    example: &'static str,
    feature: &'static str,
    built: bool,
}

/// Every scheme the crate knows, built in or not.
const SCHEMES: &[Scheme] = &[
    Scheme {
        names: &["memory"],
        example: "memory://",
        feature: "",
        built: true,
    },
    Scheme {
        names: &["sqlite"],
        example: "sqlite://PATH",
        feature: "sqlite",
        built: cfg!(feature = "sqlite"),
    },
    Scheme {
        names: &["postgres", "postgresql"],
        example: "postgres://…",
        feature: "postgres",
        built: cfg!(feature = "postgres"),
    },
    Scheme {
        names: &["redis", "rediss"],
        example: "redis://… or rediss://…",
        feature: "redis",
        built: cfg!(feature = "redis"),
    },
    Scheme {
        names: &["dynamodb"],
        example: "dynamodb://TABLE?region=…",
        feature: "dynamodb",
        built: cfg!(feature = "dynamodb"),
    },
];

/// Open the backend `url` names. The common options (`ttl`, limits, …) have
/// been taken out of `url` already; the backend takes its own and rejects
/// any left over.
///
/// An unknown scheme, or one whose cargo feature this build lacks, is
/// `InvalidInput`; a backend that cannot be reached is `Unavailable`.
pub async fn open(url: &mut StoreUrl, limits: Limits) -> Result<Arc<dyn Backend>> {
    let scheme = url.scheme.clone();
    let Some(known) = SCHEMES.iter().find(|s| s.names.contains(&scheme.as_str())) else {
        let all: Vec<&str> = SCHEMES.iter().map(|s| s.example).collect();
        return Err(Error::invalid(format!(
            "unknown store scheme {scheme:?}: expected {}",
            all.join(", ")
        )));
    };
    if !known.built {
        return Err(Error::invalid(format!(
            "{scheme}:// needs the `{}` cargo feature of mcp-session-store",
            known.feature
        )));
    }
    match known.names[0] {
        "memory" => Ok(Arc::new(memory::MemoryBackend::open(url, limits)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sqlite::SqliteBackend::open(url, limits).await?)),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(
            postgres::PostgresBackend::open(url, limits).await?,
        )),
        #[cfg(feature = "redis")]
        "redis" => Ok(Arc::new(redis::RedisBackend::open(url, limits).await?)),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => Ok(Arc::new(dynamodb::DynamoBackend::open(url, limits).await?)),
        _ => unreachable!("every built scheme has an arm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn schemes() {
        let mut url = StoreUrl::parse("memory://").unwrap();
        let backend = open(&mut url, Limits::default()).await.unwrap();
        assert_eq!(backend.info().name, "memory");

        let mut url = StoreUrl::parse("nosuch://x").unwrap();
        let err = open(&mut url, Limits::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("sqlite://PATH"), "{err}");

        for s in SCHEMES.iter().filter(|s| !s.built) {
            let mut url = StoreUrl::parse(&format!("{}://x", s.names[0])).unwrap();
            let err = open(&mut url, Limits::default()).await.unwrap_err();
            assert!(err.message().contains(s.feature), "{err}");
        }
    }
}
