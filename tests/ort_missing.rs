//! Asking for ort on a host without the library refuses that version, naming the path it
//! tried, and touches nothing else. Its own test binary: ONNX Runtime loads once per
//! process.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, golden, registry_copy};
use fti_serve::config::OrtConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_library_refuses_only_the_ort_version() {
    let registry = registry_copy();
    common::add_backend_version(registry.path(), 1, 5, "ort");
    let mut config = common::example_config();
    config.registry.path = registry.path().to_path_buf();
    config.registry.keep_latest = 10;
    config.ort =
        OrtConfig { library: Some("/nonexistent/libonnxruntime.so.1.32.0".into()), ..Default::default() };
    let server = Server::start(&config).await;
    let (status, body) =
        server.post("/v1/models/fraud/versions/5/predict", &golden("fraud", 1)[0].request).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("version_unavailable")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("/nonexistent/libonnxruntime.so.1.32.0"), "{body}");
    for version in [1u64, 2] {
        let g = &golden("fraud", version)[0];
        let (status, body) =
            server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &g.request).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = server.get("/health/ready").await;
    assert_eq!(status, 200);

    // The CLI refuses to promote it, with the same reason, and changes nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .args(["models", "promote", "fraud", "5", "--registry"])
        .arg(registry.path())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.32.0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/libonnxruntime.so.1.32.0"), "{stderr}");
}
