//! Redis Cluster as the online store, against a real cluster of three primaries the test
//! starts (password-protected): features materialized into it spread over the nodes, the
//! golden answers are served from it, and while slots move between nodes under load
//! (`redis-cli --cluster reshard`: MOVED and ASK redirections) no request fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Redis, Server, assert_outputs, golden};
use fti_serve::config::{Config, StoreKind};

const PASSWORD: &str = "cluster-secret-0123";

/// Three cluster-enabled redis-servers joined into one cluster (all slots covered).
struct Cluster {
    nodes: Vec<Redis>,
    /// The certificate of a TLS cluster (clients, the bus and replication all over TLS).
    tls: Option<(std::path::PathBuf, tempfile::TempDir)>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(3, 0, false)
    }

    /// `primaries` primaries, each with `replicas` replicas; a primary that stops
    /// answering for a second is failed over. With `tls`, every connection is TLS.
    fn start_with(primaries: usize, replicas: usize, tls: bool) -> Cluster {
        let tls = tls.then(|| {
            let dir = tempfile::tempdir().unwrap();
            (common::self_signed_cert(dir.path()).0, dir)
        });
        let tls_args: Vec<String> = match &tls {
            None => Vec::new(),
            Some((cert, dir)) => {
                let (cert, key) =
                    (cert.display().to_string(), dir.path().join("key.pem").display().to_string());
                [
                    "--port",
                    "0",
                    "--tls-port",
                    "{port}",
                    "--tls-cert-file",
                    &cert,
                    "--tls-key-file",
                    &key,
                    "--tls-ca-cert-file",
                    &cert,
                    "--tls-auth-clients",
                    "no",
                    "--tls-cluster",
                    "yes",
                    "--tls-replication",
                    "yes",
                ]
                .map(String::from)
                .to_vec()
            }
        };
        let nodes: Vec<Redis> = (0..primaries * (1 + replicas))
            .map(|_| {
                // The cluster bus gets a port of its own (redis 7: cluster-port), so that
                // port + 10000 need not be free; the harness probes it afresh on each try.
                let mut args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
                args.extend_from_slice(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    "{bus}",
                    "--requirepass",
                    PASSWORD,
                    "--masterauth",
                    PASSWORD,
                    "--cluster-node-timeout",
                    "1000",
                ]);
                Redis::start_with(&args, false)
            })
            .collect();
        let mut args: Vec<String> = ["-a", PASSWORD, "--no-auth-warning"].map(String::from).to_vec();
        if let Some((cert, _)) = &tls {
            args.extend(["--tls".to_string(), "--cacert".into(), cert.display().to_string()]);
        }
        args.extend(["--cluster".to_string(), "create".into()]);
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend(["--cluster-replicas".to_string(), replicas.to_string(), "--cluster-yes".to_string()]);
        let out = Command::new("redis-cli").args(&args).output().expect("redis-cli");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = Cluster { nodes, tls };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster
            .nodes
            .iter()
            .all(|n| cluster.cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not reach cluster_state:ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn cli(&self, port: u16, command: &[&str]) -> String {
        let mut cli = Command::new("redis-cli");
        cli.args(["-a", PASSWORD, "--no-auth-warning", "-p", &port.to_string()]);
        if let Some((cert, _)) = &self.tls {
            cli.arg("--tls").arg("--cacert").arg(cert);
        }
        let out = cli.args(command).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis+cluster://` with the password and two of the three nodes as seeds (the
    /// third is discovered).
    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss+cluster" } else { "redis+cluster" };
        format!("{scheme}://:{PASSWORD}@127.0.0.1:{},127.0.0.1:{}", self.nodes[0].port, self.nodes[1].port)
    }

    /// Waits until every replica's link to its primary is up (a replica that never
    /// synced cannot be failed over to).
    fn wait_replicas_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = self.nodes.iter().all(|n| {
                let info = self.cli(n.port, &["INFO", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync with their primaries");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node index of a primary that serves slots.
    fn a_primary(&self) -> usize {
        let nodes = self.cli(self.nodes[0].port, &["CLUSTER", "NODES"]);
        let line = nodes
            .lines()
            .find(|l| l.contains("master") && !l.contains("fail") && l.split(' ').count() > 8)
            .expect("a primary with slots");
        let port: u16 = line.split(' ').nth(1).unwrap().split(['@', ':']).nth(1).unwrap().parse().unwrap();
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    fn keys_on(&self, i: usize) -> usize {
        self.cli(self.nodes[i].port, &["DBSIZE"]).trim().parse().unwrap()
    }
}

/// The example's config with the cluster as its online store.
fn cluster_config(url: String) -> Config {
    let mut config = common::example_config();
    config.store.kind = StoreKind::Redis;
    config.store.redis.url = url;
    config.store.memory.files.clear();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_the_golden_answers_and_follows_resharding_under_load() {
    let cluster = Cluster::start();
    common::materialize_into(&cluster.url()).await;
    let spread: Vec<usize> = (0..3).map(|i| cluster.keys_on(i)).collect();
    assert!(spread.iter().all(|&n| n > 0), "keys not spread over the nodes: {spread:?}");

    let mut config = cluster_config(cluster.url());
    config.store.redis.timeout_ms = 1000;
    // The slot map is read at the first health check and then only when a node redirects
    // a lookup: after the reshard, lookups grouped by the old map must be redirected.
    config.store.redis.health_interval_ms = 600_000;
    let server = Arc::new(Server::start(&config).await);
    let ready =
        common::eventually(Duration::from_secs(20), async || server.get("/health/ready").await.0 == 200)
            .await;
    assert!(ready.is_some(), "not ready against the cluster: {:?}", server.get("/health/ready").await);

    for (i, g) in golden("fraud", 2).iter().enumerate() {
        let (status, body) = server.post("/v1/models/fraud/versions/2/predict", &g.request).await;
        assert_eq!(status, 200, "row {i}: {body}");
        assert_outputs(&body["outputs"], &g.outputs, &format!("row {i}"));
        let mut missing: Vec<&str> =
            body["missing_features"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        missing.sort_unstable();
        let mut want: Vec<&str> = g.missing_features.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(missing, want, "row {i}");
    }

    // Move a third of the slots from node 0 to node 1 while requests flow.
    let requests = golden("fraud", 2);
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (server, sent, failed, done) = (server.clone(), sent.clone(), failed.clone(), done.clone());
        tokio::spawn(async move {
            let mut i = 0;
            // Bounded: until the resharding is over, and 20,000 requests at most.
            while !done.load(Ordering::Relaxed) && i < 20_000 {
                let (status, body) = server
                    .post("/v1/models/fraud/versions/2/predict", &requests[i % requests.len()].request)
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                let want_missing = requests[i % requests.len()].missing_features.len();
                let missing = body["missing_features"].as_array().map(Vec::len);
                if status != 200 || missing != Some(want_missing) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("during resharding: {status} {body}");
                }
                i += 1;
            }
        })
    };
    let from = cluster.cli(cluster.nodes[0].port, &["CLUSTER", "MYID"]).trim().to_string();
    let to = cluster.cli(cluster.nodes[1].port, &["CLUSTER", "MYID"]).trim().to_string();
    let before = cluster.keys_on(1);
    let port = cluster.nodes[0].port;
    let reshard = tokio::task::spawn_blocking(move || {
        Command::new("redis-cli")
            .args(["-a", PASSWORD, "--no-auth-warning", "--cluster", "reshard", &format!("127.0.0.1:{port}")])
            .args(["--cluster-from", &from, "--cluster-to", &to, "--cluster-slots", "1800", "--cluster-yes"])
            .args(["--cluster-pipeline", "5"])
            .output()
            .expect("redis-cli")
    })
    .await
    .unwrap();
    done.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(reshard.status.success(), "reshard: {}", String::from_utf8_lossy(&reshard.stdout));
    let after = cluster.keys_on(1);
    assert!(after > before, "no keys moved to node 1 ({before} -> {after})");
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent >= 50, "only {sent} requests ran during the resharding");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while slots moved");

    // And after it, all rows in one batch: its keys grouped by the slot map read before
    // the reshard, so the moved ones are refused by their old node and sent again.
    let requests = golden("fraud", 2);
    let rows: Vec<serde_json::Value> = requests.iter().map(|g| g.request.clone()).collect();
    let (status, body) =
        server.post("/v1/models/fraud/versions/2/predict", &serde_json::json!({ "rows": rows })).await;
    assert_eq!(status, 200, "the batch after resharding: {body}");
    for (i, g) in requests.iter().enumerate() {
        let row = &body["predictions"][i];
        assert_outputs(&row["outputs"], &g.outputs, &format!("row {i} after resharding"));
        assert_eq!(
            row["missing_features"].as_array().map(Vec::len),
            Some(g.missing_features.len()),
            "row {i}"
        );
    }
}

#[tokio::test]
async fn a_wrong_cluster_password_is_not_ready_and_says_so() {
    let cluster = Cluster::start();
    let config = cluster_config(cluster.url().replace(PASSWORD, "wrong-password"));
    let server = Server::start(&config).await;
    let (status, body) = server.get("/health/ready").await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = server.post("/v1/models/fraud/predict", &golden("fraud", 2)[0].request).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("wrong-password"), "the password leaked: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_fails_over_to_its_replica_and_serving_recovers_without_a_restart() {
    let mut cluster = Cluster::start_with(3, 1, false);
    common::materialize_into(&cluster.url()).await;
    let mut config = cluster_config(cluster.url());
    config.store.redis.timeout_ms = 200;
    config.store.redis.health_interval_ms = 200;
    let server = Arc::new(Server::start(&config).await);
    let ready =
        common::eventually(Duration::from_secs(20), async || server.get("/health/ready").await.0 == 200);
    assert!(ready.await.is_some(), "not ready against the cluster");

    let requests = golden("fraud", 2);
    cluster.wait_replicas_synced();
    let victim = cluster.a_primary();
    let killed_at = Instant::now();
    cluster.nodes[victim].stop();
    // Requests keep going; while the slots of the dead primary have no owner they fail
    // fast (503, counted), and once its replica is promoted they succeed again.
    let (mut failed, mut sent) = (0usize, 0usize);
    let mut recovered_at = None;
    let mut streak = 0;
    while killed_at.elapsed() < Duration::from_secs(30) {
        let (status, _) = server
            .post("/v1/models/fraud/versions/2/predict", &requests[sent % requests.len()].request)
            .await;
        sent += 1;
        if status == 200 {
            streak += 1;
            if streak == 100 {
                recovered_at = Some(killed_at.elapsed());
                break;
            }
        } else {
            assert_eq!(status, 503, "a store failure is a 503");
            failed += 1;
            streak = 0;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if recovered_at.is_none() {
        let alive = cluster.nodes.iter().position(|n| n.port != cluster.nodes[victim].port).unwrap();
        eprintln!("ready: {:?}", server.get("/health/ready").await);
        eprintln!("{}", cluster.cli(cluster.nodes[alive].port, &["CLUSTER", "NODES"]));
        eprintln!("{}", cluster.cli(cluster.nodes[alive].port, &["CLUSTER", "INFO"]));
    }
    let recovered =
        recovered_at.unwrap_or_else(|| panic!("no recovery within 30 s ({failed} of {sent} failed)"));
    eprintln!("failover: {failed} of {sent} requests failed; serving again {recovered:?} after the kill");
    let (_, metrics) = server.get_text("/metrics").await;
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("fti_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted >= 1.0, "the outage is not in fti_store_errors_total:\n{metrics}");
    assert_eq!(server.get("/health/ready").await.0, 200, "ready again after the failover");
    for (i, g) in requests.iter().enumerate() {
        let (status, body) = server.post("/v1/models/fraud/versions/2/predict", &g.request).await;
        assert_eq!(status, 200, "row {i} after the failover: {body}");
        assert_outputs(&body["outputs"], &g.outputs, &format!("row {i} after the failover"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_serves_with_the_configured_ca_and_not_without_it() {
    let cluster = Cluster::start_with(3, 0, true);
    let (cert, _) = cluster.tls.as_ref().unwrap();
    let mut config = cluster_config(cluster.url());
    config.store.redis.ca_file = Some(cert.clone());
    // One card's activity, written over TLS by the server's own cluster client.
    let options = fti_serve::features::redis::RedisOptions {
        url: cluster.url(),
        password: None,
        ca_pem: Some(std::fs::read(cert).unwrap()),
        timeout: Duration::from_secs(5),
    };
    let client = fti_serve::features::redis_cluster::cluster_client(&options).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let g = &golden("fraud", 2)[0];
    let card = g.request["entities"]["cc_num"].as_str().unwrap().to_string();
    common::write_card_activity(&mut conn, &card).await;
    let server = Server::start(&config).await;
    let ready =
        common::eventually(Duration::from_secs(20), async || server.get("/health/ready").await.0 == 200);
    assert!(ready.await.is_some(), "not ready against the TLS cluster");
    let mut request = g.request.clone();
    request["return_features"] = true.into();
    let (status, body) = server.post("/v1/models/fraud/versions/2/predict", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["features"]["txn_count_1h"], 3.0, "{body}");

    config.store.redis.ca_file = None;
    let untrusting = Server::start(&config).await;
    assert_eq!(untrusting.get("/health/ready").await.0, 503, "a TLS cluster it cannot verify is not ready");
}

#[tokio::test]
async fn a_cluster_url_without_a_port_is_refused_naming_the_key() {
    let Err(err) = fti_serve::app::App::build(&cluster_config("redis+cluster://127.0.0.1".into())).await
    else {
        panic!("a cluster URL without a port was accepted");
    };
    let message = err.to_string();
    assert!(message.contains("store.redis.url") && message.contains("host:port"), "{message}");
}
