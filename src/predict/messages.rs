//! The core's request and response types: what transports decode into and encode from.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Tensor;
use crate::features::feast::EventTime;
use crate::features::{DType, RequestValue, Value};
pub use crate::registry::named_outputs::OutputValue;

/// One row to predict: entity keys and request-time values, as the client named them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictRow {
    pub entities: Vec<(String, String)>,
    pub features: Vec<(String, RequestValue)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictRequest {
    pub rows: Vec<PredictRow>,
    /// Batch requests name fields `rows[i].…` in errors; single ones do not.
    pub batch: bool,
    /// Return the assembled model input vector with each prediction, and what each
    /// feature group read ([`GroupReport`]).
    pub return_features: bool,
    /// The client's own deadline (gRPC `grpc-timeout`, HTTP `X-Request-Timeout-Ms`); the
    /// shorter of it and `server.request_timeout_ms` wins.
    pub timeout: Option<Duration>,
    /// The caller's id for the request (`x-request-id`); the core makes one without it.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowPrediction {
    pub outputs: Vec<(String, OutputValue)>,
    pub missing_features: Vec<Arc<str>>,
    pub features: Option<Vec<(String, f64)>>,
    /// With `return_features`: one report per feature group, in the view's order.
    pub groups: Option<Vec<GroupReport>>,
}

/// What one feature group read for one row, for debugging and for checking a feature
/// store's values: whether the entity was found (and fresh), when its values were
/// computed (Feast groups), and each stored value before defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    pub group: Arc<str>,
    /// `found`, `not_found` or `stale`.
    pub status: &'static str,
    pub event_time: Option<EventTime>,
    /// (feature, dtype, stored value); `None` where nothing valid is stored.
    pub values: Vec<(Arc<str>, DType, Option<Value>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PredictResponse {
    pub model: String,
    pub version: u64,
    /// The caller's id, or the one the core made: the key of the prediction record.
    pub request_id: String,
    pub rows: Vec<RowPrediction>,
}

/// A raw input tensor for protocols that send the model's input directly (Open
/// Inference Protocol): no entity lookup, no on-demand features.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// The client's own deadline, as for [`PredictRequest::timeout`].
    pub timeout: Option<Duration>,
}

/// A graph output by its ONNX name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

/// The answer to a raw-tensor request: every graph output, in the graph's order.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    pub model: String,
    pub version: u64,
    pub outputs: Vec<NamedTensor>,
}
