//! The online store seam: one round trip fetches many (key, fields) lookups.

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One hash to read: the full key and the fields wanted, as bytes (a group's layout makes
/// them: `<prefix><group>:<entity>` and feature names natively, binary in Feast's).
#[derive(Debug)]
pub struct Lookup<'a> {
    pub key: Vec<u8>,
    pub fields: &'a [Vec<u8>],
}

/// Per lookup, in order: `None` when the key does not exist, else each field's raw value.
pub type StoredRows = Vec<Option<Vec<Option<Vec<u8>>>>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Backend(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// Failing fast: the last lookup or health check failed, and the store is re-checked
    /// in the background rather than on requests' clocks.
    #[error("down since its last check failed; reconnecting in the background")]
    Down,
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Backend(_) => "backend",
            StoreError::Timeout(_) => "timeout",
            StoreError::Down => "down",
        }
    }
}

pub trait OnlineStore: Send + Sync + 'static {
    /// Reads every lookup in one round trip.
    fn get<'a>(&'a self, lookups: &'a [Lookup<'a>]) -> BoxFuture<'a, Result<StoredRows, StoreError>>;

    /// Cheap liveness probe for readiness.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// For logs and `/v1/models`: kind and address, never credentials.
    fn describe(&self) -> String;
}
