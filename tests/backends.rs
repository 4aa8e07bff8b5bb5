//! tract and ONNX Runtime (`ort`) give the same outputs, and match onnxruntime's own
//! references, on the example models and the parity fixtures; a model tract cannot run
//! is refused by tract and served by ort.
#![allow(clippy::unwrap_used)]

mod common;

use fti_serve::backend::ort::OrtBackend;
use fti_serve::backend::tract::TractBackend;
use fti_serve::backend::{Backend, Tensor};
use serde_json::Value;

fn backends(onnx: &[u8], width: usize) -> (Result<TractBackend, String>, OrtBackend) {
    let tract = TractBackend::load(onnx, "input", width).map_err(|e| e.to_string());
    let ort = OrtBackend::load(onnx, "input", width, &common::ort_options()).unwrap();
    (tract, ort)
}

fn values(t: &Tensor) -> Vec<f64> {
    (0..t.len()).map(|i| t.get_f64(i)).collect()
}

fn assert_close(got: &[f64], want: &[f64], context: &str) {
    assert_eq!(got.len(), want.len(), "{context}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5, "{context}: {got:?} vs {want:?}");
    }
}

/// Runs each row alone and all rows as one batch; returns per-row outputs per tensor.
fn run_rows(backend: &dyn Backend, rows: &[Vec<f32>]) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    let single = rows.iter().map(|r| backend.run(r, 1).unwrap().iter().map(values).collect()).collect();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let batch = backend.run(&flat, rows.len()).unwrap().iter().map(values).collect();
    (single, batch)
}

#[test]
fn parity_fixtures_match_onnxruntime_on_both_backends() {
    let dir = common::repo().join("tests/fixtures/parity");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let onnx = std::fs::read(dir.join(golden["model"].as_str().unwrap())).unwrap();
        let width = golden["width"].as_u64().unwrap() as usize;
        let rows: Vec<Vec<f32>> = golden["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
            .collect();
        let (tract, ort) = backends(&onnx, width);
        let mut engines: Vec<(&str, &dyn Backend)> = vec![("ort", &ort)];
        match (&tract, golden["tract_supported"].as_bool().unwrap()) {
            (Ok(t), true) => engines.push(("tract", t)),
            (Err(e), false) => assert!(e.contains("Det"), "tract must name the missing operator: {e}"),
            (Ok(_), false) => panic!("{}: tract was expected to refuse it", path.display()),
            (Err(e), true) => panic!("{}: tract refused it: {e}", path.display()),
        }
        for (name, backend) in engines {
            let (single, batch) = run_rows(backend, &rows);
            for (t, tensor) in backend.output_names().iter().enumerate() {
                let want = golden["outputs"][tensor].as_array().unwrap();
                let mut batched = Vec::new();
                for (r, row_want) in want.iter().enumerate() {
                    let row_want: Vec<f64> =
                        row_want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                    let context = format!("{} {name} {tensor} row {r}", path.display());
                    assert_close(&single[r][t], &row_want, &context);
                    batched.extend(row_want);
                }
                assert_close(&batch[t], &batched, &format!("{} {name} {tensor} batch", path.display()));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9, "4 fixtures on two backends + the determinant on ort");
}

#[test]
fn example_models_agree_across_backends() {
    for version in [1u64, 2] {
        let manifest = fti_serve::registry::Manifest::read(
            &common::repo().join(format!("models/fraud/{version}/manifest.toml")),
        )
        .unwrap();
        let onnx = std::fs::read(common::repo().join(format!("models/fraud/{version}/model.onnx"))).unwrap();
        let rows: Vec<Vec<f32>> = common::golden("fraud", version)
            .iter()
            .map(|g| g.input.iter().map(|&v| v as f32).collect())
            .collect();
        let width = rows[0].len();
        let (tract, ort) = backends(&onnx, width);
        let tract = tract.unwrap();
        let (t_single, t_batch) = run_rows(&tract, &rows);
        let (o_single, o_batch) = run_rows(&ort, &rows);
        for (t, tensor) in ort.output_names().iter().enumerate() {
            let ti = tract.output_names().iter().position(|n| n == tensor).unwrap();
            for r in 0..rows.len() {
                assert_close(&t_single[r][ti], &o_single[r][t], &format!("v{version} {tensor} row {r}"));
            }
            assert_close(&t_batch[ti], &o_batch[t], &format!("v{version} {tensor} batch"));
        }
        // The loop above compares only the tensors ort returns: both backends must return
        // the same set, and it must hold every tensor the manifest's outputs read (the
        // server serves those). `Manifest::read` already refuses an empty `outputs`.
        let mut names = (tract.output_names().to_vec(), ort.output_names().to_vec());
        names.0.sort();
        names.1.sort();
        assert_eq!(names.0, names.1, "v{version}: tract and ort return different tensors");
        for output in &manifest.outputs {
            assert!(
                names.1.contains(&output.tensor),
                "v{version}: output `{}` reads tensor `{}`, which neither backend returns ({:?})",
                output.name,
                output.tensor,
                names.1
            );
        }
    }
}

#[test]
fn both_backends_refuse_a_manifest_input_name_the_graph_does_not_have() {
    let onnx = std::fs::read(common::repo().join("models/fraud/1/model.onnx")).unwrap();
    let width = common::golden("fraud", 1)[0].input.len();
    let tract = TractBackend::load(&onnx, "features", width).err().map(|e| e.to_string());
    let ort = OrtBackend::load(&onnx, "features", width, &common::ort_options()).err().map(|e| e.to_string());
    for (backend, err) in [("tract", tract), ("ort", ort)] {
        let err = err.unwrap_or_else(|| panic!("{backend} accepted an input name the graph does not have"));
        assert!(
            err.contains("the graph's input is `input`, the manifest says `features`"),
            "{backend}: {err}"
        );
    }
}
