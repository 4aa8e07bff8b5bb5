//! The ort backend through the server: chosen per version in the manifest (or globally),
//! visible in /v1/models and metrics; a model tract cannot run is served by ort.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, golden, registry_copy};
use fti_serve::config::BackendName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_chooses_ort_per_version() {
    let registry = registry_copy();
    common::add_backend_version(registry.path(), 1, 5, "ort");
    common::add_determinant_version(registry.path(), 6, "ort");
    common::add_determinant_version(registry.path(), 7, "tract");
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    config.registry.keep_latest = 10;
    config.ort = common::ort_config();
    let server = Server::start(&config).await;

    for (i, g) in golden("fraud", 1).iter().enumerate() {
        let (status, body) = server.post("/v1/models/fraud/versions/5/predict", &g.request).await;
        assert_eq!(status, 200, "{body}");
        common::assert_outputs(&body["outputs"], &g.outputs, &format!("ort v5 golden {i}"));
    }
    let (_, models) = server.get("/v1/models/fraud").await;
    let version =
        |v: u64| models["versions"].as_array().unwrap().iter().find(|x| x["version"] == v).unwrap().clone();
    assert_eq!(version(5)["backend"], "ort");
    assert_eq!(version(1)["backend"], "tract");
    assert_eq!(version(6)["backend"], "ort");
    let refused = version(7);
    assert_eq!(refused["state"], "failed", "{refused}");
    assert!(refused["reason"].as_str().unwrap().contains("Det"), "{refused}");

    let (status, body) =
        server.post("/v1/models/fraud/versions/6/predict", &golden("fraud", 1)[0].request).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["outputs"]["score"].is_f64(), "{body}");
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains("fti_requests_total{backend=\"ort\",model=\"fraud\",outcome=\"ok\",version=\"5\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_default_backend_applies_to_manifests_without_one() {
    let registry = registry_copy();
    for version in [1u64, 2] {
        let manifest = registry.path().join(format!("fraud/{version}/manifest.toml"));
        let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        m["model"].as_table_mut().unwrap().remove("backend");
        std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
    }
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    config.inference.backend = BackendName::Ort;
    config.ort = common::ort_config();
    let server = Server::start(&config).await;
    for version in [1u64, 2] {
        let g = &golden("fraud", version)[3];
        let (status, body) =
            server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &g.request).await;
        assert_eq!(status, 200, "{body}");
        common::assert_outputs(&body["outputs"], &g.outputs, &format!("ort default v{version}"));
    }
    let (_, models) = server.get("/v1/models/fraud").await;
    assert!(models["versions"].as_array().unwrap().iter().all(|v| v["backend"] == "ort"), "{models}");
}
