//! The backends. [`crate::Store::open`] picks one by URL scheme.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// 64-bit FNV-1a of `bytes`: how the sharded backends (Redis, DynamoDB) put
/// a session id in a shard. Every process must agree, so it never changes.
#[cfg(any(feature = "redis", feature = "dynamodb"))]
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
