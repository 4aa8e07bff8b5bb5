//! Redis online store. Layout: one HASH per (group, entity) at `<prefix><group>:<entity>`,
//! fields are feature names, values decimal/UTF-8 strings, so any client can write it
//! (`redis-cli HSET fti:card_activity:4111000000000001 txn_count_1h 3`).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::store::{BoxFuture, Lookup, OnlineStore, StoreError, StoredRows};
use crate::secret::redact_url;

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    display: String,
}

impl RedisStore {
    /// Creates the store without connecting: the connection is made (and re-made after an
    /// outage) on first use, so the server starts, and reports not-ready, while Redis is
    /// down.
    /// `timeout` bounds one round trip (all groups and entities of a request).
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let display = redact_url(url);
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid redis url {display}: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| StoreError::Backend(format!("redis {display}: {e}")))?;
        Ok(RedisStore { conn, timeout, display })
    }

    async fn with_deadline<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Backend(format!("redis {}: {e}", self.display))),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }
}

impl OnlineStore for RedisStore {
    fn get<'a>(&'a self, lookups: &'a [Lookup<'a>]) -> BoxFuture<'a, Result<StoredRows, StoreError>> {
        Box::pin(async move {
            if lookups.is_empty() {
                return Ok(Vec::new());
            }
            // One pipeline = one round trip, however many groups and rows.
            let mut pipe = redis::pipe();
            for lookup in lookups {
                pipe.cmd("HMGET").arg(&lookup.key).arg(lookup.fields);
            }
            let mut conn = self.conn.clone();
            let rows: Vec<Vec<Option<String>>> = self.with_deadline(pipe.query_async(&mut conn)).await?;
            // HMGET cannot tell an absent key from a hash without these fields; the feature
            // view treats both as "entity not found" (GroupPlan::from_stored).
            Ok(rows.into_iter().map(Some).collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let pong: String = self.with_deadline(redis::cmd("PING").query_async(&mut conn)).await?;
            if pong == "PONG" { Ok(()) } else { Err(StoreError::Backend(format!("PING answered {pong:?}"))) }
        })
    }

    fn describe(&self) -> String {
        format!("redis {}", self.display)
    }
}
