//! The Redis Streams sink: `XADD <key> MAXLEN ~ <maxlen> * model <model> record <json>`,
//! a batch in one pipelined round trip, on a connection the writer thread owns.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::features::redis::{RedisOptions, client};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub redis: RedisOptions,
    /// `{model}` is replaced by the model's name.
    pub key: String,
    pub maxlen: u64,
}

/// The placeholder a stream key may hold.
pub const MODEL_PLACEHOLDER: &str = "{model}";

pub struct StreamSink {
    options: StreamOptions,
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    keys: HashMap<String, String>,
}

impl StreamSink {
    pub fn new(options: StreamOptions) -> Result<StreamSink, String> {
        let client = client(&options.redis).map_err(|e| e.to_string())?;
        Ok(StreamSink { options, client, conn: None, keys: HashMap::new() })
    }

    pub fn describe(&self) -> String {
        crate::secret::redact_url(&self.options.redis.url)
    }

    /// Appends `records` ((model, JSON) pairs) in one round trip; on failure the
    /// connection is dropped and made anew by the next call.
    pub async fn write(&mut self, records: &[(String, Vec<u8>)]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (model, json) in records {
            let key = match self.keys.get(model) {
                Some(key) => key.clone(),
                None => {
                    let key = self.options.key.replace(MODEL_PLACEHOLDER, model);
                    self.keys.insert(model.clone(), key.clone());
                    key
                }
            };
            pipe.cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.options.maxlen)
                .arg("*")
                .arg("model")
                .arg(model)
                .arg("record")
                .arg(json.as_slice())
                .ignore();
        }
        let timeout = self.options.redis.timeout;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                self.conn.insert(conn)
            }
        };
        // A batch may be large: give it the timeout per thousand entries.
        let budget = timeout * u32::try_from(records.len().div_ceil(1000)).unwrap_or(u32::MAX);
        let result = tokio::time::timeout(budget.max(timeout), pipe.query_async::<()>(conn)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.conn = None;
                Err(format!("no answer within {} ms", budget.as_millis()))
            }
        }
    }
}

/// Back-off between attempts on a failing sink.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis((50u64 << failures.min(7)).min(5000))
}
