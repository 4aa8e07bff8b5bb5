//! `manifest.toml`: what a model version is (file, checksum, graph input, outputs and
//! their post-processing) and the feature view it was trained with.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::reference::Reference;
use crate::backend::BackendKind;
use crate::features::FeatureViewSpec;

/// The manifest format this build reads.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub model: ModelSection,
    pub outputs: Vec<OutputSpec>,
    /// Free-form training metadata (metrics, row counts), shown to operators.
    #[serde(default)]
    pub training: toml::Table,
    pub feature_view: FeatureViewSpec,
    /// The training data's distribution, for drift monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: String,
    pub version: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub framework: String,
    /// Model file, relative to the version directory.
    #[serde(default = "default_file")]
    pub file: String,
    /// Hex sha256 of the model file; a mismatch refuses the version.
    pub sha256: String,
    #[serde(default)]
    pub backend: Option<BackendKind>,
    pub input: InputSpec,
}

fn default_file() -> String {
    "model.onnx".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The ONNX graph input that receives the feature vector, shape `[batch, width]`.
    pub name: String,
    pub dtype: InputDType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputDType {
    Float32,
}

/// One named output in responses. Without `column`/`argmax` the whole tensor row is
/// returned (a number when the row has one value).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    /// ONNX output name.
    pub tensor: String,
    /// Take this column of a `[batch, k]` tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// With `column`: answer 1 when the value is at least this, else 0 (or `labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The index of the largest column (or `labels[index]`).
    #[serde(default)]
    pub argmax: bool,
    /// Render the row as an object `{label: value}`, keys in column order (a ZipMap
    /// output, or any probabilities tensor). Needs `labels`, one per column.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub map: bool,
    /// Class names for `argmax` / `threshold` / `map`. Alone, on an integer output of
    /// one value per row, they name the index it holds (string class labels of tree
    /// ensembles come back as indices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Manifest::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(format!(
                "manifest format {} is not supported (this build reads format {MANIFEST_FORMAT})",
                manifest.format
            ));
        }
        manifest.check_outputs()?;
        Ok(manifest)
    }

    fn check_outputs(&self) -> Result<(), String> {
        if self.outputs.is_empty() {
            return Err("`outputs` must declare at least one output".into());
        }
        for (i, o) in self.outputs.iter().enumerate() {
            let at = format!("outputs[{i}] (`{}`)", o.name);
            if self.outputs[..i].iter().any(|p| p.name == o.name) {
                return Err(format!("{at}: name used twice"));
            }
            if o.argmax && (o.column.is_some() || o.threshold.is_some()) {
                return Err(format!("{at}: `argmax` cannot be combined with `column`/`threshold`"));
            }
            if o.threshold.is_some() && o.column.is_none() {
                return Err(format!("{at}: `threshold` needs `column`"));
            }
            if let (Some(labels), Some(_)) = (&o.labels, o.threshold)
                && labels.len() != 2
            {
                return Err(format!("{at}: `threshold` takes exactly 2 labels"));
            }
            if o.map && (o.argmax || o.column.is_some() || o.threshold.is_some()) {
                return Err(format!("{at}: `map` cannot be combined with `argmax`/`column`/`threshold`"));
            }
            if o.map && o.labels.is_none() {
                return Err(format!("{at}: `map` needs `labels`, one per column"));
            }
            if o.labels.is_some() && o.column.is_some() && o.threshold.is_none() {
                return Err(format!("{at}: `labels` with `column` needs `threshold`"));
            }
        }
        Ok(())
    }
}
