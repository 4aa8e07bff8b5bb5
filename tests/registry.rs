//! Loading versions: a broken version is refused with its reason while the others serve.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Server, golden, registry_copy};
use sha2::{Digest, Sha256};

fn edit_manifest(path: &Path, edit: impl FnOnce(&mut toml::Table)) {
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(path, toml::to_string(&m).unwrap()).unwrap();
}

async fn serve(registry: &Path) -> Server {
    let mut config = common::example_config();
    config.registry.path = registry.to_path_buf();
    Server::start(&config).await
}

async fn assert_refused(server: &Server, version: u64, reason: &str) {
    let (_, models) = server.get("/v1/models/fraud").await;
    let v = models["versions"].as_array().unwrap().iter().find(|v| v["version"] == version).unwrap();
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v["reason"].as_str().unwrap().contains(reason), "{v}");
    let request = golden("fraud", version)[0].request.clone();
    let (status, body) = server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &request).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("version_unavailable")), "{body}");
    assert!(body["error"].as_str().unwrap().contains(reason), "{body}");
}

async fn assert_serves(server: &Server, version: u64) {
    let g = &golden("fraud", version)[0];
    let (status, body) =
        server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &g.request).await;
    assert_eq!(status, 200, "{body}");
    common::assert_outputs(&body["outputs"], &g.outputs, "healthy version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_is_refused() {
    let registry = registry_copy();
    edit_manifest(&registry.path().join("fraud/1/manifest.toml"), |m| {
        m["model"].as_table_mut().unwrap().insert("sha256".into(), "00".repeat(32).into());
    });
    let server = serve(registry.path()).await;
    assert_refused(&server, 1, "checksum mismatch").await;
    assert_serves(&server, 2).await;
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("fti_model_loads_total{model=\"fraud\",outcome=\"failed\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_model_file_is_refused() {
    let registry = registry_copy();
    let model = registry.path().join("fraud/1/model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&model, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    edit_manifest(&registry.path().join("fraud/1/manifest.toml"), |m| {
        m["model"].as_table_mut().unwrap().insert("sha256".into(), digest.into());
    });
    let server = serve(registry.path()).await;
    assert_refused(&server, 1, "cannot load model").await;
    assert_serves(&server, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_view_errors_are_refused_naming_the_expression() {
    let registry = registry_copy();
    edit_manifest(&registry.path().join("fraud/1/manifest.toml"), |m| {
        let view = m["feature_view"].as_table_mut().unwrap();
        let on_demand = view["on_demand"].as_array_mut().unwrap();
        on_demand[0].as_table_mut().unwrap().insert("expr".into(), "log1p(amout)".into());
    });
    let server = serve(registry.path()).await;
    assert_refused(&server, 1, "unknown name `amout`").await;
    assert_serves(&server, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_on_a_broken_version_is_not_ready() {
    let registry = registry_copy();
    let state = registry.path().join("fraud/state.toml");
    let production = fti_serve::registry::ModelState::read(&state).unwrap().aliases["production"];
    edit_manifest(&registry.path().join(format!("fraud/{production}/manifest.toml")), |m| {
        m["model"].as_table_mut().unwrap().insert("sha256".into(), "ab".repeat(32).into());
    });
    let server = serve(registry.path()).await;
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["models"]["fraud"], false);
    let (status, body) =
        server.post("/v1/models/fraud/predict", &golden("fraud", production)[0].request).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("version_unavailable")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_warm_up_is_refused() {
    let registry = registry_copy();
    let model = registry.path().join("fraud/1/model.onnx");
    let bytes = std::fs::read(common::repo().join("tests/fixtures/nan_model.onnx")).unwrap();
    std::fs::write(&model, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    edit_manifest(&registry.path().join("fraud/1/manifest.toml"), |m| {
        m["model"].as_table_mut().unwrap().insert("sha256".into(), digest.into());
    });
    let server = serve(registry.path()).await;
    assert_refused(&server, 1, "not finite").await;
    assert_serves(&server, 2).await;
}
