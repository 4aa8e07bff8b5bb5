//! What the server can tell about itself: readiness, what each model serves (per
//! version, ready or refused with the reason), and the Open Inference Protocol's model
//! metadata. Transports render these types; they never read the registry themselves.

use std::collections::BTreeMap;

use serde::Serialize;

use super::predictor::Predictor;
use crate::Error;
use crate::backend::TensorMeta;
use crate::features::DType;
use crate::observe::VersionDrift;
use crate::registry::mlflow::SourceStatus;
use crate::registry::rollout::{GuardSpec, Rollout, ShadowSpec};
use crate::registry::rollout_figures::Figures;
use crate::registry::{ModelEntry, ModelVersion, Target, VersionState};

/// `/health/ready`: every served model has a loaded production version and the online
/// store answered its last ping.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// A shutdown has begun: not ready, whatever else holds.
    pub draining: bool,
    pub models: BTreeMap<String, bool>,
    pub store: StoreStatus,
    /// The MLflow source, when the registry has one. Not part of `ready`: the cached
    /// versions serve while it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_source: Option<SourceStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub up: bool,
    /// Kind and address, never credentials.
    pub store: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
    pub store: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub ready: bool,
    pub aliases: BTreeMap<String, u64>,
    pub alias_errors: BTreeMap<String, String>,
    pub state_error: Option<String>,
    /// Rollouts in progress, by alias: canary, shadow and guard as declared, and the live
    /// figures over the guard's window (60 s without one).
    pub rollouts: BTreeMap<String, RolloutInfo>,
    pub versions: Vec<VersionInfo>,
    /// By version: the drift window against the training reference (docs/prediction-log.md).
    pub drift: BTreeMap<u64, VersionDrift>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutInfo {
    pub canary: Option<Rollout>,
    pub shadow: Option<ShadowSpec>,
    pub guard: Option<GuardSpec>,
    pub figures: Figures,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VersionInfo {
    Ready(Box<ReadyVersion>),
    Failed { version: u64, reason: String },
    NotLoaded { version: u64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadyVersion {
    pub version: u64,
    pub backend: &'static str,
    pub description: String,
    pub created_at: String,
    pub framework: String,
    pub sha256: String,
    /// `inline` (on the request's task) or `blocking-pool`.
    pub inference: &'static str,
    pub warmup_latency_us: f64,
    pub input: InputInfo,
    pub outputs: Vec<String>,
    pub feature_view: ViewInfo,
    pub training: toml::Table,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub tensor: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewInfo {
    pub name: String,
    pub entities: Vec<String>,
    pub groups: Vec<GroupInfo>,
    pub request: Vec<RequestFeatureInfo>,
    pub on_demand: Vec<OnDemandInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub entities: Vec<String>,
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestFeatureInfo {
    pub name: String,
    pub dtype: DType,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct OnDemandInfo {
    pub name: String,
    pub expr: String,
}

/// The Open Inference Protocol's model metadata, for both of its transports.
#[derive(Debug, Clone)]
pub struct ModelMetadata {
    pub name: String,
    /// Every ready version, ascending.
    pub versions: Vec<u64>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
}

/// The server's name and version, for protocol metadata.
pub const SERVER_NAME: &str = "fti-serve";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Predictor {
    /// Ready when every served model has a loaded production version and the store
    /// answered its last ping.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.0.registry.snapshot().is_ready() && self.0.features.is_up()
    }

    pub fn readiness(&self) -> Readiness {
        let snapshot = self.0.registry.snapshot();
        let models: BTreeMap<String, bool> =
            snapshot.models.iter().map(|(name, entry)| (name.clone(), entry.is_ready())).collect();
        let up = self.0.features.is_up();
        let draining = self.is_draining();
        Readiness {
            ready: !draining && snapshot.is_ready() && up,
            draining,
            models,
            store: StoreStatus { up, store: self.0.features.describe() },
            registry_source: self.0.registry.source().map(|s| s.status()),
        }
    }

    pub fn models(&self) -> ModelList {
        let snapshot = self.0.registry.snapshot();
        let models =
            snapshot.models.iter().map(|(name, entry)| self.with_drift(model_info(name, entry))).collect();
        ModelList { models, store: self.0.features.describe() }
    }

    pub fn model(&self, model: &str) -> Result<ModelInfo, Error> {
        let snapshot = self.0.registry.snapshot();
        let entry =
            snapshot.models.get(model).ok_or_else(|| Error::ModelNotFound { model: model.to_string() })?;
        Ok(self.with_drift(model_info(model, entry)))
    }

    fn with_drift(&self, mut info: ModelInfo) -> ModelInfo {
        info.drift = self.0.observer.drift_of(&info.name).into_iter().collect();
        info
    }

    /// Whether `target` of `model` resolves to a loaded version.
    pub fn model_ready(&self, model: &str, target: &Target) -> bool {
        self.0.registry.snapshot().resolve(model, target).is_ok()
    }

    pub fn model_metadata(&self, model: &str, target: &Target) -> Result<ModelMetadata, Error> {
        let snapshot = self.0.registry.snapshot();
        let v = snapshot.resolve(model, target)?;
        let versions = snapshot.models.get(model).map(ready_versions).unwrap_or_default();
        let input = TensorMeta {
            name: v.manifest.model.input.name.clone(),
            datatype: "FP32",
            shape: vec![-1, v.view.width() as i64],
        };
        Ok(ModelMetadata {
            name: model.to_string(),
            versions,
            platform: "onnx",
            inputs: vec![input],
            outputs: v.tensors.clone(),
        })
    }
}

fn ready_versions(entry: &ModelEntry) -> Vec<u64> {
    entry.versions.iter().filter(|(_, s)| matches!(s, VersionState::Ready(_))).map(|(v, _)| *v).collect()
}

fn model_info(name: &str, entry: &ModelEntry) -> ModelInfo {
    let versions = entry
        .versions
        .iter()
        .map(|(&version, state)| match state {
            VersionState::Ready(v) => VersionInfo::Ready(Box::new(ready_version(v))),
            VersionState::Failed(reason) => VersionInfo::Failed { version, reason: reason.clone() },
        })
        .chain(
            entry
                .on_disk
                .iter()
                .filter(|v| !entry.versions.contains_key(v))
                .map(|&version| VersionInfo::NotLoaded { version }),
        )
        .collect();
    ModelInfo {
        name: name.to_string(),
        ready: entry.is_ready(),
        aliases: entry.aliases.clone(),
        alias_errors: entry.alias_errors.clone(),
        state_error: entry.state_error.clone(),
        rollouts: entry
            .rollouts
            .iter()
            .map(|(alias, r)| {
                let info = RolloutInfo {
                    canary: r.canary.as_ref().map(|(d, _)| d.clone()),
                    shadow: r.shadow.as_ref().map(|(d, _)| d.clone()),
                    guard: r.guard.clone(),
                    figures: r.figures.figures(),
                };
                (alias.clone(), info)
            })
            .collect(),
        versions,
        drift: BTreeMap::new(),
    }
}

fn ready_version(v: &ModelVersion) -> ReadyVersion {
    let m = &v.manifest;
    let view = v.view.spec();
    ReadyVersion {
        version: v.version,
        backend: v.backend.kind().as_str(),
        description: m.model.description.clone(),
        created_at: m.model.created_at.clone(),
        framework: m.model.framework.clone(),
        sha256: m.model.sha256.clone(),
        inference: if v.inline { "inline" } else { "blocking-pool" },
        warmup_latency_us: v.warmup_latency.as_secs_f64() * 1e6,
        input: InputInfo { tensor: m.model.input.name.clone(), columns: v.view.input_names().to_vec() },
        outputs: m.outputs.iter().map(|o| o.name.clone()).collect(),
        feature_view: ViewInfo {
            name: view.name.clone(),
            entities: view.entities.clone(),
            groups: view
                .groups
                .iter()
                .map(|g| GroupInfo {
                    name: g.name.clone(),
                    entities: g.entities.clone(),
                    features: g.features.iter().map(|f| f.name.clone()).collect(),
                })
                .collect(),
            request: view
                .request
                .iter()
                .map(|f| RequestFeatureInfo {
                    name: f.name.clone(),
                    dtype: f.dtype,
                    required: f.default.is_none(),
                })
                .collect(),
            on_demand: view
                .on_demand
                .iter()
                .map(|f| OnDemandInfo { name: f.name.clone(), expr: f.expr.clone() })
                .collect(),
        },
        training: m.training.clone(),
    }
}
