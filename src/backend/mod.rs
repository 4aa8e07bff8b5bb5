//! Model execution behind one sync trait. Implementations: [`tract`] (pure Rust, the
//! default), extended with the ai.onnx.ml operators of [`onnx_ml`], whose tree ensembles
//! and SVMs run on our own engines, [`trees`] and [`svm`]; and [`ort`] (ONNX Runtime,
//! loaded at run time). [`post_transform`] holds the score transforms both engines share.
//! Backends are sync because inference is CPU-bound: the caller decides whether a call
//! runs inline or on the blocking pool.

pub mod onnx_ml;
pub mod ort;
pub mod post_transform;
pub mod svm;
pub mod tract;
pub mod trees;

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Tract,
    Ort,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model output, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// An output's name, Open Inference Protocol datatype and shape (`-1` for the batch axis),
/// as observed at warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

impl Tensor {
    /// The Open Inference Protocol datatype name.
    pub fn datatype(&self) -> &'static str {
        match &self.data {
            TensorData::F32(_) => "FP32",
            TensorData::F64(_) => "FP64",
            TensorData::I64(_) => "INT64",
        }
    }

    /// Values per row for a tensor whose first axis is the batch.
    pub fn row_width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Whether any value is NaN or infinite (integers never are).
    pub fn has_non_finite(&self) -> bool {
        match &self.data {
            TensorData::F32(v) => v.iter().any(|x| !x.is_finite()),
            TensorData::F64(v) => v.iter().any(|x| !x.is_finite()),
            TensorData::I64(_) => false,
        }
    }

    pub fn get_f64(&self, index: usize) -> f64 {
        match &self.data {
            TensorData::F32(v) => f64::from(v[index]),
            TensorData::F64(v) => v[index],
            TensorData::I64(v) => v[index] as f64,
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot load model: {0}")]
    Load(String),
    #[error("model run failed: {0}")]
    Run(String),
}

pub trait Backend: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// ONNX output names, in the order `run` returns them.
    fn output_names(&self) -> &[String];

    /// Runs a batch: `input` holds `rows` rows of the model's input width, row-major.
    fn run(&self, input: &[f32], rows: usize) -> Result<Vec<Tensor>, BackendError>;
}

/// Checks that a graph takes the one input the manifest names: fti-serve feeds exactly one
/// tensor. `inputs` are the graph's input names, in order.
pub(crate) fn check_single_input(inputs: &[&str], input_name: &str) -> Result<(), BackendError> {
    match inputs {
        [only] if *only == input_name => Ok(()),
        [only] => Err(BackendError::Load(format!(
            "the graph's input is `{only}`, the manifest says `{input_name}`"
        ))),
        _ => Err(BackendError::Load(format!(
            "the graph has {} inputs ({}); fti-serve feeds exactly one",
            inputs.len(),
            inputs.join(", ")
        ))),
    }
}
