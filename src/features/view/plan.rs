//! A compiled feature view: the plan a model version follows to turn entity keys,
//! request values and fetched group values into the model's input vector.

use std::sync::Arc;
use std::time::Duration;

use super::spec::{FeatureViewSpec, OnMissing};
use crate::features::feast::{EventTime, KeyType};
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
    /// The hash fields to read: feature names natively; in Feast's layout each feature's
    /// hashed field, then the view's event-timestamp field.
    pub(super) field_names: Vec<Vec<u8>>,
    pub layout: Layout,
    /// Values older than this (by their event time) are stale: treated as missing.
    pub max_age: Option<Duration>,
    /// Identifies (group, layout, fields, dtypes): cache entries are shared by views that
    /// read the same fields the same way.
    pub id: u64,
}

/// How a group's values are laid out in the online store.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `<prefix><group>:<entity>` hashes of decimal/UTF-8 values, fields named as the
    /// features.
    Native,
    /// Feast's Redis online store (see [`crate::features::feast`]).
    Feast(FeastKeys),
}

/// What a Feast group needs to make its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct FeastKeys {
    pub project: String,
    pub view: String,
    /// The Feast type of each key entity, in key order.
    pub key_types: Vec<KeyType>,
}

/// What the store holds for one (group, entity) that was found.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    /// One per field of the group: `None` where nothing (valid) is stored.
    pub values: Box<[Option<Value>]>,
    /// When the feature pipeline computed the values (Feast groups).
    pub event_time: Option<EventTime>,
}

/// What the store returned for one (group, entity): `None` when the entity is absent.
pub type GroupValues = Option<Arc<StoredGroup>>;

/// One (row, group) as the fill path takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRead {
    Found(Arc<StoredGroup>),
    NotFound,
    /// Found, but older than the group's `max_age`: filled as if not found.
    Stale(Arc<StoredGroup>),
}

impl GroupRead {
    /// Found, or not found: freshness is judged by the caller, who knows the time.
    pub fn from_values(values: GroupValues) -> GroupRead {
        values.map_or(GroupRead::NotFound, GroupRead::Found)
    }

    pub fn status(&self) -> &'static str {
        match self {
            GroupRead::Found(_) => "found",
            GroupRead::NotFound => "not_found",
            GroupRead::Stale(_) => "stale",
        }
    }

    /// What was stored, fresh or stale.
    pub fn stored(&self) -> Option<&StoredGroup> {
        match self {
            GroupRead::Found(g) | GroupRead::Stale(g) => Some(g),
            GroupRead::NotFound => None,
        }
    }
}

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
    /// Whether `other` assembles the same model input vector from the same request and
    /// store values (the same declaration, so the same fetches, expressions and order).
    pub fn same_input_as(&self, other: &FeatureView) -> bool {
        let text = |v: &FeatureView| serde_json::to_string(&v.spec).ok();
        let a = text(self);
        a.is_some() && a == text(other)
    }

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
