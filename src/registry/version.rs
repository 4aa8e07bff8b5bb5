//! A loaded, validated, warmed model version, and how its outputs become named values.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, OutputSpec};
use crate::backend::ort::OrtBackend;
use crate::backend::tract::TractBackend;
use crate::backend::{Backend, BackendKind, Tensor, TensorData, TensorMeta};
use crate::config::OrtConfig;
use crate::features::FeatureView;

#[derive(Debug)]
pub struct ModelVersion {
    pub model: String,
    pub version: u64,
    pub version_label: String,
    pub manifest: Manifest,
    pub view: FeatureView,
    pub backend: Box<dyn Backend>,
    pub outputs: Vec<OutputPlan>,
    /// Run on the request's task (fast models) or on the blocking pool (slow ones).
    pub inline: bool,
    /// Fastest single-row run seen during warm-up.
    pub warmup_latency: Duration,
    /// The graph's outputs as warm-up saw them (for protocol metadata).
    pub tensors: Vec<TensorMeta>,
}

#[derive(Debug, Clone)]
pub struct OutputPlan {
    pub name: String,
    tensor: usize,
    kind: OutputKind,
}

#[derive(Debug, Clone)]
enum OutputKind {
    Row,
    Column(usize),
    Threshold {
        column: usize,
        threshold: f64,
        labels: Option<Vec<String>>,
    },
    Argmax {
        labels: Option<Vec<String>>,
    },
    /// `{label: value}` per row, in column order.
    Map {
        labels: Vec<String>,
    },
    /// An integer output holding an index into `labels`.
    Index {
        labels: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutputValue {
    Int(i64),
    Num(f64),
    Str(String),
    List(Vec<f64>),
    /// Keys in column (class) order.
    Map(Vec<(String, f64)>),
}

impl OutputPlan {
    fn new(spec: &OutputSpec, output_names: &[String]) -> Result<OutputPlan, String> {
        let tensor = output_names.iter().position(|n| *n == spec.tensor).ok_or_else(|| {
            format!(
                "output `{}` reads tensor `{}`, but the graph's outputs are: {}",
                spec.name,
                spec.tensor,
                output_names.join(", ")
            )
        })?;
        let kind = match (spec.column, spec.threshold, spec.argmax) {
            _ if spec.map => OutputKind::Map { labels: spec.labels.clone().unwrap_or_default() },
            (_, _, true) => OutputKind::Argmax { labels: spec.labels.clone() },
            (Some(column), Some(threshold), false) => {
                OutputKind::Threshold { column, threshold, labels: spec.labels.clone() }
            }
            (Some(column), None, false) => OutputKind::Column(column),
            (None, _, false) => match &spec.labels {
                Some(labels) => OutputKind::Index { labels: labels.clone() },
                None => OutputKind::Row,
            },
        };
        Ok(OutputPlan { name: spec.name.clone(), tensor, kind })
    }

    /// Checks the plan against real output shapes (from warm-up).
    fn check(&self, tensors: &[Tensor]) -> Result<(), String> {
        let width = tensors[self.tensor].row_width();
        let column = match &self.kind {
            OutputKind::Column(c) | OutputKind::Threshold { column: c, .. } => Some(*c),
            _ => None,
        };
        if let Some(c) = column
            && c >= width
        {
            return Err(format!(
                "output `{}` takes column {c}, but its tensor has {width} per row",
                self.name
            ));
        }
        match &self.kind {
            OutputKind::Argmax { labels: Some(labels) } | OutputKind::Map { labels }
                if labels.len() != width =>
            {
                Err(format!("output `{}` has {} labels for {width} classes", self.name, labels.len()))
            }
            OutputKind::Index { .. }
                if width != 1 || !matches!(tensors[self.tensor].data, TensorData::I64(_)) =>
            {
                Err(format!(
                    "output `{}` maps an index to `labels`, but its tensor is not one integer per row",
                    self.name
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn extract(&self, tensors: &[Tensor], row: usize) -> OutputValue {
        let t = &tensors[self.tensor];
        let width = t.row_width();
        let base = row * width;
        let label = |i: usize, labels: &Option<Vec<String>>| match labels {
            Some(l) => OutputValue::Str(l[i].clone()),
            None => OutputValue::Int(i as i64),
        };
        match &self.kind {
            OutputKind::Row if width == 1 => match &t.data {
                TensorData::I64(v) => OutputValue::Int(v[base]),
                _ => OutputValue::Num(t.get_f64(base)),
            },
            OutputKind::Row => OutputValue::List((base..base + width).map(|i| t.get_f64(i)).collect()),
            OutputKind::Column(c) => OutputValue::Num(t.get_f64(base + c)),
            OutputKind::Threshold { column, threshold, labels } => {
                label(usize::from(t.get_f64(base + column) >= *threshold), labels)
            }
            OutputKind::Map { labels } => OutputValue::Map(
                labels.iter().enumerate().map(|(i, l)| (l.clone(), t.get_f64(base + i))).collect(),
            ),
            OutputKind::Index { labels } => {
                let index = t.get_f64(base) as i64;
                match usize::try_from(index).ok().and_then(|i| labels.get(i)) {
                    Some(l) => OutputValue::Str(l.clone()),
                    None => OutputValue::Int(index),
                }
            }
            OutputKind::Argmax { labels } => {
                // First maximum wins ties, as numpy's argmax does.
                let best = (0..width)
                    .fold(0, |best, i| if t.get_f64(base + i) > t.get_f64(base + best) { i } else { best });
                label(best, labels)
            }
        }
    }
}

/// How versions are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Models faster than this at warm-up run inline on the request's task.
    pub inline_threshold: Duration,
    /// Backend for manifests that name none.
    pub default_backend: BackendKind,
    pub ort: OrtConfig,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            inline_threshold: Duration::from_micros(200),
            default_backend: BackendKind::Tract,
            ort: OrtConfig::default(),
        }
    }
}

/// Loads one version directory: manifest, checksum, feature view, backend, output plans,
/// warm-up. Any failure is a reason a human can act on.
pub fn load(dir: &Path, model: &str, version: u64, options: &LoadOptions) -> Result<ModelVersion, String> {
    let manifest = Manifest::read(&dir.join("manifest.toml"))?;
    if manifest.model.name != model || manifest.model.version != version {
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
    Ok(ModelVersion {
        model: model.to_string(),
        version,
        version_label: version.to_string(),
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
/// batch size, that the declared outputs fit, and that results are finite. Returns the
/// fastest of a few single-row runs.
fn warm_up(
    backend: &dyn Backend,
    width: usize,
    outputs: &[OutputPlan],
) -> Result<(Duration, Vec<TensorMeta>), String> {
    let rows = 3;
    let input = vec![0.0f32; rows * width];
    let tensors = backend.run(&input, rows).map_err(|e| format!("warm-up: {e}"))?;
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
