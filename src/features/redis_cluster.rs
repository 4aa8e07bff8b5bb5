//! Redis Cluster as the online store: the same layouts as a single Redis, keys spread over
//! the cluster's slots. A request's lookups are grouped by the primary that owns each
//! key's slot (a slot map read with `CLUSTER SLOTS`) and sent as one pipeline per node,
//! the nodes in parallel: one round trip per node. A lookup the node refuses (`MOVED`,
//! `ASK` while slots move) is sent again on its own, which the client routes by following
//! the redirection, and the slot map is read anew.
//!
//! Configured by a cluster URL: `redis+cluster://[user[:password]@]host:port[,host:port...]`
//! (seed nodes; the rest are discovered), or `rediss+cluster://...` over TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{TlsCertificates, Value};

use super::redis::RedisOptions;
use super::store::{BoxFuture, Lookup, OnlineStore, StoreError, StoredRows};
use crate::secret::redact_url;

const SCHEME: &str = "redis+cluster://";
const TLS_SCHEME: &str = "rediss+cluster://";

/// Whether a store URL names a cluster.
pub fn is_cluster_url(url: &str) -> bool {
    url.starts_with(SCHEME) || url.starts_with(TLS_SCHEME)
}

/// The seed nodes of a cluster URL as single-node URLs, each with the URL's credentials.
pub fn seed_urls(url: &str) -> Result<Vec<String>, String> {
    let (rest, scheme) = if let Some(rest) = url.strip_prefix(TLS_SCHEME) {
        (rest, "rediss://")
    } else if let Some(rest) = url.strip_prefix(SCHEME) {
        (rest, "redis://")
    } else {
        return Err(format!("expected {SCHEME} or {TLS_SCHEME}"));
    };
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| match userinfo {
            Some(userinfo) => format!("{scheme}{userinfo}@{host}"),
            None => format!("{scheme}{host}"),
        })
        .collect();
    if seeds.is_empty() {
        return Err("no seed node (expected host:port[,host:port...])".into());
    }
    if let Some(bad) = hosts.split(',').map(str::trim).find(|h| h.contains('/') || !h.contains(':')) {
        return Err(format!("seed node {bad:?}: expected host:port (no database: a cluster has only 0)"));
    }
    Ok(seeds)
}

/// A cluster client as the options say (credentials, TLS roots, timeouts).
pub fn cluster_client(options: &RedisOptions) -> Result<ClusterClient, String> {
    let seeds = seed_urls(&options.url)?;
    let mut builder = ClusterClientBuilder::new(seeds)
        .connection_timeout(options.timeout)
        .response_timeout(options.timeout)
        // Redirections (MOVED/ASK) and reconnects are retried within the request's store
        // timeout, which bounds the whole lookup.
        .retries(2)
        .min_retry_wait(1)
        .max_retry_wait(20);
    if let Some(password) = &options.password {
        builder = builder.password(password.expose());
    }
    if let Some(pem) = &options.ca_pem {
        let _ = rustls::crypto::ring::default_provider().install_default();
        builder = builder.certs(TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
    } else if options.url.starts_with(TLS_SCHEME) {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    builder.build().map_err(|e| e.to_string())
}

pub struct ClusterStore {
    client: ClusterClient,
    /// Made by the first health check that reaches the cluster, not at start-up: the
    /// server starts, and reports not-ready, while the cluster is down.
    conn: ArcSwapOption<ClusterConnection>,
    /// Which primary serves which slots: read at each health check, and again after a
    /// lookup was redirected.
    slots: ArcSwap<SlotMap>,
    refreshing: AtomicBool,
    timeout: Duration,
    display: String,
}

/// Slot ranges and the address of the primary serving each.
#[derive(Debug, Default)]
struct SlotMap(Vec<(u16, u16, String)>);

impl SlotMap {
    fn node(&self, slot: u16) -> Option<&str> {
        self.0
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, node)| node.as_str())
    }

    /// From a `CLUSTER SLOTS` answer: `[[start, end, [host, port, id], replicas...], ...]`.
    fn parse(answer: Value) -> Option<SlotMap> {
        let Value::Array(ranges) = answer else { return None };
        let mut map = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(items) = range else { return None };
            let int = |v: &Value| match v {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let (start, end) = (int(items.first()?)?, int(items.get(1)?)?);
            let Value::Array(primary) = items.get(2)? else { return None };
            let host = match primary.first()? {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let port = match primary.get(1)? {
                Value::Int(n) => *n,
                _ => return None,
            };
            map.push((start, end, format!("{host}:{port}")));
        }
        Some(SlotMap(map))
    }
}

/// The hash slot of a key (CRC16/XMODEM of the key, or of its `{hash tag}`, mod 16384).
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(key) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

impl ClusterStore {
    pub fn new(options: &RedisOptions) -> Result<ClusterStore, StoreError> {
        let display = redact_url(&options.url);
        let client = cluster_client(options)
            .map_err(|e| StoreError::Backend(format!("redis cluster {display}: {e}")))?;
        Ok(ClusterStore {
            client,
            conn: ArcSwapOption::empty(),
            slots: ArcSwap::from_pointee(SlotMap::default()),
            refreshing: AtomicBool::new(false),
            timeout: options.timeout,
            display,
        })
    }

    async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok(ClusterConnection::clone(&conn));
        }
        let conn = self.bounded(self.client.get_async_connection()).await?;
        self.conn.store(Some(std::sync::Arc::new(conn.clone())));
        Ok(conn)
    }

    async fn refresh_slots(&self, conn: &mut ClusterConnection) -> Result<(), StoreError> {
        let answer: Value = self.bounded(redis::cmd("CLUSTER").arg("SLOTS").query_async(conn)).await?;
        let map = SlotMap::parse(answer).ok_or_else(|| {
            StoreError::Backend(format!("redis cluster {}: unreadable CLUSTER SLOTS", self.display))
        })?;
        self.slots.store(Arc::new(map));
        Ok(())
    }

    /// One node's lookups (`indexes` into `lookups`) as one pipeline. Each result is the
    /// HMGET's answer, or `None` where the node refused it (then sent again on its own).
    async fn node_pipeline(
        &self,
        mut conn: ClusterConnection,
        lookups: &[Lookup<'_>],
        indexes: &[usize],
    ) -> Vec<Option<Vec<Option<Vec<u8>>>>> {
        if let [i] = indexes {
            // One key for this node: a plain command costs less than a pipeline of one.
            let mut read = redis::cmd("HMGET");
            read.arg(&lookups[*i].key).arg(lookups[*i].fields);
            return vec![read.query_async(&mut conn).await.ok()];
        }
        let mut pipe = redis::pipe();
        for &i in indexes {
            pipe.cmd("HMGET").arg(&lookups[i].key).arg(lookups[i].fields);
        }
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(
            key_slot(&lookups[indexes[0]].key),
            SlotAddr::Master,
        ));
        match conn.route_pipeline(pipe, 0, indexes.len(), route).await {
            Ok(values) if values.len() == indexes.len() => {
                values.into_iter().map(|v| redis::from_redis_value::<Vec<Option<Vec<u8>>>>(v).ok()).collect()
            }
            _ => vec![None; indexes.len()],
        }
    }

    async fn bounded<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Backend(format!("redis cluster {}: {e}", self.display))),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }
}

