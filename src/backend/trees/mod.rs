//! Our tree-ensemble engine: a [`Spec`] (what the ONNX attributes say) compiles into an
//! [`Ensemble`] laid out for fast walks (see [`layout`]); [`Ensemble::classify`] and
//! [`Ensemble::regress`] evaluate a batch with onnxruntime's output rules. It knows
//! nothing about tract or ONNX protobufs: [`super::onnx_ml`] plugs it into tract.

mod finish;
pub mod layout;
mod spec;
mod walk;

pub use crate::backend::post_transform::PostTransform;
pub use finish::TreeClassification;
pub use layout::Ensemble;
pub use spec::{Aggregate, Child, Mode, NodeSpec, Spec, Task, Vote};

#[cfg(test)]
mod tests;
