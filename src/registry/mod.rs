//! The model registry: a directory of versioned models ([`dir`]), what each replica
//! serves from it ([`snapshot`], kept in step by [`reconcile`] and [`watch`]), how one
//! version is loaded, checked and warmed ([`load`], on the [`load_thread`]), and how
//! operators move aliases ([`lifecycle`], recorded in [`state`]). With an MLflow Model
//! Registry as the source ([`mlflow`]), the directory is a local cache kept in step with it.
//!
//! A request loads one snapshot and finishes on it, whatever is swapped in meanwhile; a
//! version is dropped when the last snapshot and request holding it are gone.

pub mod dir;
mod gauges;
pub mod guard;
pub mod lifecycle;
pub mod load;
mod load_thread;
pub mod manifest;
pub mod mlflow;
pub mod named_outputs;
pub mod outputs;
pub mod reconcile;
pub mod reference;
pub mod rollout;
pub mod rollout_figures;
pub mod rollout_snapshot;
pub mod rollout_steps;
pub mod snapshot;
pub mod state;
pub mod version;
pub mod watch;

pub use dir::{RegistryDir, RegistryError};
pub use load::LoadOptions;
pub use manifest::Manifest;
pub use reconcile::{Registry, RegistryOptions};
pub use snapshot::{ModelEntry, Routed, Snapshot, Target, VersionState};
pub use state::{ModelState, PRODUCTION};
pub use version::ModelVersion;
