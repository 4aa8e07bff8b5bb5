//! The model registry: a directory laid out as
//!
//! ```text
//! <root>/<model>/state.toml                 aliases (production, ...) and their history
//! <root>/<model>/<version>/manifest.toml    what the version is; its feature view
//! <root>/<model>/<version>/model.onnx       the graph (sha256 in the manifest)
//! ```
//!
//! and the served [`Snapshot`] of it behind `arc_swap`: a request loads one snapshot and
//! finishes on it, whatever is swapped in meanwhile.

pub mod manifest;
pub mod state;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use manifest::Manifest;
pub use state::{ModelState, PRODUCTION};
pub use version::{ModelVersion, OutputValue};

use crate::Error;

/// Which version a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Alias(String),
    Version(u64),
}

impl Target {
    pub fn production() -> Target {
        Target::Alias(PRODUCTION.to_string())
    }
}

#[derive(Debug, Clone)]
pub enum VersionState {
    Ready(Arc<ModelVersion>),
    Failed(String),
}

#[derive(Debug, Clone, Default)]
pub struct ModelEntry {
    pub aliases: BTreeMap<String, u64>,
    pub versions: BTreeMap<u64, VersionState>,
    /// Set when `state.toml` could not be read: the model then has no aliases.
    pub state_error: Option<String>,
}

impl ModelEntry {
    /// Ready when the production alias points at a loaded version.
    pub fn is_ready(&self) -> bool {
        self.aliases
            .get(PRODUCTION)
            .is_some_and(|v| matches!(self.versions.get(v), Some(VersionState::Ready(_))))
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub models: BTreeMap<String, ModelEntry>,
}

impl Snapshot {
    pub fn resolve(&self, model: &str, target: &Target) -> Result<Arc<ModelVersion>, Error> {
        let entry =
            self.models.get(model).ok_or_else(|| Error::ModelNotFound { model: model.to_string() })?;
        let version = match target {
            Target::Version(v) => *v,
            Target::Alias(alias) => match entry.aliases.get(alias) {
                Some(v) => *v,
                None if alias == PRODUCTION => {
                    let reason = entry
                        .state_error
                        .clone()
                        .unwrap_or_else(|| "no version is marked production in state.toml".to_string());
                    return Err(Error::VersionUnavailable { model: model.to_string(), version: 0, reason });
                }
                None => {
                    return Err(Error::AliasNotFound { model: model.to_string(), alias: alias.clone() });
                }
            },
        };
        match entry.versions.get(&version) {
            Some(VersionState::Ready(v)) => Ok(Arc::clone(v)),
            Some(VersionState::Failed(reason)) => {
                Err(Error::VersionUnavailable { model: model.to_string(), version, reason: reason.clone() })
            }
            None => Err(Error::VersionNotFound { model: model.to_string(), version }),
        }
    }

    /// Every served model has a loaded production version.
    pub fn is_ready(&self) -> bool {
        !self.models.is_empty() && self.models.values().all(ModelEntry::is_ready)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("model `{0}` is not in the registry")]
    UnknownModel(String),
}

/// Directory operations on the registry; no serving state.
#[derive(Debug, Clone)]
pub struct RegistryDir {
    root: PathBuf,
}

impl RegistryDir {
    pub fn new(root: impl Into<PathBuf>) -> RegistryDir {
        RegistryDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_dir(&self, model: &str) -> PathBuf {
        self.root.join(model)
    }

    pub fn version_dir(&self, model: &str, version: u64) -> PathBuf {
        self.model_dir(model).join(version.to_string())
    }

    fn io_error(&self, path: &Path, e: &std::io::Error) -> RegistryError {
        RegistryError::Io { path: path.to_path_buf(), message: e.to_string() }
    }

    /// Models are the sub-directories of the root.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| self.io_error(&self.root, &e))?;
        let mut models: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| !name.starts_with('.'))
            .collect();
        models.sort();
        Ok(models)
    }

    /// Versions are the numeric sub-directories of a model.
    pub fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let dir = self.model_dir(model);
        if !dir.is_dir() {
            return Err(RegistryError::UnknownModel(model.to_string()));
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| self.io_error(&dir, &e))?;
        let mut versions: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    pub fn state_path(&self, model: &str) -> PathBuf {
        self.model_dir(model).join("state.toml")
    }

    pub fn read_state(&self, model: &str) -> Result<ModelState, String> {
        ModelState::read(&self.state_path(model))
    }
}

/// The served registry: the directory plus the current snapshot.
#[derive(Debug)]
pub struct Registry {
    dir: RegistryDir,
    snapshot: ArcSwap<Snapshot>,
    inline_threshold: Duration,
}

impl Registry {
    pub fn new(dir: RegistryDir, inline_threshold: Duration) -> Registry {
        Registry { dir, snapshot: ArcSwap::from_pointee(Snapshot::default()), inline_threshold }
    }

    pub fn dir(&self) -> &RegistryDir {
        &self.dir
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Loads every version of `models` (every model in the directory when empty) and
    /// publishes the result. A broken version is recorded as failed with its reason; it
    /// never stops the others. Blocking: call from a blocking context.
    pub fn load_all(&self, models: &[String]) -> Result<(), RegistryError> {
        let names = if models.is_empty() { self.dir.models()? } else { models.to_vec() };
        let mut snapshot = Snapshot::default();
        for name in names {
            let entry = self.load_model(&name)?;
            snapshot.models.insert(name, entry);
        }
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    fn load_model(&self, name: &str) -> Result<ModelEntry, RegistryError> {
        let mut entry = ModelEntry::default();
        match self.dir.read_state(name) {
            Ok(state) => entry.aliases = state.aliases,
            Err(e) => {
                tracing::error!(model = name, "cannot read model state: {e}");
                entry.state_error = Some(e);
            }
        }
        for version in self.dir.versions(name)? {
            let dir = self.dir.version_dir(name, version);
            let state = match version::load(&dir, name, version, self.inline_threshold) {
                Ok(v) => {
                    tracing::info!(
                        model = name,
                        version,
                        backend = %v.backend.kind(),
                        inline = v.inline,
                        warmup_us = v.warmup_latency.as_micros() as u64,
                        "model version loaded"
                    );
                    VersionState::Ready(Arc::new(v))
                }
                Err(reason) => {
                    tracing::error!(model = name, version, "model version refused: {reason}");
                    VersionState::Failed(reason)
                }
            };
            entry.versions.insert(version, state);
        }
        Ok(entry)
    }
}
