//! Redis online store. Layout: one HASH per (group, entity) at `<prefix><group>:<entity>`,
//! fields are feature names, values decimal/UTF-8 strings, so any client can write it
//! (`redis-cli HSET fti:card_activity:4111000000000001 txn_count_1h 3`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, IntoConnectionInfo, TlsCertificates};

use super::redis_mux::{self, RedisMux, Reply};
use super::store::{BoxFuture, Lookup, OnlineStore, StoreError, StoredRows};
use crate::secret::{Secret, redact_url};

/// How to reach Redis. Secrets stay out of the URL when they come from files.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host:port[/db]`, `rediss://...` (TLS) or `unix://...`.
    pub url: String,
    /// Overrides the URL's password (e.g. read from a mounted secret file).
    pub password: Option<Secret>,
    /// PEM certificate(s) to trust for `rediss://`, instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Bounds one round trip (all groups and entities of a request), and each connect.
    pub timeout: Duration,
}

/// Where and as whom to connect: the URL, with the password override applied.
fn connection_info(options: &RedisOptions) -> Result<ConnectionInfo, StoreError> {
    let invalid =
        |e: &dyn std::fmt::Display| StoreError::Backend(format!("redis {}: {e}", redact_url(&options.url)));
    let mut info = options.url.as_str().into_connection_info().map_err(|e| invalid(&e))?;
    if let Some(password) = &options.password {
        let settings = info.redis_settings().clone().set_password(password.expose());
        info = info.set_redis_settings(settings);
    }
    Ok(info)
}

/// A client for `options` (URL, password override, CA for TLS); connects nothing yet.
pub fn client(options: &RedisOptions) -> Result<redis::Client, StoreError> {
    let invalid =
        |e: &dyn std::fmt::Display| StoreError::Backend(format!("redis {}: {e}", redact_url(&options.url)));
    let info = connection_info(options)?;
    match &options.ca_pem {
        Some(pem) => {
            // ring, whatever else the dependency tree enables: rustls refuses to guess.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let certificates = TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
            redis::Client::build_with_tls(info, certificates).map_err(|e| invalid(&e))
        }
        None => redis::Client::open(info).map_err(|e| invalid(&e)),
    }
}

/// After this many failed pings in a row the connection is made anew: the crate's manager
/// stops reconnecting by itself after an error that is not I/O (a password changed while
/// Redis restarted, say), and ours can hang on a connection that neither answers nor
/// fails; a fresh one recovers from any of them.
const REBUILD_AFTER_FAILED_PINGS: u32 = 3;

pub struct RedisStore {
    connection: Connection,
    failed_pings: AtomicU32,
    timeout: Duration,
    display: String,
}

/// What the store reads over.
enum Connection {
    /// Our own multiplexed connection ([`redis_mux`]).
    Builtin(RedisMux),
    /// The redis crate's connection manager, built anew after failed pings.
    Crate { client: redis::Client, config: ConnectionManagerConfig, manager: ArcSwap<ConnectionManager> },
}

