//! Per-layer benchmarks on the example fraud models: backend (tract, 1 and 64 rows),
//! on-demand transform per row, cached feature lookup, each transport's decode/encode
//! (HTTP JSON, fti.v1 gRPC, Open Inference Protocol JSON and gRPC raw), and a whole predict
//! in-process (embedded store, no network) so that server overhead = predict - backend can
//! be read off one run. `cargo bench --bench layers`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

mod support;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fti_serve::app::App;
use fti_serve::backend::Backend;
use fti_serve::config::Config;
use fti_serve::features::memory::MemoryStore;
use fti_serve::features::view::{GroupRead, StoredGroup};
use fti_serve::features::{CacheOptions, FeatureService, FeatureViewSpec, OnStoreError};
use fti_serve::grpc::pb::fti as fti_pb;
use fti_serve::grpc::pb::inference as oip_pb;
use fti_serve::http::dto;
use fti_serve::metrics::Metrics;
use fti_serve::predict::{PredictRequest, PredictRow, Predictor, Target};
use fti_serve::registry::{ModelVersion, VersionState};
use prost::Message;
use serde_json::{Value, json};

fn repo_path(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn golden_requests(version: u64) -> Vec<Value> {
    std::fs::read_to_string(repo_path(&format!("models/fraud/{version}/golden.jsonl")))
        .expect("golden file")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["request"].clone())
        .collect()
}

fn build_app(rt: &tokio::runtime::Runtime, config: &Config) -> App {
    rt.block_on(App::build(config)).expect("app")
}

fn loaded(app: &App) -> Vec<Arc<ModelVersion>> {
    let snapshot = app.registry.snapshot();
    snapshot.models["fraud"]
        .versions
        .values()
        .filter_map(|s| match s {
            VersionState::Ready(v) => Some(Arc::clone(v)),
            VersionState::Failed(_) => None,
        })
        .collect()
}

fn row_of(request: &Value) -> PredictRow {
    let body = serde_json::to_vec(request).expect("json");
    dto::parse_predict(&body).expect("valid request").rows.remove(0)
}

