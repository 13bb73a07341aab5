//! The limits every binding applies, taken from the core so that no binding
//! has its own: the page size when the caller gives none, the largest page,
//! and the deepest JSON nesting accepted.

use mss_core::Result;

pub use mss_core::validate::{DEFAULT_PAGE_LIMIT, MAX_JSON_DEPTH, MAX_PAGE_LIMIT};

/// The page size of a paginated call: [`DEFAULT_PAGE_LIMIT`] when the caller
/// gives none, else `limit` checked to be 1–[`MAX_PAGE_LIMIT`]
/// (`InvalidInput` otherwise, with the core's message).
pub fn page_limit(limit: Option<u64>) -> Result<usize> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    mss_core::validate::limit(limit)?;
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_core::ErrorKind;

    #[test]
    fn the_core_values() {
        assert_eq!(DEFAULT_PAGE_LIMIT, 100);
        assert_eq!(MAX_JSON_DEPTH, 127);
        assert_eq!(MAX_PAGE_LIMIT, 10_000);
    }

    #[test]
    fn page_limit_defaults_and_checks() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(10_000)).unwrap(), MAX_PAGE_LIMIT);
        for bad in [0, 10_001, u64::MAX] {
            let e = page_limit(Some(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(
                e.message().starts_with("limit must be 1-10000"),
                "{}",
                e.message()
            );
        }
    }
}
