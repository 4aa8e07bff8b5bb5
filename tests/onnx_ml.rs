//! Every model of the ONNX-ML corpus (tests/corpus, made by make_corpus.py) through the
//! tract backend, on its golden rows, batched and one row at a time: outputs within 1e-5
//! of onnxruntime (relative above 1), labels exactly. Models whose input holds strings or
//! int64 run through our tract register directly, as the server feeds float32 only.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use fti_serve::backend::tract::TractBackend;
use fti_serve::backend::{Backend, Tensor, TensorData};
use serde_json::Value;

/// The corpus models with float32 input (`typed = false`) or string/int64 input.
fn models(typed: bool) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("golden.json").is_file())
        .filter(|p| read_golden(p).get("input_dtype").is_some() == typed)
        .collect();
    dirs.sort();
    dirs
}

fn corpus() -> Vec<PathBuf> {
    let dirs = models(false);
    assert!(dirs.len() >= 20, "the corpus has {} models", dirs.len());
    dirs
}

fn read_golden(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap()
}

struct Case {
    name: String,
    golden: Value,
    backend: TractBackend,
    rows: Vec<Vec<f32>>,
}

fn load(dir: &Path) -> Case {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let golden = read_golden(dir);
    let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
    let width = golden["width"].as_u64().unwrap() as usize;
    let backend = TractBackend::load(&bytes, golden["input"].as_str().unwrap(), width)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let rows = golden["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32)).collect())
        .collect();
    Case { name, golden, backend, rows }
}

fn close(got: f64, want: f64) -> bool {
    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-5 * want.abs().max(1.0)
}

/// Compares rows `first..first + n` of the golden output `name` with `got`.
fn check(case: &Case, name: &str, got: &Tensor, first: usize) {
    let want = &case.golden["outputs"][name];
    let at = |i: usize| format!("{}: output `{name}` row {}", case.name, first + i / got.row_width().max(1));
    let rows = got.shape.first().copied().unwrap_or(1);
    if let Some(shape) = want["shape"].as_array() {
        let want_dims: Vec<usize> = shape[1..].iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(
            got.shape.get(1..).unwrap_or_default(),
            want_dims.as_slice(),
            "{}: output `{name}` shape",
            case.name
        );
    }
    match want["kind"].as_str().unwrap() {
        "float" => {
            let width: usize =
                want["shape"].as_array().unwrap()[1..].iter().map(|d| d.as_u64().unwrap() as usize).product();
            assert_eq!(got.row_width(), width, "{}: output `{name}` width", case.name);
            let data = want["data"].as_array().unwrap();
            for i in 0..rows * width {
                let w = data[first * width + i].as_f64().unwrap_or(f64::NAN);
                assert!(close(got.get_f64(i), w), "{}: got {} want {w}", at(i), got.get_f64(i));
            }
        }
        "int" => {
            let TensorData::I64(v) = &got.data else { panic!("{}: not integers: {:?}", at(0), got.data) };
            let data = want["data"].as_array().unwrap();
            for (i, g) in v.iter().enumerate() {
                assert_eq!(*g, data[first + i].as_i64().unwrap(), "{}", at(i));
            }
        }
        "string" => {
            // String labels come back as indices into the class labels.
            let TensorData::I64(v) = &got.data else { panic!("{}: not indices: {:?}", at(0), got.data) };
            let labels = case.golden["class_labels"].as_array().unwrap();
            let data = want["data"].as_array().unwrap();
            for (i, g) in v.iter().enumerate() {
                assert_eq!(labels[*g as usize], data[first + i], "{}", at(i));
            }
        }
        "map" => {
            // ZipMap passes the probabilities through: columns in class order.
            let maps = want["data"].as_array().unwrap();
            let width = got.row_width();
            for r in 0..rows {
                let map = maps[first + r].as_object().unwrap();
                assert_eq!(map.len(), width, "{}", at(r * width));
                let labels: Vec<String> = case.golden["class_labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string))
                    .collect();
                assert_eq!(map.keys().cloned().collect::<Vec<_>>(), labels, "{}: map keys", case.name);
                for (k, w) in map.values().enumerate() {
                    let g = got.get_f64(r * width + k);
                    assert!(close(g, w.as_f64().unwrap()), "{}: got {g} want {w}", at(r * width));
                }
            }
        }
        other => panic!("unknown kind {other}"),
    }
}

fn run_case(case: &Case) {
    let names: Vec<String> = case.golden["outputs"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(case.backend.output_names(), names.as_slice(), "{}: output names", case.name);
    let all: Vec<f32> = case.rows.iter().flatten().copied().collect();
    let outputs = case.backend.run(&all, case.rows.len()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_rows(case, &names, &outputs, case.rows.len());
    for (name, got) in names.iter().zip(&outputs) {
        check(case, name, got, 0);
    }
    for (r, row) in case.rows.iter().enumerate() {
        // (`run` itself refuses a row of another width than the model's.)
        let outputs = case.backend.run(row, 1).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_rows(case, &names, &outputs, 1);
        for (name, got) in names.iter().zip(&outputs) {
            check(case, name, got, r);
        }
    }
}

/// `run` answered every output, each with one row per input row. `check` takes the row
/// count from the tensor itself and the zip above stops at the shorter list, so a missing
/// output or a tensor with too few rows would otherwise go unnoticed.
fn assert_rows(case: &Case, names: &[String], outputs: &[Tensor], rows: usize) {
    assert_eq!(outputs.len(), names.len(), "{}: outputs returned", case.name);
    for (name, got) in names.iter().zip(outputs) {
        assert_eq!(
            got.shape.first().copied(),
            Some(rows),
            "{}: output `{name}` of {rows} rows has shape {:?}",
            case.name,
            got.shape
        );
    }
}

/// Runs `case` on every model, then fails once, listing every model that differs.
fn each_model(dirs: &[PathBuf], case: impl Fn(&Path) + std::panic::RefUnwindSafe) {
    let mut failures = Vec::new();
    for dir in dirs {
        let result = std::panic::catch_unwind(|| case(dir));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            failures.push(msg.unwrap_or_default());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} models differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_model_matches_onnxruntime() {
    each_model(&corpus(), |dir| run_case(&load(dir)));
}

#[test]
fn string_and_int64_input_models_match_onnxruntime() {
    let dirs = models(true);
    assert!(dirs.len() >= 7, "{} string/int64 models", dirs.len());
    each_model(&dirs, typed::run);
}

#[test]
fn golden_rows_cover_nan_and_split_thresholds() {
    let case = load(&corpus().into_iter().find(|d| d.ends_with("lgbm_binary")).unwrap());
    assert!(case.rows.iter().any(|r| r.iter().any(|v| v.is_nan())), "no NaN rows");
    assert!(case.rows.iter().any(|r| r.iter().all(|v| v.is_nan())), "no all-NaN row");
}

#[test]
fn an_unsupported_operator_is_refused_by_name() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/refused/feature_vectorizer.onnx");
    let bytes = std::fs::read(path).unwrap();
    let err = TractBackend::load(&bytes, "input", 6).unwrap_err().to_string();
    assert!(
        err.contains("operator `FeatureVectorizer` (ai.onnx.ml) is not supported by the tract backend"),
        "{err}"
    );
}

#[test]
fn an_svm_refuses_an_input_of_another_width_at_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/svc_rbf_binary_proba/model.onnx");
    let bytes = std::fs::read(path).unwrap();
    let err = TractBackend::load(&bytes, "input", 5).unwrap_err().to_string();
    assert!(err.contains("does the graph's input take 5 columns"), "{err}");
}

/// A corpus model with one attribute of its first `op` node removed, built by our register.
fn without_attribute(model: &str, op: &str, attribute: &str) -> String {
    use tract_onnx::prelude::Framework;
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(model).join("model.onnx"),
    )
    .unwrap();
    let framework = fti_serve::backend::onnx_ml::onnx();
    let mut proto = framework.proto_model_for_read(&mut &bytes[..]).unwrap();
    let node = proto.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == op).unwrap();
    let before = node.attribute.len();
    node.attribute.retain(|a| a.name != attribute);
    assert_eq!(node.attribute.len(), before - 1, "{model} has no `{attribute}`");
    format!("{:#}", framework.model_for_proto_model(&proto).unwrap_err())
}

#[test]
fn a_broken_node_is_refused_naming_operator_node_and_attribute() {
    let err = without_attribute("svc_rbf_binary_proba", "SVMClassifier", "rho");
    assert!(err.contains("SVMClassifier `SVMc`: attribute `rho` has 0 values, expected 1"), "{err}");
    let err = without_attribute("svc_rbf_binary_proba", "SVMClassifier", "prob_b");
    assert!(err.contains("`prob_a` / `prob_b` have 1 / 0 values, expected 1"), "{err}");
    let err = without_attribute("rf_regressor", "TreeEnsembleRegressor", "nodes_treeids");
    assert!(
        err.contains("TreeEnsembleRegressor `TreeEnsembleRegressor`: attribute `nodes_treeids` is missing"),
        "{err}"
    );
    let err = without_attribute("label_encoder_string_to_int", "LabelEncoder", "values_int64s");
    assert!(err.contains("LabelEncoder ``: no values"), "{err}");
}

/// A registry version around a corpus model, with request features `f0..f5`.
fn version_dir(model: &str, outputs: &str) -> tempfile::TempDir {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(model).join("model.onnx");
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dir.path().join("model.onnx"), &bytes).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let request: Vec<String> = (0..6).map(|i| format!("{{ name = \"f{i}\", dtype = \"float\" }}")).collect();
    // A view needs an entity key; this one reads no group, so any key will do.
    let manifest = format!(
        "format = 1\n{outputs}\n[model]\nname = \"m\"\nversion = 1\nsha256 = \"{sha}\"\n\
         [model.input]\nname = \"input\"\ndtype = \"float32\"\n\
         [feature_view]\nname = \"v\"\nentities = [\"id\"]\ninput = [\"f0\", \"f1\", \"f2\", \"f3\", \"f4\", \"f5\"]\n\
         request = [{}]\n",
        request.join(", ")
    );
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    dir
}

