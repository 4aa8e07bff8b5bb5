//! The moka cache in front of the online store. Entries carry their own deadline on the
//! tokio clock, so each feature group has its own TTL and tests can pause time; moka's own
//! TTL (the longest group TTL) only bounds how long dead entries occupy memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use super::view::GroupValues;

/// How long each feature group's values are cached; a zero TTL turns caching off.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Upper bound on cached (group, entity) entries.
    pub max_entries: u64,
    /// TTL of groups not listed in `ttl`.
    pub default_ttl: Duration,
    pub ttl: BTreeMap<String, Duration>,
}

impl CacheOptions {
    pub fn ttl_for(&self, group: &str) -> Duration {
        self.ttl.get(group).copied().unwrap_or(self.default_ttl)
    }

    /// The longest TTL of any group: zero when nothing is cached.
    pub fn longest_ttl(&self) -> Duration {
        self.ttl.values().copied().chain([self.default_ttl]).max().unwrap_or_default()
    }
}

#[derive(Clone)]
struct Entry {
    values: GroupValues,
    expires: Instant,
}

/// Key: (group plan id, full store key).
pub type CacheKey = (u64, Vec<u8>);

#[derive(Clone)]
pub struct GroupCache {
    inner: Cache<CacheKey, Arc<Entry>>,
}

impl std::fmt::Debug for GroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCache").field("entries", &self.inner.entry_count()).finish()
    }
}

impl GroupCache {
    pub fn new(max_entries: u64, longest_ttl: Duration) -> GroupCache {
        let inner = Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(longest_ttl.max(Duration::from_millis(1)))
            .build();
        GroupCache { inner }
    }

    /// A fresh entry, or `None` (absent or expired). `Some(None)` is a cached "entity not
    /// found".
    pub async fn get(&self, key: &CacheKey) -> Option<GroupValues> {
        let entry = self.inner.get(key).await?;
        if Instant::now() >= entry.expires {
            self.inner.invalidate(key).await;
            return None;
        }
        Some(entry.values.clone())
    }

    pub async fn insert(&self, key: CacheKey, values: GroupValues, ttl: Duration) {
        let entry = Entry { values, expires: Instant::now() + ttl };
        self.inner.insert(key, Arc::new(entry)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::value::Value;
    use crate::features::view::StoredGroup;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_the_tokio_clock() {
        let cache = GroupCache::new(100, Duration::from_secs(60));
        let key = (7, b"fti:g:1".to_vec());
        let stored = StoredGroup { values: Box::new([Some(Value::Num(1.0))]), event_time: None };
        let values: GroupValues = Some(Arc::new(stored));
        cache.insert(key.clone(), values.clone(), Duration::from_millis(500)).await;
        assert_eq!(cache.get(&key).await, Some(values));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(cache.get(&key).await.is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn caches_entity_not_found() {
        let cache = GroupCache::new(100, Duration::from_secs(60));
        let key = (7, b"fti:g:404".to_vec());
        cache.insert(key.clone(), None, Duration::from_secs(1)).await;
        assert_eq!(cache.get(&key).await, Some(None));
    }
}