impl OnlineStore for ClusterStore {
    fn get<'a>(&'a self, lookups: &'a [Lookup<'a>]) -> BoxFuture<'a, Result<StoredRows, StoreError>> {
        Box::pin(async move {
            if lookups.is_empty() {
                return Ok(Vec::new());
            }
            let conn = self.connection().await?;
            // Group by the node that serves each key's slot (keys of a slot the map does not
            // know yet go alone, routed by the client).
            let map = self.slots.load();
            let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
            for (i, lookup) in lookups.iter().enumerate() {
                let node = map.node(key_slot(&lookup.key));
                match groups.iter_mut().find(|(n, _)| node.is_some() && *n == node) {
                    Some((_, indexes)) => indexes.push(i),
                    None => groups.push((node, vec![i])),
                }
            }
            let work = async {
                let pipelines =
                    groups.iter().map(|(_, indexes)| self.node_pipeline(conn.clone(), lookups, indexes));
                let answers = futures_util::future::join_all(pipelines).await;
                let mut rows: Vec<Option<Vec<Option<Vec<u8>>>>> = vec![None; lookups.len()];
                let mut refused = Vec::new();
                for ((_, indexes), answer) in groups.iter().zip(answers) {
                    for (&i, row) in indexes.iter().zip(answer) {
                        match row {
                            Some(row) => rows[i] = Some(row),
                            None => refused.push(i),
                        }
                    }
                }
                // Refused (a redirection, or a node that went away): each on its own, which
                // the client routes by following MOVED/ASK.
                let again = refused.iter().map(|&i| {
                    let mut conn = conn.clone();
                    async move {
                        redis::cmd("HMGET")
                            .arg(&lookups[i].key)
                            .arg(lookups[i].fields)
                            .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                            .await
                    }
                });
                let retried = futures_util::future::try_join_all(again).await?;
                for (&i, row) in refused.iter().zip(retried) {
                    rows[i] = Some(row);
                }
                Ok::<_, redis::RedisError>((rows, !refused.is_empty()))
            };
            let (rows, redirected) = self.bounded(work).await?;
            if redirected && !self.refreshing.swap(true, Ordering::AcqRel) {
                let mut conn = conn.clone();
                let _ = self.refresh_slots(&mut conn).await;
                self.refreshing.store(false, Ordering::Release);
            }
            // Natively, an absent key and a hash without these fields read the same.
            Ok(rows.into_iter().map(|row| Some(row.unwrap_or_default())).collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            // CLUSTER INFO from a node: answering is not enough, the cluster must serve
            // every slot.
            let info: String = self.bounded(redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn)).await?;
            if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                self.refresh_slots(&mut conn).await
            } else {
                Err(StoreError::Backend(format!("redis cluster {}: cluster_state is not ok", self.display)))
            }
        })
    }

    fn describe(&self) -> String {
        format!("redis cluster {}", self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_crc16_of_the_key_or_its_hash_tag() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn cluster_urls_name_seed_nodes_with_the_credentials() {
        assert!(is_cluster_url("redis+cluster://h:1") && is_cluster_url("rediss+cluster://h:1"));
        assert!(!is_cluster_url("redis://h:1"));
        assert_eq!(seed_urls("redis+cluster://a:7000,b:7001").unwrap(), ["redis://a:7000", "redis://b:7001"]);
        assert_eq!(
            seed_urls("rediss+cluster://fti:pw@a:7000, b:7001/").unwrap(),
            ["rediss://fti:pw@a:7000", "rediss://fti:pw@b:7001"]
        );
        assert!(seed_urls("redis+cluster://").is_err());
        assert!(seed_urls("redis+cluster://a:7000/1").is_err());
        assert!(seed_urls("redis+cluster://a").is_err());
        assert!(seed_urls("redis://a:1").is_err());
    }
}