#[test]
fn zipmap_outputs_render_as_maps_in_class_order_and_string_labels_by_name() {
    use fti_serve::predict::{OutputValue, extract};
    use fti_serve::registry::load::load_version as load;

    let outputs = r#"outputs = [
    { name = "probabilities", tensor = "probabilities", map = true, labels = ["no", "yes"] },
    { name = "label", tensor = "label" },
]"#;
    let dir = version_dir("lgbm_binary_zipmap", outputs);
    let v = load(
        dir.path(),
        "m",
        1,
        &fti_serve::registry::LoadOptions::default(),
        &fti_serve::metrics::Metrics::new(),
    )
    .unwrap();
    let case = load_case("lgbm_binary_zipmap");
    let tensors = v.backend.run(&case.rows[0], 1).unwrap();
    let OutputValue::Map(map) = extract(&v.outputs[0], &tensors, 0) else { panic!("not a map") };
    let want = case.golden["outputs"]["probabilities"]["data"][0].as_object().unwrap();
    assert_eq!(map.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["no", "yes"]);
    for ((_, got), w) in map.iter().zip(want.values()) {
        assert!(close(*got, w.as_f64().unwrap()));
    }
    let json = serde_json::to_string(&extract(&v.outputs[0], &tensors, 0)).unwrap();
    assert!(json.find("\"no\"").unwrap() < json.find("\"yes\"").unwrap(), "{json}");

    let labels = r#"outputs = [{ name = "label", tensor = "label", labels = ["high", "low", "mid"] }]"#;
    let dir = version_dir("rf_multiclass_strings", labels);
    let v = load(
        dir.path(),
        "m",
        1,
        &fti_serve::registry::LoadOptions::default(),
        &fti_serve::metrics::Metrics::new(),
    )
    .unwrap();
    let case = load_case("rf_multiclass_strings");
    let want = case.golden["outputs"]["label"]["data"].as_array().unwrap();
    for (r, row) in case.rows.iter().enumerate() {
        let tensors = v.backend.run(row, 1).unwrap();
        assert_eq!(extract(&v.outputs[0], &tensors, 0), OutputValue::Str(want[r].as_str().unwrap().into()));
    }
}

