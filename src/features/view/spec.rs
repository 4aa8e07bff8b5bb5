//! A feature view as a model version's manifest declares it (TOML): entities, the model
//! input vector, precomputed feature groups, request features and on-demand expressions.

use serde::{Deserialize, Serialize};

use crate::features::feast::{FeastSpec, FeastType};
use crate::features::value::{DType, DefaultValue};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewSpec {
    pub name: String,
    /// Entity keys a request must send.
    pub entities: Vec<String>,
    /// Model input vector, in order.
    pub input: Vec<String>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub request: Vec<FeatureSpec>,
    #[serde(default)]
    pub on_demand: Vec<OnDemandSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Key columns in key order; a subset of the view's entities.
    pub entities: Vec<String>,
    #[serde(default)]
    pub on_missing: OnMissing,
    pub features: Vec<FeatureSpec>,
    /// Feast groups only: values whose event timestamp is older than this are stale and
    /// treated as missing (Feast's feature-view `ttl`, which Feast itself does not apply
    /// on online reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Read the group from Feast's Redis online store layout instead of the native one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feast: Option<FeastSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Fill every feature of the group with its default and report them.
    #[default]
    Default,
    /// Answer 404.
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub name: String,
    pub dtype: DType,
    /// Absent: the value is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
    /// Request features only: the smallest accepted value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Request features only: the largest accepted value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Request features only: the accepted values (strings or integers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<DefaultValue>>,
    /// Request features only: accept NaN and infinities, which are refused by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_finite: bool,
    /// Feast groups only: the feature's Feast value type, when not the default for its
    /// dtype (float64, int64, bool, string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feast_type: Option<FeastType>,
}

impl FeatureSpec {
    /// Whether the spec declares any constraint on the value.
    pub fn constrained(&self) -> bool {
        self.minimum.is_some() || self.maximum.is_some() || self.allowed.is_some() || self.allow_non_finite
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandSpec {
    pub name: String,
    pub expr: String,
}
