//! Slow and idle clients, the connection cap, and graceful drain, against the server as a
//! real process (its own file descriptors and memory, a real SIGTERM).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ChildServer, golden};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn example() -> std::path::PathBuf {
    common::repo().join("config/example.toml")
}

fn valid() -> Value {
    golden("fraud", 1)[0].request.clone()
}

/// Opens a connection that sends the start of a request and then one header line every
/// 200 ms, never finishing; returns how long after it was connected the server closed it
/// (or `None` if it was still open after `limit`). Timed from the connect's completion:
/// the server's timer starts at accept, which cannot come before it.
async fn slow_client(addr: std::net::SocketAddr, limit: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let start = Instant::now();
    if stream.write_all(b"POST /v1/models/fraud/predict HTTP/1.1\r\nhost: x\r\n").await.is_err() {
        return Some(start.elapsed());
    }
    let mut buf = [0u8; 512];
    while start.elapsed() < limit {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Closed (0) or reset: the server let go of us. An answer (408 or the
                // like) before closing is fine too.
                Ok(0) | Err(_) => return Some(start.elapsed()),
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b"x-slow: 1\r\n").await.is_err() {
                    return Some(start.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_slow_clients_are_closed_on_time_while_others_are_served() {
    let server = ChildServer::start(
        &example(),
        &[("FTI__SERVER__HEADER_READ_TIMEOUT_MS", "20000"), ("FTI__SERVER__MAX_CONNECTIONS", "5000")],
    );
    let http = common::http_client();
    assert_eq!(
        http.post(server.url("/v1/models/fraud/predict")).json(&valid()).send().await.unwrap().status(),
        200
    );
    let (fds_before, rss_before) = (server.open_fds(), server.rss_kib());

    const SLOW: usize = 2_000;
    // This machine's loopback takes new connections at a few hundred a second (SYNs of a
    // burst are dropped and retried after a second), so they arrive in batches, each
    // accepted before the next, and the timeout is long enough for all to be open at once.
    const BATCH: usize = 200;
    let limit = Duration::from_secs(60);
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(SLOW);
    for batch in 0..SLOW / BATCH {
        for _ in 0..BATCH {
            let (addr, opened) = (server.http, opened.clone());
            tasks.push(tokio::spawn(async move {
                opened.fetch_add(1, Ordering::Relaxed);
                slow_client(addr, limit).await
            }));
        }
        let want = fds_before + (batch + 1) * BATCH;
        let accepted = common::eventually(Duration::from_secs(15), async || server.open_fds() >= want).await;
        assert!(
            accepted.is_some(),
            "batch {batch} was not accepted ({} fds, want {want})",
            server.open_fds()
        );
    }
    let (mut peak_fds, mut peak_rss) = (server.open_fds(), server.rss_kib());
    for _ in 0..50 {
        let response = http.post(server.url("/v1/models/fraud/predict")).json(&valid()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        peak_fds = peak_fds.max(server.open_fds());
        peak_rss = peak_rss.max(server.rss_kib());
    }
    let mut closed_after = Vec::with_capacity(SLOW);
    for task in tasks {
        closed_after.push(task.await.unwrap().expect("a slow client was never closed"));
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[SLOW - 1]);
    println!(
        "slow clients closed after {first:?} .. {last:?}; peak fds {peak_fds}, peak RSS {peak_rss} KiB (before: {fds_before} fds, {rss_before} KiB)"
    );
    // Closed by the header read timeout: not before it, and not long after it.
    assert!(first >= Duration::from_millis(19_900), "closed after {first:?}, before the 20 s timeout");
    assert!(last <= Duration::from_secs(30), "the last slow client was closed only after {last:?}");
    // Descriptors are given back, and memory stayed bounded: a few KiB per connection.
    let released =
        common::eventually(Duration::from_secs(30), async || server.open_fds() <= fds_before + 10).await;
    assert!(released.is_some(), "{} fds still open (before: {fds_before})", server.open_fds());
    assert!(
        peak_rss <= rss_before + 128 * 1024,
        "RSS grew from {rss_before} to {peak_rss} KiB for {SLOW} connections"
    );
    assert_eq!(opened.load(Ordering::Relaxed), SLOW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_and_the_grpc_preface_deadline_hold() {
    let server = ChildServer::start(
        &example(),
        &[("FTI__SERVER__MAX_CONNECTIONS", "50"), ("FTI__SERVER__HEADER_READ_TIMEOUT_MS", "1000")],
    );
    // 50 idle connections fill the HTTP listener; the 51st is closed at once.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(server.http).await.unwrap());
    }
    let accepted_all = common::eventually(Duration::from_secs(10), async || {
        let mut extra = TcpStream::connect(server.http).await.unwrap();
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_millis(500), extra.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    })
    .await;
    assert!(accepted_all.is_some(), "a connection over the cap was not closed");
    drop(idle);
    // Once they are gone (closed by us or by the idle timeout), clients are served again.
    let served = common::eventually(Duration::from_secs(10), async || {
        common::http_client().get(server.url("/health/live")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served.is_some());
    let metrics =
        common::http_client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"fti_connections_refused_total{transport="http"}"#), "{metrics}");

    // gRPC: a connection that never sends the HTTP/2 preface is closed after the header
    // read timeout.
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.grpc).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // the server's own SETTINGS frame
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent gRPC connection was never closed");
    assert!(start.elapsed() >= Duration::from_millis(900), "closed after {:?}", start.elapsed());
}

/// A prediction over gRPC, for requests in flight across the drain.
async fn grpc_predict(addr: std::net::SocketAddr) -> Result<(), tonic::Status> {
    use fti_serve::grpc::pb::fti as pb;
    let mut client =
        pb::prediction_service_client::PredictionServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let row = common::grpc_row(&valid());
    let target = Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() });
    client
        .predict(pb::PredictRequest { target, row: Some(row), return_features: false, ..Default::default() })
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_without_failing_an_accepted_request() {
    let redis = common::Redis::start();
    common::materialize_example(&redis).await;
    let mut server = ChildServer::start(
        &example(),
        &[
            ("FTI_REDIS_URL", redis.url().as_str()),
            ("FTI__STORE__REDIS__TIMEOUT_MS", "10000"),
            ("FTI__SERVER__REQUEST_TIMEOUT_MS", "10000"),
            ("FTI__SERVER__DRAIN_GRACE_MS", "2000"),
            ("FTI__SERVER__DRAIN_TIMEOUT_MS", "20000"),
        ],
    );
    // Steady load until readiness turns 503, as a load balancer would see it: every one of
    // these requests must be answered 200.
    common::install_crypto();
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let not_ready = Arc::new(AtomicBool::new(false));
    let (ok, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), server.url("/v1/models/fraud/predict"));
            let (not_ready, ok, failures) = (not_ready.clone(), ok.clone(), failures.clone());
            tokio::spawn(async move {
                let limit = Instant::now() + Duration::from_secs(60);
                while !not_ready.load(Ordering::Relaxed) && Instant::now() < limit {
                    match client.post(&url).json(&valid()).send().await {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    assert!(
        common::eventually(Duration::from_secs(30), async || ok.load(Ordering::Relaxed) >= 200)
            .await
            .is_some()
    );

    server.terminate();
    let readiness = common::eventually(Duration::from_secs(5), async || {
        client.get(server.url("/health/ready")).send().await.is_ok_and(|r| r.status() == 503)
    })
    .await;
    not_ready.store(true, Ordering::Relaxed);
    assert!(readiness.is_some(), "readiness did not turn 503 after SIGTERM");
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        failures.lock().unwrap().is_empty(),
        "requests failed before the drain: {:?}",
        failures.lock().unwrap()
    );

    // Within the grace period: requests are still served; then some are held in flight
    // (Redis paused) across the moment the listeners close.
    let (status, _) = (
        client.post(server.url("/v1/models/fraud/predict")).json(&valid()).send().await.unwrap().status(),
        (),
    );
    assert_eq!(status, 200, "a request during the grace period was not served");
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(4_000).query(&mut redis.conn()).unwrap();
    let held_http: Vec<_> = (0..3)
        .map(|_| {
            let (client, url) = (client.clone(), server.url("/v1/models/fraud/predict"));
            tokio::spawn(
                async move { client.post(url).json(&valid()).send().await.map(|r| r.status().as_u16()) },
            )
        })
        .collect();
    let held_grpc: Vec<_> = (0..2).map(|_| tokio::spawn(grpc_predict(server.grpc))).collect();
    // The listener closes while they wait.
    let closed =
        common::eventually(Duration::from_secs(10), async || TcpStream::connect(server.http).await.is_err())
            .await;
    assert!(closed.is_some(), "the HTTP listener never closed");
    for h in held_http {
        assert_eq!(
            h.await.unwrap().map_err(|e| format!("{e:?}")),
            Ok(200),
            "an in-flight HTTP request failed"
        );
    }
    for g in held_grpc {
        assert_eq!(
            g.await.unwrap().map_err(|e| format!("{e:?}")),
            Ok(()),
            "an in-flight gRPC request failed"
        );
    }
    let (status, log) =
        tokio::task::spawn_blocking(move || (server.wait_exit(Duration::from_secs(30)), server.log()))
            .await
            .unwrap();
    let status = status.unwrap_or_else(|| panic!("the server did not exit within 30 s: {log:?}"));
    assert!(status.success(), "exit status {status}: {log:?}");
    assert!(log.iter().any(|l| l.contains("drained; exiting")), "{log:?}");
}