fn benches(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let mut config = Config::load(Some(&repo_path("config/example.toml"))).expect("config");
    config.cache.ttl_ms.clear();
    let app = build_app(&rt, &config);
    let versions = loaded(&app);

    let mut backend = c.benchmark_group("backend");
    for v in &versions {
        let width = v.view.width();
        for rows in [1usize, 64] {
            let input: Vec<f32> = (0..rows * width).map(|i| (i % 7) as f32 * 0.5).collect();
            backend.bench_with_input(
                BenchmarkId::new(format!("tract_v{}", v.version), rows),
                &rows,
                |b, &rows| {
                    b.iter(|| v.backend.run(black_box(&input), rows).expect("run"));
                },
            );
        }
    }
    // ONNX Runtime on the same models and inputs, when ORT_DYLIB_PATH names the library.
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(library) => {
            let ort_config =
                fti_serve::backend::ort::OrtOptions { library: Some(library.into()), ..Default::default() };
            for v in &versions {
                let bytes = std::fs::read(repo_path(&format!("models/fraud/{}/model.onnx", v.version)))
                    .expect("model");
                let width = v.view.width();
                let ort = fti_serve::backend::ort::OrtBackend::load(&bytes, "input", width, &ort_config)
                    .expect("ort");
                for rows in [1usize, 64] {
                    let input: Vec<f32> = (0..rows * width).map(|i| (i % 7) as f32 * 0.5).collect();
                    let id = BenchmarkId::new(format!("ort_v{}", v.version), rows);
                    backend.bench_with_input(id, &rows, |b, &rows| {
                        b.iter(|| ort.run(black_box(&input), rows).expect("run"));
                    });
                }
            }
        }
        None => eprintln!("ORT_DYLIB_PATH is not set: skipping the ort backend benches"),
    }
    backend.finish();

    let mut transform = c.benchmark_group("transform");
    for v in &versions {
        let request = golden_requests(v.version)[0].clone();
        let row = row_of(&request);
        let view = &v.view;
        // Group values as the store would return them, parsed once.
        let store_row: Vec<GroupRead> = view
            .groups
            .iter()
            .map(|g| {
                let values = g
                    .fields
                    .iter()
                    .map(|f| f.default.clone().or(Some(fti_serve::features::Value::Num(1.0))))
                    .collect();
                GroupRead::Found(Arc::new(StoredGroup { values, event_time: None }))
            })
            .collect();
        // The on-demand expressions alone, on a filled frame.
        let mut filled = view.new_frame();
        let mut missing = Vec::new();
        let keys = vec!["x".to_string(); view.groups.len()];
        view.fill_request(&mut filled, &row.features, "", &mut missing).expect("valid");
        view.fill_groups(&mut filled, &store_row, &keys, &mut missing).expect("valid");
        transform.bench_function(format!("on_demand_only_v{}", v.version), |b| {
            b.iter(|| view.compute(black_box(&mut filled)));
        });
        transform.bench_function(format!("assemble_row_v{}", v.version), |b| {
            b.iter(|| {
                let mut frame = view.new_frame();
                let mut missing = Vec::new();
                view.fill_request(&mut frame, &row.features, "", &mut missing).expect("valid");
                view.fill_groups(&mut frame, &store_row, &keys, &mut missing).expect("valid");
                view.compute(&mut frame);
                let mut input = Vec::with_capacity(view.width());
                view.push_input(&frame, &mut input);
                black_box(input)
            });
        });
    }
    transform.finish();

    // Cached lookups: a feature service over an empty store whose every lookup hits.
    let spec: FeatureViewSpec = versions[0].view.spec().clone();
    let view = fti_serve::features::FeatureView::compile(spec).expect("view");
    let cache = CacheOptions {
        max_entries: config.cache.max_entries,
        default_ttl: std::time::Duration::from_secs(3600),
        ttl: Default::default(),
    };
    let service = FeatureService::new(
        Arc::new(MemoryStore::new()),
        cache,
        "fti:".into(),
        OnStoreError::Fail,
        Metrics::new(),
    );
    let entities = vec![vec!["4111000000000001".to_string()]];
    rt.block_on(service.fetch(&view, &entities)).expect("warm the cache");
    c.bench_function("features/cache_hit_all_groups", |b| {
        b.to_async(&rt).iter(|| async { black_box(service.fetch(&view, &entities).await.expect("hit")) });
    });

    let request = golden_requests(1)[0].clone();
    let body = serde_json::to_vec(&request).expect("json");
    c.bench_function("http/decode_predict_json", |b| {
        b.iter(|| dto::parse_predict(black_box(&body)).expect("valid"));
    });

    let predictor: Predictor = app.predictor.clone();
    let mut whole = c.benchmark_group("predict_in_process");
    for v in &versions {
        let request = golden_requests(v.version)[0].clone();
        let row = row_of(&request);
        let target = Target::Version(v.version);
        whole.bench_function(format!("single_v{}", v.version), |b| {
            b.to_async(&rt).iter(|| {
                let req = PredictRequest {
                    rows: vec![row.clone()],
                    batch: false,
                    return_features: false,
                    timeout: None,
                    request_id: None,
                };
                let target = target.clone();
                let predictor = predictor.clone();
                async move { black_box(predictor.predict("fraud", &target, req).await.expect("predict")) }
            });
        });
        let response = rt
            .block_on(predictor.predict(
                "fraud",
                &target,
                PredictRequest {
                    rows: vec![row.clone()],
                    batch: false,
                    return_features: false,
                    timeout: None,
                    request_id: Default::default(),
                },
            ))
            .expect("predict");
        whole.bench_function(format!("encode_response_v{}", v.version), |b| {
            b.iter(|| serde_json::to_vec(&dto::render_predict(black_box(&response), false)).expect("json"));
        });
    }
    whole.finish();
    codecs(c, &rt, &predictor);
    feast_layout(c, &rt);
}

