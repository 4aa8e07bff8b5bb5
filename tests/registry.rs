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

/// A graph whose output does not have one row per input row: `ReduceSum` over the batch
/// axis turns `[N, 19]` into `[1, 19]`. Built here from ONNX's protobuf messages.
fn batch_collapsing_model() -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    use tract_onnx::pb::tensor_shape_proto::dimension::Value::{DimParam, DimValue};
    let tensor = |name: &str, dims: Vec<pb::tensor_shape_proto::dimension::Value>| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| pb::tensor_shape_proto::Dimension { value: Some(v), ..Default::default() })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let attribute = |name: &str, ty: pb::attribute_proto::AttributeType| pb::AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..Default::default()
    };
    let node = pb::NodeProto {
        input: vec!["input".into()],
        output: vec!["probabilities".into()],
        op_type: "ReduceSum".into(),
        attribute: vec![
            pb::AttributeProto {
                ints: vec![0],
                ..attribute("axes", pb::attribute_proto::AttributeType::Ints)
            },
            pb::AttributeProto { i: 1, ..attribute("keepdims", pb::attribute_proto::AttributeType::Int) },
        ],
        ..Default::default()
    };
    let graph = pb::GraphProto {
        node: vec![node],
        name: "collapses_the_batch".into(),
        input: vec![tensor("input", vec![DimParam("N".into()), DimValue(19)])],
        output: vec![tensor("probabilities", vec![DimValue(1), DimValue(19)])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 11 }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_without_one_row_per_input_row_is_refused_at_load() {
    let registry = registry_copy();
    let bytes = batch_collapsing_model();
    std::fs::write(registry.path().join("fraud/1/model.onnx"), &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    edit_manifest(&registry.path().join("fraud/1/manifest.toml"), |m| {
        m["model"].as_table_mut().unwrap().insert("sha256".into(), digest.into());
    });
    let server = serve(registry.path()).await;
    assert_refused(&server, 1, "first axis must be the batch").await;
    assert_serves(&server, 2).await;
}
