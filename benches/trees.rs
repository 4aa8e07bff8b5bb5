//! Tree ensembles on the pure-Rust path (tract plan + our engine, through
//! `TractBackend::run`, as the server calls it): 1 row and 64 rows, for LightGBM with 100
//! and 500 trees (31 leaves) and a 50-tree random forest, plus the example's fraud
//! version 2 (50-tree LightGBM) for one row. With `ORT_DYLIB_PATH` set, the same models and
//! rows also run on the ort backend (ONNX Runtime, one intra-op thread) in the same run:
//! `trees/<model>/<rows>` vs `trees/ort_<model>/<rows>`.
//!
//! The models are not committed (up to ~1 MB each): build them first, then compare with
//! onnxruntime on the same models and rows (see BENCHMARKS.md, "Tree ensembles"):
//!
//! ```sh
//! /work/main/.venv/bin/python benches/trees_models.py
//! cargo bench --bench trees
//! /work/main/.venv/bin/python benches/trees_onnxruntime.py
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fti_serve::backend::Backend;
use fti_serve::backend::ort::OrtBackend;
use fti_serve::backend::tract::TractBackend;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn rows() -> Option<(usize, Vec<f32>)> {
    let text = std::fs::read_to_string(repo().join("target/bench-trees/rows.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let width = v["width"].as_u64()? as usize;
    let data = v["rows"].as_array()?.iter().flat_map(|r| r.as_array().into_iter().flatten());
    Some((width, data.map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect()))
}

fn trees(c: &mut Criterion) {
    let Some((width, data)) = rows() else {
        eprintln!("target/bench-trees is missing: run benches/trees_models.py first");
        return;
    };
    let ort_config = std::env::var_os("ORT_DYLIB_PATH").map(|library| fti_serve::backend::ort::OrtOptions {
        library: Some(library.into()),
        ..Default::default()
    });
    if ort_config.is_none() {
        eprintln!("ORT_DYLIB_PATH is not set: the ort backend is not measured beside ours");
    }
    let mut group = c.benchmark_group("trees");
    for name in ["lgbm_100", "lgbm_500", "rf_50"] {
        let bytes = std::fs::read(repo().join(format!("target/bench-trees/{name}.onnx"))).expect("model");
        let backend = TractBackend::load(&bytes, "input", width).expect("loads");
        let ort =
            ort_config.as_ref().map(|config| OrtBackend::load(&bytes, "input", width, config).expect("ort"));
        for rows in [1usize, 64] {
            let input = &data[..rows * width];
            group.bench_with_input(BenchmarkId::new(name, rows), &rows, |b, &rows| {
                b.iter(|| black_box(backend.run(black_box(input), rows).expect("runs")));
            });
            if let Some(ort) = &ort {
                group.bench_with_input(BenchmarkId::new(format!("ort_{name}"), rows), &rows, |b, &rows| {
                    b.iter(|| black_box(ort.run(black_box(input), rows).expect("runs")));
                });
            }
        }
    }
    let bytes = std::fs::read(repo().join("models/fraud/2/model.onnx")).expect("fraud v2");
    let fraud_width = 24; // the fraud_v2 view's input width
    if let Ok(backend) = TractBackend::load(&bytes, "input", fraud_width) {
        let input = vec![0.0f32; fraud_width];
        group.bench_function("fraud_v2/1", |b| {
            b.iter(|| black_box(backend.run(black_box(&input), 1).expect("runs")));
        });
        if let Some(config) = &ort_config {
            let ort = OrtBackend::load(&bytes, "input", fraud_width, config).expect("ort");
            group.bench_function("ort_fraud_v2/1", |b| {
                b.iter(|| black_box(ort.run(black_box(&input), 1).expect("runs")));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, trees);
criterion_main!(benches);