/// The same model version with its two groups read natively (v2) and from Feast's layout
/// (v3, the same values), in one process on the embedded store: what decoding Feast's
/// keys and values (and the freshness check) cost per request.
fn feast_layout(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("models");
    support::copy_dir(&repo_path("models"), &registry);
    support::copy_dir(&registry.join("fraud/2"), &registry.join("fraud/3"));
    let manifest = registry.join("fraud/3/manifest.toml");
    let mut m: toml::Table =
        toml::from_str(&std::fs::read_to_string(&manifest).expect("manifest")).expect("toml");
    m["model"].as_table_mut().expect("[model]").insert("version".into(), 3.into());
    let view = m["feature_view"].as_table_mut().expect("[feature_view]");
    for group in view["groups"].as_array_mut().expect("groups") {
        let group = group.as_table_mut().expect("group");
        let name = group["name"].as_str().expect("name").to_string();
        group.insert("name".into(), format!("{name}_feast").into());
        let feast = format!("project = \"fraud\"\nview = \"{name}\"\nkey_types = {{ cc_num = \"int64\" }}");
        group.insert("feast".into(), toml::Value::Table(toml::from_str(&feast).expect("feast")));
    }
    std::fs::write(&manifest, toml::to_string(&m).expect("toml")).expect("write");

    let mut config = Config::load(Some(&repo_path("config/example.toml"))).expect("config");
    config.cache.ttl_ms.clear();
    config.registry.path = registry;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let time = fti_serve::features::event_time::EventTime { seconds: now as i64 - 3600, nanos: 0 }.rfc3339();
    for group in ["card_profile", "card_activity"] {
        let text = std::fs::read_to_string(repo_path(&format!("examples/fraud/data/features/{group}.csv")))
            .expect("feature file");
        let mut lines = text.lines();
        let mut out = format!("{},event_timestamp\n", lines.next().expect("header"));
        for line in lines {
            out.push_str(&format!("{line},{time}\n"));
        }
        let path = dir.path().join(format!("{group}_feast.csv"));
        std::fs::write(&path, out).expect("write");
        config.store.memory.files.push(fti_serve::config::FeatureFileConfig {
            group: format!("{group}_feast"),
            path,
            keys: None,
        });
    }
    let app = build_app(rt, &config);
    let predictor = app.predictor.clone();
    let row = row_of(&golden_requests(2)[0]);
    let request = PredictRequest {
        rows: vec![row],
        batch: false,
        return_features: false,
        timeout: None,
        request_id: Default::default(),
    };
    let answer = |v: u64| {
        rt.block_on(predictor.predict("fraud", &Target::Version(v), request.clone())).expect("predict")
    };
    assert_eq!(answer(2).rows, answer(3).rows, "the Feast layout must read what the native one does");
    let mut group = c.benchmark_group("feast_layout");
    for (name, version) in [("native_v2", 2), ("feast_v3", 3)] {
        let target = Target::Version(version);
        let request = request.clone();
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let (predictor, target, request) = (predictor.clone(), target.clone(), request.clone());
                async move { black_box(predictor.predict("fraud", &target, request).await.expect("predict")) }
            });
        });
    }
    group.finish();
}

