//! The core: the one door every transport (HTTP, gRPC, the Open Inference Protocol on
//! both) uses. Transports decode into the core's request types, call a [`Predictor`]
//! method and encode the core's response types; they never see the registry, a loaded
//! version or a backend.
//!
//! - [`Predictor::predict`] ([`pipeline`]): entity IDs and request values in, named
//!   outputs out: resolve the version, fetch features, compute on-demand features,
//!   assemble the input batch, run the model, name the outputs.
//! - [`Predictor::infer`] ([`infer`]): a raw input tensor in, output tensors out.
//! - [`describe`]: readiness, what is served, protocol metadata.
//! - [`manage`]: alias moves, history, loading and unloading models.
//!
//! Every request runs through [`Predictor`]'s one wrapper (resolve, deadline, outcome
//! metrics), so the transports and both request kinds count and time out alike.

mod admission;
pub mod describe;
mod guard;
mod infer;
pub mod manage;
mod messages;
mod pipeline;
mod predictor;
mod shadow;

pub use crate::backend::{Tensor, TensorData, TensorMeta};
pub use crate::features::RequestValue;
pub use crate::registry::PRODUCTION;
pub use crate::registry::Target;
pub use crate::registry::named_outputs::extract;
pub use admission::Permit;
pub use messages::{
    GroupReport, InferResponse, NamedTensor, OutputValue, PredictRequest, PredictResponse, PredictRow,
    RowPrediction, TensorInput,
};
pub use predictor::{Limits, Predictor};
