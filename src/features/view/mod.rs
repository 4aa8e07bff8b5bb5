//! Feature views: what a model version reads. [`spec`] is the declaration a manifest
//! carries, [`compile`] turns it into the [`FeatureView`] plan ([`plan`]), [`fill`] writes
//! one row's values into a frame (the one path serving and offline computation share),
//! [`stored`] reads a group's keys and values in its store layout (native or Feast's), and
//! [`columns`] names the on-demand outputs for offline files.

mod columns;
mod compile;
mod fill;
mod plan;
mod spec;
mod stored;

pub use compile::ViewError;
pub use plan::{
    Constraints, FeastKeys, FeatureView, Field, GroupPlan, GroupRead, GroupValues, Layout, StoredGroup,
};
pub use spec::{FeatureSpec, FeatureViewSpec, GroupSpec, OnDemandSpec, OnMissing};