/// Each transport's share of one request for model v2: decode the request off the wire
/// into the core's terms, and encode the core's answer back onto the wire.
fn codecs(c: &mut Criterion, rt: &tokio::runtime::Runtime, predictor: &Predictor) {
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(repo_path("models/fraud/2/golden.jsonl"))
            .expect("golden")
            .lines()
            .next()
            .expect("row"),
    )
    .expect("json");
    let input: Vec<f32> = line["input"]
        .as_array()
        .expect("input")
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    let target = Target::Version(2);
    let mut group = c.benchmark_group("codec");

    // fti.v1.PredictionService/Predict
    let request = &line["request"];
    let features = request["features"]
        .as_object()
        .expect("features")
        .iter()
        .map(|(name, v)| {
            let kind = match v {
                Value::String(s) => fti_pb::value::Kind::Text(s.clone()),
                other => fti_pb::value::Kind::Number(other.as_f64().unwrap_or(0.0)),
            };
            (name.clone(), fti_pb::Value { kind: Some(kind) })
        })
        .collect();
    let wire = fti_pb::PredictRequest {
        target: Some(fti_pb::Target { model: "fraud".into(), version: 2, alias: String::new() }),
        row: Some(fti_pb::Row {
            entities: [(
                "cc_num".to_string(),
                request["entities"]["cc_num"].as_str().expect("id").to_string(),
            )]
            .into(),
            features,
        }),
        return_features: false,
        request_id: Default::default(),
    }
    .encode_to_vec();
    group.bench_function("grpc_predict/decode", |b| {
        b.iter(|| {
            let request = fti_pb::PredictRequest::decode(black_box(wire.as_slice())).expect("decode");
            fti_serve::grpc::prediction::row(request.row.unwrap_or_default())
        });
    });
    let answer = rt
        .block_on(predictor.predict(
            "fraud",
            &target,
            PredictRequest {
                rows: vec![row_of(request)],
                batch: false,
                return_features: false,
                timeout: None,
                request_id: Default::default(),
            },
        ))
        .expect("predict");
    group.bench_function("grpc_predict/encode", |b| {
        b.iter(|| {
            let row = black_box(&answer).rows[0].clone();
            fti_pb::PredictResponse {
                model: answer.model.clone(),
                version: answer.version,
                prediction: Some(fti_serve::grpc::prediction::prediction(row)),
                request_id: answer.request_id.clone(),
            }
            .encode_to_vec()
        });
    });

    // Open Inference Protocol over HTTP, JSON tensors.
    let body = serde_json::to_vec(&json!({
        "inputs": [{"name": "input", "shape": [1, input.len()], "datatype": "FP32",
                    "data": input.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect::<Vec<f32>>()}]
    }))
    .expect("json");
    let headers = axum::http::HeaderMap::new();
    group.bench_function("oip_http/decode_json", |b| {
        b.iter(|| fti_serve::http::oip::decode_infer(&headers, black_box(&body)).expect("decode"));
    });
    let (tensor, options) = fti_serve::http::oip::decode_infer(&headers, &body).expect("decode");
    let inferred = rt.block_on(predictor.infer("fraud", &target, tensor)).expect("infer");
    group.bench_function("oip_http/encode_json", |b| {
        b.iter(|| {
            fti_serve::http::oip::encode_infer("fraud", &options, black_box(&inferred)).expect("encode")
        });
    });

    // Open Inference Protocol over gRPC, raw little-endian contents (as tritonclient sends).
    let wire = oip_pb::ModelInferRequest {
        model_name: "fraud".into(),
        model_version: "2".into(),
        inputs: vec![oip_pb::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, input.len() as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![input.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
    .encode_to_vec();
    group.bench_function("oip_grpc/decode_raw", |b| {
        b.iter(|| {
            let request = oip_pb::ModelInferRequest::decode(black_box(wire.as_slice())).expect("decode");
            fti_serve::grpc::inference::decode(&request).expect("tensor")
        });
    });
    let request = oip_pb::ModelInferRequest::decode(wire.as_slice()).expect("decode");
    group.bench_function("oip_grpc/encode_raw", |b| {
        b.iter(|| {
            fti_serve::grpc::inference::encode(&request, black_box(&inferred))
                .expect("encode")
                .encode_to_vec()
        });
    });
    group.finish();
}

criterion_group! {
    name = layers;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(layers);