impl RedisStore {
    /// Creates the store without connecting: the connection is made (and re-made after an
    /// outage) in the background, so the server starts, and reports not-ready, while
    /// Redis is down. `builtin`: our own multiplexed connection where the URL allows it,
    /// else the redis crate's connection manager.
    pub fn new(options: &RedisOptions, builtin: bool) -> Result<RedisStore, StoreError> {
        let display = redact_url(&options.url);
        let invalid = |e: &dyn std::fmt::Display| StoreError::Backend(format!("redis {display}: {e}"));
        let mux = if builtin {
            RedisMux::new(connection_info(options)?, options.ca_pem.as_deref(), options.timeout)
                .map_err(|e| invalid(&e))?
        } else {
            None
        };
        let connection = match mux {
            Some(mux) => Connection::Builtin(mux),
            None => {
                let client = client(options)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.timeout))
                    .set_response_timeout(Some(options.timeout))
                    // One attempt per reconnect: the health check retries, off the
                    // requests' clock.
                    .set_number_of_retries(0);
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map_err(|e| invalid(&e))?;
                Connection::Crate { client, config, manager: ArcSwap::from_pointee(manager) }
            }
        };
        Ok(RedisStore { connection, failed_pings: AtomicU32::new(0), timeout: options.timeout, display })
    }

    /// One round trip, either client's, under the store's deadline.
    async fn with_deadline<T, E: std::fmt::Display>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Backend(format!("redis {}: {e}", self.display))),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// One HMGET per lookup, all in one round trip.
    async fn hmget(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        match &self.connection {
            Connection::Builtin(mux) => {
                let mut commands = Vec::with_capacity(64 * lookups.len());
                let mut args: Vec<&[u8]> = Vec::new();
                for lookup in lookups {
                    args.clear();
                    args.push(b"HMGET");
                    args.push(&lookup.key);
                    args.extend(lookup.fields.iter().map(Vec::as_slice));
                    redis_mux::command(&mut commands, &args);
                }
                let replies = self.with_deadline(mux.send(commands, lookups.len())).await?;
                replies
                    .into_iter()
                    .map(|reply| match reply {
                        Reply::Array(Some(fields)) => Ok(fields),
                        Reply::Error(message) => {
                            Err(StoreError::Backend(format!("redis {}: {message}", self.display)))
                        }
                        other => Err(StoreError::Backend(format!(
                            "redis {}: HMGET answered {other:?}",
                            self.display
                        ))),
                    })
                    .collect()
            }
            Connection::Crate { manager, .. } => {
                let mut pipe = redis::pipe();
                for lookup in lookups {
                    pipe.cmd("HMGET").arg(&lookup.key).arg(lookup.fields);
                }
                let mut conn = ConnectionManager::clone(&manager.load());
                self.with_deadline(pipe.query_async(&mut conn)).await
            }
        }
    }

    async fn pong(&self) -> Result<(), StoreError> {
        let pong = match &self.connection {
            Connection::Builtin(mux) => {
                let mut command = Vec::new();
                redis_mux::command(&mut command, &[b"PING"]);
                match self.with_deadline(mux.send(command, 1)).await?.pop() {
                    Some(Reply::Simple(pong)) => String::from_utf8_lossy(&pong).into_owned(),
                    Some(Reply::Error(message)) => return Err(StoreError::Backend(message)),
                    other => format!("{other:?}"),
                }
            }
            Connection::Crate { manager, .. } => {
                let mut conn = ConnectionManager::clone(&manager.load());
                self.with_deadline(redis::cmd("PING").query_async::<String>(&mut conn)).await?
            }
        };
        if pong == "PONG" { Ok(()) } else { Err(StoreError::Backend(format!("PING answered {pong:?}"))) }
    }

    /// Every few failed pings in a row the connection is dropped (ours) or the manager
    /// built anew (the crate's), so that the next request connects afresh.
    fn after_ping(&self, ok: bool) {
        if ok {
            self.failed_pings.store(0, Ordering::Relaxed);
            return;
        }
        let failed = self.failed_pings.fetch_add(1, Ordering::Relaxed) + 1;
        if !failed.is_multiple_of(REBUILD_AFTER_FAILED_PINGS) {
            return;
        }
        match &self.connection {
            Connection::Builtin(mux) => mux.reset(),
            Connection::Crate { client, config, manager } => {
                if let Ok(fresh) = ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
                    manager.store(Arc::new(fresh));
                }
            }
        }
    }
}

impl OnlineStore for RedisStore {
    fn get<'a>(&'a self, lookups: &'a [Lookup<'a>]) -> BoxFuture<'a, Result<StoredRows, StoreError>> {
        Box::pin(async move {
            if lookups.is_empty() {
                return Ok(Vec::new());
            }
            let rows = self.hmget(lookups).await?;
            // HMGET cannot tell an absent key from a hash without these fields; each layout
            // decides what "entity not found" means (GroupPlan::from_stored).
            Ok(rows.into_iter().map(Some).collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self.pong().await;
            self.after_ping(result.is_ok());
            result
        })
    }

    fn describe(&self) -> String {
        format!("redis {}", self.display)
    }
}
