//! Shards: the hash tags that pin each shard to one cluster slot (CRC16,
//! evenly spaced slots), a prefix's stored shard count, the keys of a
//! session and of a shard, and the per-shard scripts (count, list, fetch,
//! reap) that listing, counting and cleanup run on every shard at once.

use super::RedisBackend;
use super::codec::{as_int, corrupt, into_array, into_text, session_from};
use super::config::MAX_SHARDS;
use super::connect::Conn;
use super::scripts::SCRIPTS;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{CleanupStats, Session};

/// Shards of a new key prefix on a single server and on a cluster.
const DEFAULT_SHARDS: u32 = 1;
const DEFAULT_CLUSTER_SHARDS: u32 = 16;

/// The layout of the keys, stored under `{prefix}config`.
const LAYOUT: u32 = 2;

/// Redis Cluster's slot count.
const SLOTS: u32 = 16384;

/// Sessions removed per cleanup script.
const CLEANUP_BATCH: usize = 500;

/// CRC16-XMODEM, as Redis Cluster hashes a key's tag onto its slot.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a hash tag.
fn slot(tag: &str) -> u32 {
    u32::from(crc16(tag.as_bytes())) % SLOTS
}

/// The hash tags of `shards` shards: shard `i`'s tag is the first `i.n`
/// (n = 0, 1, …) whose slot lies in the `i`-th of `shards` equal slot
/// ranges, so the shards' slots are evenly spaced.
pub(super) fn shard_tags(shards: u32) -> Vec<String> {
    (0..shards)
        .map(|i| {
            let range = (i * SLOTS / shards)..((i + 1) * SLOTS / shards);
            (0u32..)
                .map(|n| format!("{i}.{n}"))
                .find(|tag| range.contains(&slot(tag)))
                .expect("every slot range is hit by some tag")
        })
        .collect()
}

