//! `fti.v1.PredictionService` through a real tonic client: the same answers as the HTTP
//! predict API (the golden references), single, batch and stream; errors as statuses.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Redis, Server, assert_outputs, golden, grpc_row as row, materialize_example, redis_config};
use fti_serve::grpc::pb::fti as pb;
use fti_serve::grpc::pb::fti::prediction_service_client::PredictionServiceClient;
use serde_json::{Value, json};
use tonic::Code;

fn target(version: u64) -> Option<pb::Target> {
    Some(pb::Target { model: "fraud".into(), version, alias: String::new() })
}

/// The prediction as the HTTP API's JSON outputs, to compare with the golden file.
fn outputs_json(p: &pb::Prediction) -> Value {
    let mut map = serde_json::Map::new();
    for o in &p.outputs {
        let v = match o.value.as_ref().unwrap() {
            pb::output::Value::Number(n) => json!(n),
            pb::output::Value::Integer(i) => json!(i),
            pb::output::Value::Label(s) => json!(s),
            pb::output::Value::Vector(v) => json!(v.values),
            pb::output::Value::Scores(s) => {
                Value::Object(s.entries.iter().map(|e| (e.name.clone(), json!(e.value))).collect())
            }
        };
        map.insert(o.name.clone(), v);
    }
    Value::Object(map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_over_grpc_match_golden() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;
    let mut client = PredictionServiceClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();

    for version in [1u64, 2] {
        let goldens = golden("fraud", version);
        for (i, g) in goldens.iter().enumerate() {
            let request = pb::PredictRequest {
                target: target(version),
                row: Some(row(&g.request)),
                return_features: false,
                request_id: Default::default(),
            };
            let answer = client.predict(request).await.unwrap();
            // The serving version is in the metadata too (as HTTP's x-model-version).
            let header = answer.metadata().get("x-model-version").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(header, Some(version.to_string()));
            let response = answer.into_inner();
            assert_eq!((response.model.as_str(), response.version), ("fraud", version));
            let prediction = response.prediction.unwrap();
            assert_outputs(&outputs_json(&prediction), &g.outputs, &format!("grpc v{version} golden {i}"));
            assert_eq!(prediction.missing_features, g.missing_features, "v{version} golden {i}");
        }
        let batch = pb::PredictBatchRequest {
            target: target(version),
            rows: goldens.iter().map(|g| row(&g.request)).collect(),
            return_features: true,
            request_id: String::new(),
        };
        let response = client.predict_batch(batch).await.unwrap().into_inner();
        assert_eq!(response.predictions.len(), goldens.len());
        for (p, g) in response.predictions.iter().zip(&goldens) {
            assert_outputs(&outputs_json(p), &g.outputs, &format!("grpc batch v{version}"));
            assert_eq!(p.features.len(), g.input.len());
        }
    }

    // A stream of requests on one connection answers in order.
    let goldens = golden("fraud", 1);
    let requests: Vec<pb::PredictRequest> = goldens
        .iter()
        .map(|g| pb::PredictRequest {
            target: target(1),
            row: Some(row(&g.request)),
            return_features: false,
            ..Default::default()
        })
        .collect();
    let mut stream = client.predict_stream(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let mut answered = 0;
    while let Some(response) = stream.message().await.unwrap() {
        assert_outputs(&outputs_json(&response.prediction.unwrap()), &goldens[answered].outputs, "stream");
        answered += 1;
    }
    assert_eq!(answered, goldens.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_grpc_status_codes() {
    let server = Server::start(&common::example_config()).await;
    let mut client = PredictionServiceClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();
    let good = row(&golden("fraud", 1)[0].request);

    let unknown = pb::PredictRequest {
        target: Some(pb::Target { model: "nope".into(), version: 0, alias: String::new() }),
        row: Some(good.clone()),
        return_features: false,
        request_id: Default::default(),
    };
    assert_eq!(client.predict(unknown).await.unwrap_err().code(), Code::NotFound);

    let mut missing = good.clone();
    missing.features.remove("amount");
    let status = client
        .predict(pb::PredictRequest {
            target: target(1),
            row: Some(missing),
            return_features: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "features.amount: required");

    let mut wrong = good.clone();
    wrong.features.insert("amount".into(), pb::Value { kind: Some(pb::value::Kind::Text("abc".into())) });
    let status = client
        .predict(pb::PredictRequest {
            target: target(1),
            row: Some(wrong),
            return_features: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "features.amount: expected a number, got \"abc\"")
    );

    let status = client
        .predict(pb::PredictRequest {
            target: None,
            row: Some(good),
            return_features: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
