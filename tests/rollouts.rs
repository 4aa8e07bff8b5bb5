//! Shadows and guards: a shadow runs off the response path and is compared (drops counted
//! when its queue is full); a guard ends a canary or shadow that misbehaves (non-finite
//! outputs, a slow p99, label disagreement) while production answers every request, and a
//! second replica of the registry follows.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{ADMIN_TOKEN, Server};
use serde_json::{Value, json};
use sha2::Digest;

fn config(registry: &Path) -> fti_serve::config::Config {
    let mut config = common::example_config();
    config.registry.path = registry.to_path_buf();
    config.registry.poll_interval_ms = 200;
    config.registry.keep_latest = 0;
    config.admin.token = Some(fti_serve::secret::Secret::new(ADMIN_TOKEN));
    config
}

/// Version `new`: version 1's manifest (its feature view) in front of another graph, and
/// optionally another output table.
fn add_graph_version(registry: &Path, new: u64, graph: &str, outputs: Option<Value>) {
    common::add_version_copy(registry, 1, new);
    let dir = registry.join(format!("fraud/{new}"));
    let bytes = std::fs::read(common::repo().join("tests/fixtures").join(graph)).unwrap();
    std::fs::write(dir.join("model.onnx"), &bytes).unwrap();
    let path = dir.join("manifest.toml");
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["model"]
        .as_table_mut()
        .unwrap()
        .insert("sha256".into(), hex::encode(sha2::Sha256::digest(&bytes)).into());
    if let Some(outputs) = outputs {
        m.insert("outputs".into(), toml::Value::try_from(outputs).unwrap());
    }
    std::fs::write(&path, toml::to_string(&m).unwrap()).unwrap();
}

/// Labels always 1: version 1's graph with a threshold of 0 on its probability.
fn always_fraud_outputs() -> Value {
    json!([
        {"name": "probability", "tensor": "probabilities", "column": 1},
        {"name": "label", "tensor": "probabilities", "column": 1, "threshold": 0.0},
    ])
}

async fn step(server: &Server, step: &str, body: Value) -> Value {
    let (status, answer) = server.admin(&format!("/v1/admin/models/fraud/rollout/{step}"), &body).await;
    assert_eq!(status, 200, "{step}: {answer}");
    answer
}

/// Predict requests (version 1's golden requests, in turn) from two tasks until stopped,
/// bounded in count; every answer must be a 200 from the `allowed` versions.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(server: &Server, allowed: &'static [u64]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let requests: Vec<Value> = common::golden("fraud", 1).into_iter().map(|g| g.request).collect();
        let tasks = (0..2)
            .map(|t| {
                let (stop, sent, requests) = (Arc::clone(&stop), Arc::clone(&sent), requests.clone());
                let (http, url) = (server.http.clone(), server.url("/v1/models/fraud/predict"));
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < 50_000 {
                        let response =
                            http.post(&url).json(&requests[i % requests.len()]).send().await.unwrap();
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let version = body["version"].as_u64().unwrap_or(0);
                        if status != 200 || !allowed.contains(&version) {
                            failures.push(format!("{status} v{version}: {body}"));
                        }
                        i += 2;
                    }
                    failures
                })
            })
            .collect();
        Load { stop, sent, tasks }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.await.unwrap());
        }
        assert!(failures.is_empty(), "{} failed: {:?}", failures.len(), &failures[..failures.len().min(3)]);
        self.sent.load(Ordering::Relaxed)
    }
}

async fn rollout(server: &Server) -> Value {
    server.get("/v1/models/fraud").await.1["rollouts"]["production"].clone()
}