impl RedisBackend {
    /// The prefix's shard count: the stored one, or (first opener) `wanted`
    /// or the default, stored. An opener asking for another count than the
    /// stored one is refused.
    pub(super) async fn prefix_shards(&self, wanted: Option<u32>) -> Result<u32> {
        let default = match self.conn {
            Conn::Single(_) => DEFAULT_SHARDS,
            Conn::Cluster(_) => DEFAULT_CLUSTER_SHARDS,
        };
        let mut inv = SCRIPTS.config.prepare_invoke();
        inv.key(format!("{}config", self.prefix))
            .arg(wanted.unwrap_or(default))
            .arg(LAYOUT);
        let reply = into_array(self.run(inv, false).await?)?
            .ok_or_else(|| corrupt("the prefix's config is missing"))?;
        let [shards, layout] = reply.as_slice() else {
            return Err(corrupt("the prefix's config lacks fields"));
        };
        let (shards, layout) = (as_int(shards)?, as_int(layout)?);
        if layout != i64::from(LAYOUT) {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "key prefix {:?} holds data of key layout {layout}, this version reads layout {LAYOUT}",
                    self.prefix
                ),
            ));
        }
        let shards = u32::try_from(shards)
            .ok()
            .filter(|n| (1..=MAX_SHARDS).contains(n))
            .ok_or_else(|| corrupt("the prefix's shard count is out of range"))?;
        if let Some(w) = wanted
            && w != shards
        {
            return Err(Error::invalid(format!(
                "option shards={w}: key prefix {:?} already uses {shards} shards, and this cannot change",
                self.prefix
            )));
        }
        Ok(shards)
    }

    /// The shard of session `id`.
    pub(super) fn shard_of(&self, id: &str) -> usize {
        (crate::hash::fnv1a(id.as_bytes()) % self.tags.len() as u64) as usize
    }

    /// The four keys of session `id`, in shard `shard`.
    pub(super) fn session_keys(&self, shard: usize, id: &str) -> [String; 4] {
        let (p, t) = (&self.prefix, &self.tags[shard]);
        [
            format!("{p}{{{t}}}:{id}:s"),
            format!("{p}{{{t}}}:{id}:st"),
            format!("{p}{{{t}}}:{id}:ev"),
            format!("{p}{{{t}}}:{id}:ix"),
        ]
    }

    /// The expiry and id indexes of shard `shard`.
    pub(super) fn index_keys(&self, shard: usize) -> [String; 2] {
        let (p, t) = (&self.prefix, &self.tags[shard]);
        [format!("{p}{{{t}}}:exp"), format!("{p}{{{t}}}:ids")]
    }

    /// Run `per_shard` on every shard at once; the results in shard order.
    pub(super) async fn each_shard<'a, T, F>(
        &'a self,
        per_shard: impl Fn(usize) -> F,
    ) -> Result<Vec<T>>
    where
        F: std::future::Future<Output = Result<T>> + 'a,
    {
        futures::future::try_join_all((0..self.tags.len()).map(per_shard)).await
    }

    /// Live sessions in shard `shard`: how many.
    pub(super) async fn count_shard(&self, shard: usize) -> Result<u64> {
        let mut inv = SCRIPTS.count.prepare_invoke();
        inv.key(&self.index_keys(shard)[0]);
        Ok(as_int(&self.run(inv, true).await?)? as u64)
    }

    /// Up to `want` live ids of shard `shard` after `after`, in id order.
    pub(super) async fn list_shard(
        &self,
        shard: usize,
        after: &str,
        want: usize,
    ) -> Result<Vec<String>> {
        let [exp, ids] = self.index_keys(shard);
        let mut inv = SCRIPTS.list.prepare_invoke();
        inv.key(ids).key(exp).arg(after).arg(want);
        into_array(self.run(inv, true).await?)?
            .unwrap_or_default()
            .into_iter()
            .map(into_text)
            .collect()
    }

    /// The live sessions among `ids`, all of shard `shard`, in their order.
    pub(super) async fn get_shard(&self, shard: usize, ids: &[&str]) -> Result<Vec<Session>> {
        let mut inv = SCRIPTS.get_many.prepare_invoke();
        for id in ids {
            let [s, ..] = self.session_keys(shard, id);
            inv.key(s);
        }
        let replies = into_array(self.run(inv, true).await?)?.unwrap_or_default();
        if replies.len() != ids.len() {
            return Err(corrupt("a session listing lacks sessions"));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, reply) in ids.iter().zip(replies) {
            if let Some(fields) = into_array(reply)? {
                out.push(session_from(id, fields)?);
            }
        }
        Ok(out)
    }

    /// Reap the expired sessions of shard `shard`, a batch per script.
    pub(super) async fn cleanup_shard(&self, shard: usize) -> Result<CleanupStats> {
        let mut total = CleanupStats::default();
        let indexes = self.index_keys(shard);
        loop {
            let mut inv = SCRIPTS.expired.prepare_invoke();
            inv.key(&indexes[0]).arg(CLEANUP_BATCH);
            let ids = into_array(self.run(inv, true).await?)?.unwrap_or_default();
            let batch = ids.len();
            if batch > 0 {
                let mut inv = SCRIPTS.reap.prepare_invoke();
                inv.key(&indexes[0]).key(&indexes[1]);
                for id in ids {
                    let id = into_text(id)?;
                    for key in self.session_keys(shard, &id) {
                        inv.key(key);
                    }
                    inv.arg(id);
                }
                let counts = into_array(self.run(inv, false).await?)?
                    .ok_or_else(|| corrupt("reap answered nil"))?;
                let n = |i: usize| counts.get(i).map(as_int).unwrap_or(Ok(0));
                let removed = n(0)? as u64;
                total.add(CleanupStats::new(removed, n(1)? as u64, n(2)? as u64));
                if removed == 0 {
                    // All renewed meanwhile: the next batch would be the same.
                    return Ok(total);
                }
            }
            if batch < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_one_redis_cluster_uses() {
        // The check value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("123456789"), 12739);
    }

    #[test]
    fn shard_tags_take_evenly_spaced_slots() {
        for shards in [1, 2, 3, 16, 100, MAX_SHARDS] {
            let tags = shard_tags(shards);
            assert_eq!(tags.len(), shards as usize);
            for (i, tag) in tags.iter().enumerate() {
                let i = i as u32;
                let range = (i * SLOTS / shards)..((i + 1) * SLOTS / shards);
                assert!(range.contains(&slot(tag)), "{tag} of {shards}");
                assert!(!tag.contains(['{', '}']), "{tag}");
            }
        }
        // Every process computes the same tags.
        assert_eq!(shard_tags(16), shard_tags(16));
    }
}
