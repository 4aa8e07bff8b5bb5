//! Loading one version directory: manifest, checksum, feature view, backend, output
//! plans, warm-up. Any failure is a reason a human can act on.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use super::outputs::OutputPlan;
use super::version::ModelVersion;
use crate::backend::ort::{OrtBackend, OrtOptions};
use crate::backend::tract::TractBackend;
use crate::backend::{Backend, BackendKind, TensorMeta};
use crate::features::FeatureView;
use crate::metrics::Metrics;

/// How versions are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Models faster than this at warm-up run inline on the request's task.
    pub inline_threshold: Duration,
    /// Backend for manifests that name none.
    pub default_backend: BackendKind,
    pub ort: OrtOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            inline_threshold: Duration::from_micros(200),
            default_backend: BackendKind::Tract,
            ort: OrtOptions::default(),
        }
    }
}

/// Loads one version directory.
pub fn load_version(
    dir: &Path,
    model: &str,
    version: u64,
    options: &LoadOptions,
    metrics: &Metrics,
) -> Result<ModelVersion, String> {
    let manifest = Manifest::read(&dir.join("manifest.toml"))?;
    // MLflow numbers the versions it registers: a downloaded version is what MLflow says.
    let from_mlflow = dir.join(super::dir::MLFLOW_SOURCE_FILE).is_file();
    if !from_mlflow && (manifest.model.name != model || manifest.model.version != version) {
        return Err(format!(
            "manifest says {} version {}, but it sits in {}",
            manifest.model.name,
            manifest.model.version,
            dir.display()
        ));
    }
    let file = dir.join(&manifest.model.file);
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if !digest.eq_ignore_ascii_case(manifest.model.sha256.trim()) {
        return Err(format!(
            "checksum mismatch: manifest says sha256 {}, {} hashes to {digest}",
            manifest.model.sha256,
            file.display()
        ));
    }
    let view = FeatureView::compile(manifest.feature_view.clone()).map_err(|e| e.to_string())?;
    if let Some(reference) = &manifest.reference {
        let outputs: Vec<String> = manifest.outputs.iter().map(|o| o.name.clone()).collect();
        reference.check(view.input_names(), &outputs)?;
    }
    let input = &manifest.model.input.name;
    let backend: Box<dyn Backend> = match manifest.model.backend.unwrap_or(options.default_backend) {
        BackendKind::Tract => {
            Box::new(TractBackend::load(&bytes, input, view.width()).map_err(|e| format!("tract: {e}"))?)
        }
        BackendKind::Ort => Box::new(
            OrtBackend::load(&bytes, input, view.width(), &options.ort).map_err(|e| format!("ort: {e}"))?,
        ),
    };
    let outputs = manifest
        .outputs
        .iter()
        .map(|o| OutputPlan::new(o, backend.output_names()))
        .collect::<Result<Vec<_>, _>>()?;
    let (warmup_latency, tensors) = warm_up(backend.as_ref(), view.width(), &outputs)?;
    let version_label = version.to_string();
    Ok(ModelVersion {
        metrics: metrics.for_version(model, &version_label, backend.kind().as_str()),
        model: model.to_string(),
        version,
        version_label,
        inline: warmup_latency <= options.inline_threshold,
        manifest,
        view,
        backend,
        outputs,
        warmup_latency,
        tensors,
    })
}

/// Runs batches of 1 and 3 zero rows: proves the graph takes the view's width at any
/// batch size, that every output has one row per input row (its first axis is the
/// batch), that the declared outputs fit, and that results are finite. Returns the
/// fastest of a few single-row runs.
fn warm_up(
    backend: &dyn Backend,
    width: usize,
    outputs: &[OutputPlan],
) -> Result<(Duration, Vec<TensorMeta>), String> {
    let rows = 3;
    let input = vec![0.0f32; rows * width];
    let tensors = backend.run(&input, rows).map_err(|e| format!("warm-up: {e}"))?;
    if tensors.len() != backend.output_names().len() {
        return Err(format!(
            "warm-up: the graph returned {} outputs for {} names",
            tensors.len(),
            backend.output_names().len()
        ));
    }
    for (t, name) in tensors.iter().zip(backend.output_names()) {
        let expected = rows.checked_mul(t.row_width());
        if t.shape.first() != Some(&rows) || expected != Some(t.len()) {
            return Err(format!(
                "warm-up: output `{name}` has shape {:?} for a batch of {rows} rows; every output's first \
                 axis must be the batch",
                t.shape
            ));
        }
    }
    for plan in outputs {
        plan.check(&tensors)?;
    }
    for (t, name) in tensors.iter().zip(backend.output_names()) {
        let finite = (0..t.len()).all(|i| t.get_f64(i).is_finite());
        if !finite {
            return Err(format!("warm-up: output `{name}` is not finite on an all-zero input"));
        }
    }
    let meta = tensors
        .iter()
        .zip(backend.output_names())
        .map(|(t, name)| TensorMeta {
            name: name.clone(),
            datatype: t.datatype(),
            shape: t.shape.iter().enumerate().map(|(i, &d)| if i == 0 { -1 } else { d as i64 }).collect(),
        })
        .collect();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        backend.run(&input[..width], 1).map_err(|e| format!("warm-up: {e}"))?;
        best = best.min(start.elapsed());
    }
    Ok((best, meta))
}