async fn metric(server: &Server, series: &str) -> f64 {
    let (_, text) = server.get_text("/metrics").await;
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

async fn last_move(server: &Server) -> Value {
    let response = server
        .http
        .get(server.url("/v1/admin/models/fraud/history"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let history: Value = response.json().await.unwrap();
    history["history"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_is_compared_off_the_response_path_and_its_drops_counted() {
    let registry = common::registry_copy();
    common::add_version_copy(registry.path(), 1, 3);
    add_graph_version(registry.path(), 4, "slow.onnx", None);
    let mut config = config(registry.path());
    config.inference.shadow_queue = 1;
    let server = Server::start(&config).await;
    server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1})).await;

    // A shadow identical to production: compared on the same input vector, no difference.
    let started = step(&server, "shadow", json!({"version": 3})).await;
    assert_eq!(started["shadow"]["version"], 3);
    for case in common::golden("fraud", 1) {
        let (status, body) = server.post("/v1/models/fraud/predict", &case.request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], 1);
        common::assert_outputs(&body["outputs"], &case.outputs, "stable answer with a shadow");
    }
    // Every run is accounted for (the queue holds one: under a busy machine the lowest-
    // priority worker may fall behind and drop), and what was compared did not differ.
    let accounted = common::eventually(Duration::from_secs(30), async || {
        let f = rollout(&server).await["figures"]["shadow"].clone();
        f["compared"].as_u64().unwrap_or(0) + f["dropped"].as_u64().unwrap_or(0) == 30
    })
    .await;
    assert!(accounted.is_some(), "{}", rollout(&server).await);
    let figures = rollout(&server).await["figures"]["shadow"].clone();
    assert!(figures["compared"].as_u64() >= Some(1), "{figures}");
    assert_eq!(
        (figures["disagreed"].as_u64(), figures["max_abs_diff"].as_f64()),
        (Some(0), Some(0.0)),
        "{figures}"
    );
    let ok = metric(&server, r#"fti_shadow_runs_total{model="fraud",outcome="ok",version="3"}"#).await;
    assert_eq!(Some(ok as u64), figures["compared"].as_u64());

    // A shadow many times slower behind a queue of one: answers never wait for it; the
    // runs it cannot take are dropped and counted.
    step(&server, "stop-shadow", json!({})).await;
    step(&server, "shadow", json!({"version": 4, "sample": 1.0})).await;
    let load = Load::start(&server, &[1]);
    let dropped = common::eventually(Duration::from_secs(60), async || {
        metric(&server, r#"fti_shadow_runs_total{model="fraud",outcome="dropped",version="4"}"#).await >= 20.0
    })
    .await;
    load.finish().await;
    assert!(dropped.is_some(), "no drops counted");
    let figures = rollout(&server).await["figures"]["shadow"].clone();
    assert!(figures["dropped"].as_u64() >= Some(20), "{figures}");

    // The CLI shows the same live figures, read from the replica.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .args(["models", "show", "fraud", "--server", &server.url("")])
        .arg("--registry")
        .arg(registry.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("shadow -> 4 on 100% of requests"), "{text}");
    assert!(text.contains("live figures of production over the last 60 s"), "{text}");
    assert!(text.contains("shadow  compared"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_pulls_a_canary_with_non_finite_outputs_and_replicas_follow() {
    let registry = common::registry_copy();
    add_graph_version(registry.path(), 5, "sometimes_nan.onnx", None);
    let server = Server::start(&config(registry.path())).await;
    let replica = Server::start(&config(registry.path())).await;
    server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1})).await;
    step(&server, "guard", json!({"guard": {"window_s": 30, "non_finite": true}})).await;
    step(&server, "canary", json!({"version": 5, "weight": 0.5})).await;
    let on_replica = common::eventually(Duration::from_secs(10), async || {
        rollout(&replica).await["canary"]["canary"] == 5
    })
    .await;
    assert!(on_replica.is_some(), "the replica never saw the canary");
    // The guard and a shadow converge the same way.
    assert_eq!(rollout(&replica).await["guard"]["window_s"], 30);
    step(&server, "shadow", json!({"version": 5, "sample": 0.000001})).await;
    let shadowed = common::eventually(Duration::from_secs(10), async || {
        rollout(&replica).await["shadow"]["version"] == 5
    })
    .await;
    assert!(shadowed.is_some(), "the replica never saw the shadow");

    let load = Load::start(&server, &[1, 5]);
    let tripped =
        common::eventually(Duration::from_secs(30), async || rollout(&server).await["canary"].is_null())
            .await;
    let sent = load.finish().await;
    assert!(tripped.is_some(), "the guard did not trip: {}", rollout(&server).await);
    assert!(sent > 0);
    let last = last_move(&server).await;
    assert_eq!(
        (last["action"].as_str(), last["by"].as_str(), last["to"].as_u64()),
        (Some("abort"), Some("guard"), Some(5))
    );
    assert!(last["reason"].as_str().unwrap().contains("non_finite"), "{last}");
    let trips = r#"fti_rollout_guard_trips_total{alias="production",model="fraud",rule="non_finite"}"#;
    assert_eq!(metric(&server, trips).await, 1.0);
    // Production never moved, and the replica drops the canary too.
    assert_eq!(server.get("/v1/models/fraud").await.1["aliases"]["production"], 1);
    let followed = common::eventually(Duration::from_secs(10), async || {
        let r = rollout(&replica).await;
        r["canary"].is_null() && r["shadow"].is_null()
    })
    .await;
    assert!(followed.is_some(), "the replica kept the canary or the shadow");
    assert_eq!(rollout(&replica).await["guard"]["window_s"], 30, "the guard stays for the next canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_pulls_a_slow_canary_and_a_disagreeing_shadow() {
    let registry = common::registry_copy();
    add_graph_version(registry.path(), 4, "slow.onnx", None);
    add_graph_version(registry.path(), 6, "../../models/fraud/1/model.onnx", Some(always_fraud_outputs()));
    let server = Server::start(&config(registry.path())).await;
    server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1})).await;

    let guard =
        json!({"window_s": 30, "min_requests": 20, "max_p99_increase_pct": 100.0, "max_disagreement": 0.5});
    step(&server, "guard", json!({"guard": guard})).await;
    step(&server, "canary", json!({"version": 4, "weight": 0.5})).await;
    let load = Load::start(&server, &[1, 4]);
    let tripped =
        common::eventually(Duration::from_secs(60), async || rollout(&server).await["canary"].is_null())
            .await;
    load.finish().await;
    assert!(tripped.is_some(), "the p99 rule did not trip: {}", rollout(&server).await);
    let last = last_move(&server).await;
    assert!(last["reason"].as_str().unwrap().contains("on p99"), "{last}");

    step(&server, "shadow", json!({"version": 6})).await;
    let load = Load::start(&server, &[1]);
    let tripped =
        common::eventually(Duration::from_secs(60), async || rollout(&server).await["shadow"].is_null())
            .await;
    load.finish().await;
    assert!(tripped.is_some(), "the disagreement rule did not trip: {}", rollout(&server).await);
    let last = last_move(&server).await;
    assert!(last["reason"].as_str().unwrap().contains("on disagreement"), "{last}");
    assert_eq!((last["by"].as_str(), last["to"].as_u64()), (Some("guard"), Some(6)));
}
