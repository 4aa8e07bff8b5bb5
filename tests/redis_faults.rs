//! Redis faults against a real redis-server the test starts: killed under load and
//! restarted on the same port (each `on_error` policy), paused (slow), behind a password
//! and an ACL user, and over TLS with certificates the test generates.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Redis, Server, golden, materialize_example, redis_config};
use fti_serve::config::StoreErrorPolicy;
use serde_json::Value;
use tokio::sync::Mutex;

fn valid() -> Value {
    golden("fraud", 1)[0].request.clone()
}

/// One answer under load: when it was sent, how long it took, its status and body.
#[derive(Debug, Clone)]
struct Answer {
    sent: Instant,
    took: Duration,
    status: u16,
    body: Value,
}

/// Sends predictions back to back (bounded by `stop` and a 2-minute safety limit) and
/// records every answer.
fn load(server: &Server, stop: Arc<AtomicBool>) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<Answer>>>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (client, url, out) =
        (server.http.clone(), server.url("/v1/models/fraud/versions/1/predict"), answers.clone());
    let task = tokio::spawn(async move {
        let limit = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
            let sent = Instant::now();
            let response = client.post(&url).json(&valid()).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            out.lock().await.push(Answer { sent, took: sent.elapsed(), status, body });
        }
    });
    (task, answers)
}

