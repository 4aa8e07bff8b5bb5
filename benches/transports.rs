//! Round-trip latency of one prediction through each transport, in one run:
//! HTTP `/v1` predict vs gRPC `fti.v1.PredictionService/Predict` (entity lookup +
//! on-demand features), and Open Inference Protocol infer over HTTP (JSON) vs gRPC
//! (raw tensors). In-process server on loopback, embedded store, model version 1,
//! one client sending sequentially. `cargo bench --bench transports`.

use std::path::Path;
use std::time::{Duration, Instant};

use fti_serve::app::App;
use fti_serve::config::Config;
use fti_serve::grpc::pb::fti as pb;
use fti_serve::grpc::pb::fti::prediction_service_client::PredictionServiceClient;
use fti_serve::grpc::pb::inference as oip;
use fti_serve::grpc::pb::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

const REQUESTS: usize = 4_000;
const WARM_UP: usize = 500;

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<28} n={:>5} p50={:>5}us p90={:>5}us p99={:>5}us p99.9={:>5}us",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999)
    );
}

async fn measure<F, Fut>(mut call: F) -> Histogram<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARM_UP {
        call().await;
    }
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..REQUESTS {
        let start = Instant::now();
        call().await;
        h.record(start.elapsed().as_micros() as u64).expect("record");
        if Instant::now() > deadline {
            break;
        }
    }
    h
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut config = Config::load(Some(&repo.join("config/example.toml"))).expect("config");
        config.log.level = "warn".into();
        let app = std::sync::Arc::new(App::build(&config).await.expect("app"));
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (http_addr, grpc_addr) = (http.local_addr().expect("addr"), grpc.local_addr().expect("addr"));
        app.spawn_http(http, std::future::pending());
        app.spawn_grpc(grpc, std::future::pending());

        let golden = std::fs::read_to_string(repo.join("models/fraud/1/golden.jsonl")).expect("golden");
        let line: Value = serde_json::from_str(golden.lines().next().expect("line")).expect("json");
        let request = line["request"].clone();
        let input: Vec<f32> = line["input"].as_array().expect("input").iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect();

        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let url = format!("http://{http_addr}/v1/models/fraud/versions/1/predict");
        let http_predict = measure(|| {
            let (client, url, body) = (client.clone(), url.clone(), request.clone());
            async move {
                let r = client.post(url).json(&body).send().await.expect("send");
                assert!(r.status().is_success());
                r.bytes().await.expect("body");
            }
        })
        .await;

        let predict = PredictionServiceClient::connect(format!("http://{grpc_addr}")).await.expect("connect");
        let row = pb::Row {
            entities: request["entities"].as_object().expect("entities").iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect(),
            features: request["features"]
                .as_object()
                .expect("features")
                .iter()
                .map(|(k, v)| {
                    let kind = match v {
                        Value::String(s) => pb::value::Kind::Text(s.clone()),
                        other => pb::value::Kind::Number(other.as_f64().unwrap_or(0.0)),
                    };
                    (k.clone(), pb::Value { kind: Some(kind) })
                })
                .collect(),
        };
        let grpc_predict = measure(|| {
            let mut c = predict.clone();
            let req = pb::PredictRequest {
                target: Some(pb::Target { model: "fraud".into(), version: 1, alias: String::new() }),
                row: Some(row.clone()),
                return_features: false,
                request_id: Default::default(),
            };
            async move {
                c.predict(req).await.expect("predict");
            }
        })
        .await;

        let infer_url = format!("http://{http_addr}/v2/models/fraud/versions/1/infer");
        let infer_body = json!({"inputs": [{"name": "input", "shape": [1, input.len()], "datatype": "FP32", "data": input}]});
        let http_infer = measure(|| {
            let (client, url, body) = (client.clone(), infer_url.clone(), infer_body.clone());
            async move {
                let r = client.post(url).json(&body).send().await.expect("send");
                assert!(r.status().is_success());
                r.bytes().await.expect("body");
            }
        })
        .await;

        let infer = GrpcInferenceServiceClient::connect(format!("http://{grpc_addr}")).await.expect("connect");
        let raw: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
        let grpc_infer = measure(|| {
            let mut c = infer.clone();
            let req = oip::ModelInferRequest {
                model_name: "fraud".into(),
                model_version: "1".into(),
                inputs: vec![oip::model_infer_request::InferInputTensor {
                    name: "input".into(),
                    datatype: "FP32".into(),
                    shape: vec![1, input.len() as i64],
                    ..Default::default()
                }],
                raw_input_contents: vec![raw.clone()],
                ..Default::default()
            };
            async move {
                c.model_infer(req).await.expect("infer");
            }
        })
        .await;

        println!("one client, sequential, {REQUESTS} requests after {WARM_UP} warm-up, model v1, embedded store");
        report("HTTP  /v1 predict", &http_predict);
        report("gRPC  fti.v1 Predict", &grpc_predict);
        report("HTTP  /v2 infer (JSON)", &http_infer);
        report("gRPC  ModelInfer (raw)", &grpc_infer);
    });
}
