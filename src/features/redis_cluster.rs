//! Redis Cluster as the online store: the same layouts as a single Redis, keys spread over
//! the cluster's slots. A request's lookups go out at once, each routed to the primary
//! that owns its key's slot over one multiplexed connection per node, so they reach every
//! node concurrently and cost one round trip per node, in parallel. `MOVED` and `ASK`
//! (resharding) are followed by the client, which refreshes its slot map.
//!
//! Configured by a cluster URL: `redis+cluster://[user[:password]@]host:port[,host:port...]`
//! (seed nodes; the rest are discovered), or `rediss+cluster://...` over TLS.

use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::TlsCertificates;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;

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
    timeout: Duration,
    display: String,
}

impl ClusterStore {
    pub fn new(options: &RedisOptions) -> Result<ClusterStore, StoreError> {
        let display = redact_url(&options.url);
        let client = cluster_client(options)
            .map_err(|e| StoreError::Backend(format!("redis cluster {display}: {e}")))?;
        Ok(ClusterStore { client, conn: ArcSwapOption::empty(), timeout: options.timeout, display })
    }

    async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok(ClusterConnection::clone(&conn));
        }
        let conn = self.bounded(self.client.get_async_connection()).await?;
        self.conn.store(Some(std::sync::Arc::new(conn.clone())));
        Ok(conn)
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
            // Every HMGET at once: the client writes those for one node together on that
            // node's connection, and the nodes answer in parallel.
            let reads = lookups.iter().map(|lookup| {
                let mut conn = conn.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(&lookup.key)
                        .arg(lookup.fields)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                        .await
                }
            });
            let rows = self.bounded(futures_util::future::try_join_all(reads)).await?;
            Ok(rows.into_iter().map(Some).collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            // CLUSTER INFO from a node: answering is not enough, the cluster must serve
            // every slot.
            let info: String = self.bounded(redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn)).await?;
            if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                Ok(())
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
