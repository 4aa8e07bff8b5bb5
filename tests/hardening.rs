//! Hostile input and overload: declared request constraints, deadlines that hold before
//! each stage (HTTP header and gRPC `grpc-timeout`), admission control, and admin names
//! that cannot become paths.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN_TOKEN, Redis, Server, golden, materialize_example, redis_config};
use fti_serve::grpc::pb::fti as pb;
use serde_json::{Value, json};

fn valid() -> Value {
    golden("fraud", 1)[0].request.clone()
}

/// Adds keys to request feature `feature` of `fraud/<version>`'s view in a registry copy.
fn constrain(registry: &std::path::Path, version: u64, feature: &str, keys: &[(&str, toml::Value)]) {
    let manifest = registry.join(format!("fraud/{version}/manifest.toml"));
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let request = m["feature_view"]["request"].as_array_mut().unwrap();
    let spec = request.iter_mut().find(|f| f["name"].as_str() == Some(feature)).unwrap();
    for (k, v) in keys {
        spec.as_table_mut().unwrap().insert((*k).to_string(), v.clone());
    }
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

fn series_value(metrics: &str, prefix: &str, contains: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && contains.iter().all(|c| l.contains(c)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_request_constraints_are_enforced_online_and_offline() {
    let registry = common::registry_copy();
    constrain(registry.path(), 1, "amount", &[("minimum", 0.0.into()), ("maximum", 50_000.0.into())]);
    constrain(
        registry.path(),
        1,
        "merchant_category",
        &[("allowed", toml::Value::Array(vec!["online".into(), "grocery".into(), "unknown".into()]))],
    );
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    let server = Server::start(&config).await;
    let with = |features: Value| {
        let mut request = valid();
        for (k, v) in features.as_object().unwrap() {
            request["features"][k] = v.clone();
        }
        request
    };
    let path = "/v1/models/fraud/versions/1/predict";
    for (features, message) in [
        (json!({"amount": -1.0}), "must be at least 0, got -1"),
        (json!({"amount": 60000}), "must be at most 50000, got 60000"),
        (
            json!({"merchant_category": "casino"}),
            "must be one of \"online\", \"grocery\", \"unknown\", got \"casino\"",
        ),
    ] {
        let field = format!("features.{}", features.as_object().unwrap().keys().next().unwrap());
        let (status, body) = server.post(path, &with(features)).await;
        assert_eq!(
            (status, body["code"].as_str(), body["field"].as_str()),
            (422, Some("invalid_input"), Some(field.as_str())),
            "{body}"
        );
        assert!(body["error"].as_str().unwrap().ends_with(message), "{body}");
    }
    let (status, body) =
        server.post(path, &with(json!({"amount": 0.0, "merchant_category": "grocery"}))).await;
    assert_eq!(status, 200, "{body}");

    // Non-finite numbers are refused unless a feature allows them: only gRPC can send one.
    let endpoint = format!("http://{}", server.grpc_addr);
    let mut client = pb::prediction_service_client::PredictionServiceClient::connect(endpoint).await.unwrap();
    let mut row = common::grpc_row(&valid());
    row.features.insert("lat".into(), pb::Value { kind: Some(pb::value::Kind::Number(f64::INFINITY)) });
    let target = Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() });
    let status = client
        .predict(pb::PredictRequest {
            target: target.clone(),
            row: Some(row.clone()),
            return_features: false,
            request_id: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("features.lat: must be a finite number"), "{status:?}");

    // Offline, the same manifest refuses the same value.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.csv");
    std::fs::write(&input, "cc_num,amount,lat,lon,ts\n4111000000000001,-1,59.3,18.0,1764000000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .args(["transform", "--model-input", "--feature-view"])
        .arg(registry.path().join("fraud/1/manifest.toml"))
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("row 1, column `amount`: must be at least 0, got -1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_never_starts_the_model() {
    // The embedded store and an inline model: nothing awaits, so only the checks before
    // each stage can stop an over-deadline request.
    let server = Server::start(&common::example_config()).await;
    let inferences = |metrics: &str| {
        series_value(metrics, "fti_request_stage_seconds_count{", &[r#"stage="inference""#, r#"version="1""#])
    };
    let (_, before) = server.get_text("/metrics").await;
    let url = server.url("/v1/models/fraud/versions/1/predict");
    let response =
        server.http.post(&url).header("x-request-timeout-ms", "0").json(&valid()).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body["code"].as_str()), (504, Some("timeout")), "{body}");
    let response =
        server.http.post(&url).header("x-request-timeout-ms", "soon").json(&valid()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // (gRPC's grpc-timeout is checked with a store that really stalls: redis_faults.rs.)
    let (_, after) = server.get_text("/metrics").await;
    let timeouts = series_value(&after, "fti_requests_total{", &[r#"outcome="timeout""#, r#"version="1""#]);
    assert_eq!(timeouts, 1.0, "the refusal was the server's: {after}");
    assert_eq!(inferences(&after), inferences(&before), "the model never ran");

    // An ordinary request still runs the model.
    let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &valid()).await;
    assert_eq!(status, 200, "{body}");
    let (_, last) = server.get_text("/metrics").await;
    assert_eq!(inferences(&last), inferences(&before) + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_in_flight_requests_are_refused_at_once() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let mut config = redis_config(&redis);
    config.server.max_in_flight = 1;
    config.store.redis.timeout_ms = 3_000;
    config.server.request_timeout_ms = 10_000;
    let server = Server::start(&config).await;
    let (status, _) = server.post("/v1/models/fraud/versions/1/predict", &valid()).await;
    assert_eq!(status, 200);

    // Pause Redis: the next request holds the only permit while it waits for its lookup.
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(2_500).query(&mut redis.conn()).unwrap();
    let (client, url) = (server.http.clone(), server.url("/v1/models/fraud/versions/1/predict"));
    let holder =
        tokio::spawn(async move { client.post(url).json(&valid()).send().await.unwrap().status().as_u16() });
    let admitted = common::eventually(Duration::from_secs(2), async || {
        series_value(&server.get_text("/metrics").await.1, "fti_requests_in_flight", &[]) == 1.0
    })
    .await;
    assert!(admitted.is_some(), "the holding request was never admitted");
    let refused = common::eventually(Duration::from_secs(2), async || {
        let response =
            server.http.post(server.url("/v1/models/fraud/predict")).json(&valid()).send().await.unwrap();
        if response.status().as_u16() != 429 {
            return false;
        }
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "overloaded", "{body}");
        true
    })
    .await;
    assert!(refused.is_some(), "no request was refused while the only permit was held");
    // Health, readiness and metrics are never refused; gRPC is refused the same way.
    assert_eq!(server.get("/health/live").await.0, 200);
    assert_eq!(server.get_text("/metrics").await.0, 200);
    let endpoint = format!("http://{}", server.grpc_addr);
    let mut grpc = pb::prediction_service_client::PredictionServiceClient::connect(endpoint).await.unwrap();
    let status = grpc
        .predict(pb::PredictRequest {
            target: Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() }),
            row: None,
            return_features: false,
            request_id: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(holder.await.unwrap(), 200, "the admitted request is served once Redis answers");
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(series_value(&metrics, "fti_requests_shed_total", &[]) >= 2.0, "{metrics}");
    // The permit is back.
    let (status, _) = server.post("/v1/models/fraud/versions/1/predict", &valid()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_model_names_that_are_not_directory_names() {
    let registry = common::registry_copy();
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    config.admin.token = Some(fti_serve::secret::Secret::new(ADMIN_TOKEN));
    let server = Server::start(&config).await;
    // (`..` itself is resolved by any URL-handling client before it is sent.)
    for name in ["..%2F..%2Fetc", ".hidden", "a%2Fb", "spaces%20here", "..%2F"] {
        let (status, body) =
            server.admin(&format!("/v1/admin/models/{name}/promote"), &json!({"version": 1})).await;
        assert_eq!((status, body["field"].as_str()), (422, Some("model")), "{name}: {body}");
        let response = server
            .http
            .get(server.url(&format!("/v1/admin/models/{name}/history")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 422, "{name}");
    }
    // Failed authentications are counted by reason.
    let unauthorized = server.http.post(server.url("/v1/admin/models/fraud/rollback")).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let wrong = server
        .http
        .post(server.url("/v1/admin/models/fraud/rollback"))
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (_, metrics) = server.get_text("/metrics").await;
    assert_eq!(series_value(&metrics, "fti_admin_auth_failures_total{", &[r#"reason="missing""#]), 1.0);
    assert_eq!(series_value(&metrics, "fti_admin_auth_failures_total{", &[r#"reason="wrong""#]), 1.0);
}

#[test]
fn the_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    let config_file = dir.path().join("c.toml");
    let registry = common::repo().join("models");
    std::fs::write(
        &config_file,
        format!("[registry]\npath = {:?}\n[admin]\ntoken_file = \"token\"\n", registry.display().to_string()),
    )
    .unwrap();
    let config = fti_serve::config::Config::load(Some(&config_file)).unwrap();
    assert_eq!(config.admin_token().unwrap().unwrap().expose(), ADMIN_TOKEN);
    std::fs::write(&token, "short\n").unwrap();
    let err = fti_serve::config::Config::load(Some(&config_file)).unwrap_err().to_string();
    assert!(err.contains("admin.token_file"), "{err}");
}

/// A body that trickles is answered 408 `body_timeout` at the body read timeout, and the
/// connection is let go; a request refused by admission control never has its body read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_answered_408_on_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = common::example_config();
    config.server.body_read_timeout_ms = 500;
    let server = Server::start(&config).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let start = std::time::Instant::now();
    stream
        .write_all(
            b"POST /v1/models/fraud/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"entities\"",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not let go");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(start.elapsed() >= Duration::from_millis(450), "answered after {:?}", start.elapsed());
}