async fn ready(server: &Server) -> (u16, Value) {
    server.get("/health/ready").await
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Kills Redis under load, checks the policy, readiness and the metric while it is down,
/// restarts it on the same port and checks serving resumes by itself.
async fn outage(policy: StoreErrorPolicy) {
    let mut redis = Redis::start();
    materialize_example(&redis).await;
    let mut config = redis_config(&redis);
    config.store.on_error = policy;
    config.store.redis.timeout_ms = 200;
    let timeout = Duration::from_millis(200);
    let server = Server::start(&config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (task, answers) = load(&server, stop.clone());
    assert!(
        common::eventually(Duration::from_secs(30), async || answers.lock().await.len() >= 20)
            .await
            .is_some()
    );

    redis.stop();
    let killed = Instant::now();
    let down = common::eventually(Duration::from_secs(30), async || ready(&server).await.0 == 503).await;
    assert!(down.is_some(), "readiness never showed the outage");
    let (_, body) = ready(&server).await;
    assert_eq!(body["store"]["up"], false, "{body}");
    assert_eq!(metric(&server.get_text("/metrics").await.1, "fti_store_up"), Some(0.0));
    // Let the outage last a while under load.
    let during = answers.lock().await.len();
    assert!(
        common::eventually(Duration::from_secs(30), async || answers.lock().await.len() >= during + 50)
            .await
            .is_some()
    );

    redis.restart();
    let back = Instant::now();
    // Nothing is persisted: the feature pipeline writes the card's activity again.
    let card = valid()["entities"]["cc_num"].as_str().unwrap().to_string();
    let _: () = redis::cmd("HSET")
        .arg(format!("fti:card_activity:{card}"))
        .arg(&["txn_count_1h", "1", "txn_count_24h", "2"][..])
        .query(&mut redis.conn())
        .unwrap();
    // Recovered: ready again, and answers read the store (the card's activity is found).
    let served_from_store = |a: &Answer| {
        a.sent > back
            && a.status == 200
            && !a.body["missing_features"].as_array().is_some_and(|m| m.iter().any(|f| f == "txn_count_1h"))
    };
    let recovered = common::eventually(Duration::from_secs(30), async || {
        ready(&server).await.0 == 200 && answers.lock().await.iter().rev().take(3).all(served_from_store)
    })
    .await
    .expect("serving never recovered");
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    assert!(recovered < Duration::from_secs(2), "recovery took {recovered:?} after Redis came back");
    assert_eq!(ready(&server).await.0, 200);

    let answers = answers.lock().await;
    let outage: Vec<&Answer> = answers.iter().filter(|a| a.sent > killed && a.sent < back).collect();
    assert!(outage.len() >= 50, "{} answers during the outage", outage.len());
    for a in &outage {
        // No request waits for a reconnect: the store timeout bounds every one (slack for
        // a busy 2-core machine, far below the reconnect delays it guards against).
        assert!(
            a.took < timeout + Duration::from_millis(300),
            "a request took {:?} during the outage",
            a.took
        );
        match policy {
            StoreErrorPolicy::Fail => {
                assert_eq!(
                    (a.status, a.body["code"].as_str()),
                    (503, Some("store_unavailable")),
                    "{:?}",
                    a.body
                );
            }
            StoreErrorPolicy::Defaults => {
                assert_eq!(a.status, 200, "{:?}", a.body);
                assert!(!a.body["missing_features"].as_array().unwrap().is_empty(), "{:?}", a.body);
            }
        }
    }
    // Most of them failed fast, without touching the dead connection.
    let fast = outage.iter().filter(|a| a.took < Duration::from_millis(50)).count();
    assert!(fast * 10 >= outage.len() * 9, "{fast} of {} answered fast", outage.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_fast_and_recovers() {
    outage(StoreErrorPolicy::Fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_serves_defaults_and_recovers() {
    outage(StoreErrorPolicy::Defaults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_cannot_hold_a_request_past_the_store_timeout_or_the_deadline() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let mut config = redis_config(&redis);
    config.store.redis.timeout_ms = 150;
    let server = Server::start(&config).await;
    assert_eq!(server.post("/v1/models/fraud/versions/1/predict", &valid()).await.0, 200);
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1_500).query(&mut redis.conn()).unwrap();
    let start = Instant::now();
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &valid()).await;
    let took = start.elapsed();
    assert_eq!((status, body["code"].as_str()), (503, Some("store_unavailable")), "{body}");
    assert!(took < Duration::from_millis(150 + 300), "took {took:?} with a 150 ms store timeout");

    // The request deadline holds when it is shorter than the store timeout.
    let mut config = redis_config(&redis);
    config.store.redis.timeout_ms = 5_000;
    let server = Server::start(&config).await;
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1_500).query(&mut redis.conn()).unwrap();
    let start = Instant::now();
    let response = server
        .http
        .post(server.url("/v1/models/fraud/versions/1/predict"))
        .header("x-request-timeout-ms", "200")
        .json(&valid())
        .send()
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(response.status().as_u16(), 504);
    assert!(took < Duration::from_millis(200 + 300), "took {took:?} with a 200 ms deadline");

    // gRPC: the client's grpc-timeout is the deadline.
    use fti_serve::grpc::pb::fti as pb;
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1_500).query(&mut redis.conn()).unwrap();
    let mut client = pb::prediction_service_client::PredictionServiceClient::connect(format!(
        "http://{}",
        server.grpc_addr
    ))
    .await
    .unwrap();
    let row = common::grpc_row(&valid());
    let mut request = tonic::Request::new(pb::PredictRequest {
        target: Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() }),
        row: Some(row),
        return_features: false,
        request_id: Default::default(),
    });
    request.set_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let status = client.predict(request).await.unwrap_err();
    // The server answers DEADLINE_EXCEEDED 2 ms before the deadline, counted from the
    // request's arrival; the tonic client also enforces the deadline itself, from the
    // moment it sent, and on a busy machine its own timer can fire first (CANCELLED,
    // "Timeout expired"). Either way nobody waited past the deadline.
    assert!(matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{status:?}");
    assert!(start.elapsed() < Duration::from_millis(200 + 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_and_an_acl_user_from_a_file() {
    let redis = Redis::start_with(
        &["--requirepass", "admin-secret", "--user", "fti", "on", ">reader-secret", "~*", "+@read", "+ping"],
        false,
    );
    // The feature pipeline writes as the default user.
    let mut writer = redis_config(&redis);
    writer.store.redis.url = format!("redis://:admin-secret@127.0.0.1:{}", redis.port);
    common::materialize_into(&writer.store.redis.url).await;
    // The server reads as the ACL user, its password in a file, not in the config.
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "reader-secret\n").unwrap();
    let mut config = redis_config(&redis);
    config.store.redis.url = format!("redis://fti@127.0.0.1:{}", redis.port);
    config.store.redis.password_file = Some(password.clone());
    let server = Server::start(&config).await;
    let g = &golden("fraud", 1)[0];
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &g.request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["missing_features"], serde_json::json!(g.missing_features), "{body}");
    assert_eq!(ready(&server).await.0, 200);
    assert!(!format!("{config:?}").contains("reader-secret"));

    // A wrong password: not ready, and requests follow the policy.
    std::fs::write(&password, "wrong\n").unwrap();
    let server = Server::start(&config).await;
    let (status, body) = ready(&server).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &g.request).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("store_unavailable")), "{body}");
    assert!(!body.to_string().contains("wrong"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(dir.path());
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let redis = Redis::start_with(
        &[
            "--port",
            "0",
            "--tls-port",
            "{port}",
            "--tls-cert-file",
            &cert_s,
            "--tls-key-file",
            &key_s,
            "--tls-ca-cert-file",
            &cert_s,
            "--tls-auth-clients",
            "no",
        ],
        false,
    );
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    // Write one card's activity over TLS with the test's own client.
    let pem = std::fs::read(&cert).unwrap();
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates { client_tls: None, root_cert: Some(pem) },
    )
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let request = valid();
    let card = request["entities"]["cc_num"].as_str().unwrap();
    common::write_card_activity(&mut conn, card).await;

    let mut config = redis_config(&redis);
    config.store.redis.url = url;
    config.store.redis.ca_file = Some(cert.clone());
    let server = Server::start(&config).await;
    assert_eq!(ready(&server).await.0, 200);
    let mut with_features = request.clone();
    with_features["return_features"] = true.into();
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &with_features).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["features"]["txn_count_1h"], 3.0, "{body}");
    assert_eq!(body["features"]["txn_count_24h"], 7.0, "{body}");
    let missing = body["missing_features"].as_array().unwrap();
    assert!(!missing.iter().any(|m| m == "txn_count_1h"), "{body}");

    // Without the CA the server does not trust it: not ready, nothing served from it.
    let mut untrusting = redis_config(&redis);
    untrusting.store.redis.url = format!("rediss://127.0.0.1:{}", redis.port);
    untrusting.store.redis.ca_file = None;
    let server = Server::start(&untrusting).await;
    assert_eq!(ready(&server).await.0, 503);
}
