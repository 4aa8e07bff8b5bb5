//! Predictions through real HTTP against a real Redis, compared with the onnxruntime
//! references computed at export time.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Redis, Server, assert_outputs, golden, materialize_example, redis_config};
use serde_json::{Value, json};

const VERSIONS: [u64; 2] = [1, 2];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_predictions_match_golden_references() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;

    for version in VERSIONS {
        for (i, g) in golden("fraud", version).iter().enumerate() {
            let path = format!("/v1/models/fraud/versions/{version}/predict");
            let (status, body) = server.post(&path, &g.request).await;
            let context = format!("v{version} golden[{i}]");
            assert_eq!(status, 200, "{context}: {body}");
            assert_eq!(body["model"], "fraud");
            assert_eq!(body["version"], version);
            assert_outputs(&body["outputs"], &g.outputs, &context);
            let missing: Vec<&str> =
                body["missing_features"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(missing, g.missing_features, "{context}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_alias_serves_and_batches_match() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;
    let production = fti_serve::registry::RegistryDir::new(common::repo().join("models"))
        .read_state("fraud")
        .unwrap()
        .aliases["production"];

    for version in VERSIONS {
        let goldens = golden("fraud", version);
        let rows: Vec<Value> = goldens.iter().map(|g| g.request.clone()).collect();
        let path = format!("/v1/models/fraud/versions/{version}/predict");
        let (status, body) = server.post(&path, &json!({ "rows": rows })).await;
        assert_eq!(status, 200, "{body}");
        let predictions = body["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), goldens.len());
        for (i, (p, g)) in predictions.iter().zip(&goldens).enumerate() {
            assert_outputs(&p["outputs"], &g.outputs, &format!("v{version} batch row {i}"));
        }
    }

    let g = &golden("fraud", production)[0];
    let (status, body) = server.post("/v1/models/fraud/predict", &g.request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], production);
    assert_outputs(&body["outputs"], &g.outputs, "production");
    let (status, body) = server.post("/v1/models/fraud/aliases/production/predict", &g.request).await;
    assert_eq!((status, body["version"].clone()), (200, json!(production)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_features_equal_the_reference_input_vector() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;
    for version in VERSIONS {
        for (i, g) in golden("fraud", version).iter().enumerate() {
            let mut request = g.request.clone();
            request["return_features"] = json!(true);
            let (status, body) =
                server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &request).await;
            assert_eq!(status, 200, "{body}");
            let features = body["features"].as_object().unwrap();
            assert_eq!(features.len(), g.input.len());
            for (j, ((name, got), want)) in features.iter().zip(&g.input).enumerate() {
                let got = got.as_f64().unwrap_or(f64::NAN);
                let same =
                    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-5 * want.abs().max(1.0);
                assert!(same, "v{version} golden[{i}] input[{j}] {name}: server {got}, reference {want}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_memory_store_serves_the_example() {
    let server = Server::start(&common::example_config()).await;
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    for version in VERSIONS {
        for (i, g) in golden("fraud", version).iter().enumerate() {
            let (status, body) =
                server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &g.request).await;
            assert_eq!(status, 200, "{body}");
            assert_outputs(&body["outputs"], &g.outputs, &format!("memory v{version} golden[{i}]"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_listing_health_and_metrics() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;

    let (status, live) = server.get("/health/live").await;
    assert_eq!((status, live["status"].as_str()), (200, Some("live")));
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["models"]["fraud"], true);

    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    let fraud = &models["models"][0];
    assert_eq!(fraud["name"], "fraud");
    // The alias the registry's state.toml names, not just any number.
    let production = fti_serve::registry::RegistryDir::new(common::repo().join("models"))
        .read_state("fraud")
        .unwrap()
        .aliases["production"];
    assert_eq!(fraud["aliases"]["production"], production, "{fraud}");
    let versions = fraud["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    for v in versions {
        assert_eq!(v["state"], "ready", "{v}");
        assert_eq!(v["backend"], "tract");
        assert!(!v["input"]["columns"].as_array().unwrap().is_empty());
        assert_eq!(v["outputs"], json!(["probability", "label"]));
    }

    let g = &golden("fraud", 1)[0];
    server.post("/v1/models/fraud/versions/1/predict", &g.request).await;
    server.post("/v1/models/fraud/versions/1/predict", &json!({"entities": {}})).await;
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    for stage in ["features", "transform", "inference", "total"] {
        let series = format!(
            "fti_request_stage_seconds_count{{backend=\"tract\",model=\"fraud\",stage=\"{stage}\",version=\"1\"}}"
        );
        assert!(text.contains(&series), "missing {series} in\n{text}");
    }
    assert!(
        text.contains("fti_requests_total{backend=\"tract\",model=\"fraud\",outcome=\"ok\",version=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "fti_requests_total{backend=\"tract\",model=\"fraud\",outcome=\"invalid_input\",version=\"1\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("fti_store_up 1"), "{text}");
    // card_profile is cached (60 s TTL in the example config): one miss, then hits.
    assert!(
        text.contains("fti_feature_cache_lookups_total{group=\"card_profile\",result=\"miss\"}"),
        "{text}"
    );
}
