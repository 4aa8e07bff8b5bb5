//! A loaded, validated, warmed model version: everything a request needs from it.

use std::time::Duration;

use super::manifest::Manifest;
use super::outputs::OutputPlan;
use crate::backend::{Backend, TensorMeta};
use crate::features::FeatureView;
use crate::metrics::VersionMetrics;

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
    /// This version's request series.
    pub metrics: VersionMetrics,
}
