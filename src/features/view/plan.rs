//! A compiled feature view: the plan a model version follows to turn entity keys,
//! request values and fetched group values into the model's input vector.

use std::sync::Arc;

use super::spec::{FeatureViewSpec, OnMissing};
use crate::features::value::{DType, Value};
use crate::transform::{Frame, Program, Slot};

/// One precomputed feature of a group, or one request feature.
#[derive(Debug)]
pub struct Field {
    pub name: Arc<str>,
    pub dtype: DType,
    pub default: Option<Value>,
    /// What a request value must satisfy (request features only; stored values are the
    /// feature pipeline's and are taken as they are).
    pub constraints: Constraints,
    pub(super) slot: Slot,
}

/// A request feature's declared bounds. Numbers must be finite unless
/// `allow_non_finite` is set.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub allowed: Option<Vec<Value>>,
    pub allow_non_finite: bool,
}

#[derive(Debug)]
pub struct GroupPlan {
    pub name: Arc<str>,
    /// Positions in the view's entity list, in key order.
    pub(super) key_entities: Vec<usize>,
    pub on_missing: OnMissing,
    pub fields: Vec<Field>,
    pub(super) field_names: Vec<String>,
    /// Identifies (group, fields, dtypes): cache entries are shared by views that read
    /// the same fields the same way.
    pub id: u64,
}

/// What the store returned for one (group, entity): `None` when the entity is absent.
pub type GroupValues = Option<Arc<[Option<Value>]>>;

#[derive(Debug)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    pub groups: Vec<GroupPlan>,
    pub request: Vec<Field>,
    pub(super) program: Program,
    /// Index into `Frame::nums` of each model input column.
    pub(super) input: Vec<usize>,
    pub(super) input_names: Vec<String>,
    pub(super) spec: FeatureViewSpec,
}

impl FeatureView {
    pub fn spec(&self) -> &FeatureViewSpec {
        &self.spec
    }

    /// Width of the model input vector.
    pub fn width(&self) -> usize {
        self.input.len()
    }

    /// Column names of the input vector (vector features expanded as `name.label`).
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn new_frame(&self) -> Frame {
        self.program.frame()
    }

    /// Computes the on-demand features of a filled frame.
    pub fn compute(&self, frame: &mut Frame) {
        self.program.run(frame);
    }

    /// Appends the frame's model input vector to `out`.
    pub fn push_input(&self, frame: &Frame, out: &mut Vec<f32>) {
        out.extend(self.input.iter().map(|&i| frame.nums[i] as f32));
    }

    /// The input vector in f64 with its column names, for `return_features` and the CLI.
    pub fn input_values<'a>(&'a self, frame: &'a Frame) -> impl Iterator<Item = (&'a str, f64)> {
        self.input_names.iter().map(String::as_str).zip(self.input.iter().map(|&i| frame.nums[i]))
    }
}
