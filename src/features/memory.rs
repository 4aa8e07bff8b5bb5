//! The embedded in-memory store: feature files loaded at start-up. The default for the
//! example system and for single-box deployments whose features fit in memory.

use std::collections::HashMap;

use super::store::{BoxFuture, Lookup, OnlineStore, StoreError, StoredRows};

#[derive(Debug, Default)]
pub struct MemoryStore {
    hashes: HashMap<Vec<u8>, HashMap<Vec<u8>, Vec<u8>>>,
    sources: Vec<String>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Sets fields of one hash, as `HSET key field value ...` would.
    pub fn insert(&mut self, key: String, fields: impl IntoIterator<Item = (String, String)>) {
        let fields = fields.into_iter().map(|(f, v)| (f.into_bytes(), v.into_bytes()));
        self.hashes.entry(key.into_bytes()).or_default().extend(fields);
    }

    /// Sets fields of one hash whose key and fields are bytes (Feast's layout).
    pub fn insert_bytes(&mut self, key: Vec<u8>, fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.hashes.entry(key).or_default().extend(fields);
    }

    pub fn add_source(&mut self, description: String) {
        self.sources.push(description);
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

impl OnlineStore for MemoryStore {
    fn get<'a>(&'a self, lookups: &'a [Lookup<'a>]) -> BoxFuture<'a, Result<StoredRows, StoreError>> {
        let fetched = lookups
            .iter()
            .map(|lookup| {
                let hash = self.hashes.get(&lookup.key)?;
                Some(lookup.fields.iter().map(|f| hash.get(f).cloned()).collect())
            })
            .collect();
        Box::pin(std::future::ready(Ok(fetched)))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn describe(&self) -> String {
        format!("memory ({} hashes from {})", self.hashes.len(), self.sources.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_like_hmget() {
        let mut store = MemoryStore::new();
        store.insert("g:1".into(), [("a".into(), "1.5".into())]);
        let fields = vec![b"a".to_vec(), b"b".to_vec()];
        let lookups = [
            Lookup { key: b"g:1".to_vec(), fields: &fields },
            Lookup { key: b"g:2".to_vec(), fields: &fields },
        ];
        let got = store.get(&lookups).await.expect("memory never fails");
        assert_eq!(got, vec![Some(vec![Some(b"1.5".to_vec()), None]), None]);
    }
}
