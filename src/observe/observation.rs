//! What the request path hands over after answering: the pieces of one request, moved (not
//! copied) where it can, turned into records and drift counts off the request path.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::Tensor;
use crate::features::RequestValue;
use crate::registry::ModelVersion;
use crate::registry::rollout::Arm;

pub struct Observation {
    pub request_id: String,
    /// When the answer was ready.
    pub time: SystemTime,
    pub version: Arc<ModelVersion>,
    /// The alias the request named (`None`: it named a version).
    pub alias: Option<String>,
    pub arm: Arm,
    /// Per row, the entity keys and the request values as the client sent them.
    pub entities: Vec<Vec<(String, String)>>,
    pub request: Vec<Vec<(String, RequestValue)>>,
    /// The batch's input vectors, `rows.len() * width` values in the model's order.
    pub input: Vec<f32>,
    /// Per row, the fields that took their defaults.
    pub missing: Vec<Vec<Arc<str>>>,
    /// The model's output tensors for the batch (the named outputs are extracted again
    /// off the request path).
    pub tensors: Vec<Tensor>,
    pub latency: Duration,
    /// Write it to the prediction log (else it only feeds the drift windows).
    pub log: bool,
}

impl Observation {
    /// One row's input vector.
    pub fn input_row(&self, row: usize) -> &[f32] {
        let width = self.version.view.width();
        &self.input[row * width..(row + 1) * width]
    }
}
