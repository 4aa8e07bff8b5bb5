//! Feature views: what a model version reads. [`spec`] is the declaration a manifest
//! carries, [`compile`] turns it into the [`FeatureView`] plan ([`plan`]), [`fill`] writes
//! one row's values into a frame (the one path serving and offline computation share),
//! and [`columns`] names the on-demand outputs for offline files.

mod columns;
mod compile;
mod fill;
mod plan;
mod spec;

pub use compile::ViewError;
pub use plan::{Constraints, FeatureView, Field, GroupPlan, GroupValues};
pub use spec::{FeatureSpec, FeatureViewSpec, GroupSpec, OnDemandSpec, OnMissing};