#[test]
fn a_map_output_needs_one_label_per_class() {
    let outputs = r#"outputs = [{ name = "p", tensor = "probabilities", map = true, labels = ["only"] }]"#;
    let dir = version_dir("lgbm_binary_zipmap", outputs);
    let err = fti_serve::registry::load::load_version(
        dir.path(),
        "m",
        1,
        &fti_serve::registry::LoadOptions::default(),
        &fti_serve::metrics::Metrics::new(),
    )
    .unwrap_err();
    assert!(err.contains("1 labels for 2 classes"), "{err}");
}

fn load_case(name: &str) -> Case {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name))
}

/// String and int64 inputs, fed to a plan built from `onnx_ml::onnx()` with a symbolic batch.
mod typed {
    use std::path::Path;

    use serde_json::Value;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::internal::tract_ndarray::{ArrayD, IxDyn};

    pub fn run(dir: &Path) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let golden = super::read_golden(dir);
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        let framework = fti_serve::backend::onnx_ml::onnx();
        let mut model = framework.model_for_read(&mut &bytes[..]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let strings = golden["input_dtype"] == "string";
        let rank1 = golden["input_rank"] == 1;
        let width = golden["width"].as_u64().unwrap() as usize;
        let batch = model.sym("batch").to_dim();
        let shape = if rank1 { tvec![batch] } else { tvec![batch, width.to_dim()] };
        let dt = if strings { String::datum_type() } else { i64::datum_type() };
        model.set_input_fact(0, InferenceFact::dt_shape(dt, shape)).unwrap();
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));

        let rows: Vec<&Value> = golden["rows"].as_array().unwrap().iter().collect();
        let input = |rows: &[&Value]| -> Tensor {
            let values: Vec<&Value> = rows.iter().flat_map(|r| r.as_array().unwrap()).collect();
            let shape: Vec<usize> = if rank1 { vec![rows.len()] } else { vec![rows.len(), width] };
            if strings {
                let v: Vec<String> = values.iter().map(|v| v.as_str().unwrap().to_string()).collect();
                ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap().into()
            } else {
                let v: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
                Tensor::from_shape(&shape, &v).unwrap()
            }
        };
        let outputs = golden["outputs"].as_object().unwrap();
        let got = plan.run(tvec![input(&rows).into()]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(got.len(), outputs.len(), "{name}: outputs");
        for ((out, want), got) in outputs.iter().zip(&got) {
            let shape: Vec<usize> =
                want["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            assert_eq!(got.shape(), shape.as_slice(), "{name}: output `{out}` shape");
            compare(&format!("{name}: output `{out}`"), got, want, 0);
        }
        for r in 0..rows.len() {
            let got = plan.run(tvec![input(&rows[r..=r]).into()]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            for ((out, want), got) in outputs.iter().zip(&got) {
                compare(&format!("{name}: output `{out}` row {r}"), got, want, r);
            }
        }
    }

    /// Compares `got` with the golden `want` from row `first` on.
    fn compare(at: &str, got: &TValue, want: &Value, first: usize) {
        let per_row: usize = got.shape().iter().skip(1).product();
        let data = &want["data"].as_array().unwrap()[first * per_row..];
        match want["kind"].as_str().unwrap() {
            "float" => {
                let got = got.cast_to::<f64>().unwrap();
                let got = got.to_plain_array_view::<f64>().unwrap();
                for (i, (g, w)) in got.iter().zip(data).enumerate() {
                    let w = w.as_f64().unwrap_or(f64::NAN);
                    assert!(super::close(*g, w), "{at} element {i}: got {g} want {w}");
                }
            }
            "int" => {
                let got = got.to_plain_array_view::<i64>().unwrap_or_else(|e| panic!("{at}: {e}"));
                for (i, (g, w)) in got.iter().zip(data).enumerate() {
                    assert_eq!(*g, w.as_i64().unwrap(), "{at} element {i}");
                }
            }
            "string" => {
                let got = got.to_plain_array_view::<String>().unwrap_or_else(|e| panic!("{at}: {e}"));
                for (i, (g, w)) in got.iter().zip(data).enumerate() {
                    assert_eq!(g, w.as_str().unwrap(), "{at} element {i}");
                }
            }
            other => panic!("{at}: unknown kind {other}"),
        }
    }
}
