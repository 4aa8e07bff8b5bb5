//! The registry's directory layout, and reading it; no serving state.
//!
//! ```text
//! <root>/<model>/state.toml                 aliases (production, canary, ...) + history
//! <root>/<model>/<version>/manifest.toml    what the version is; its feature view
//! <root>/<model>/<version>/model.onnx       the graph (sha256 in the manifest)
//! <root>/<model>/<version>/mlflow-source.toml  where the version came from, when it was
//!                                            downloaded from MLflow (registry::mlflow)
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::state::ModelState;

/// The rule for model names (they are directory names, URL path segments and metric
/// labels): 1 to 128 letters, digits, `-`, `_` and `.`, not starting with `.` (so no
/// `..`, no hidden directories, no path separators).
pub fn check_model_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid model name (1 to 128 letters, digits, '-', '_' and '.', not starting with '.')"
        ))
    }
}

/// Written into a version downloaded from an MLflow source: MLflow's model name and
/// version number are then the version's identity, whatever the manifest's `[model]` says.
pub const MLFLOW_SOURCE_FILE: &str = "mlflow-source.toml";

/// Names, sizes and modification times of a version's files.
pub type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

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

    fn io_error(path: &Path, e: &std::io::Error) -> RegistryError {
        RegistryError::Io { path: path.to_path_buf(), message: e.to_string() }
    }

    /// Models are the sub-directories of the root.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| Self::io_error(&self.root, &e))?;
        let mut models: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| match check_model_name(name) {
                Ok(()) => true,
                Err(reason) => {
                    if !name.starts_with('.') {
                        tracing::warn!(root = %self.root.display(), "skipping directory: {reason}");
                    }
                    false
                }
            })
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
        let entries = std::fs::read_dir(&dir).map_err(|e| Self::io_error(&dir, &e))?;
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

    /// Names, sizes and modification times of a version's files: a refused version is
    /// retried only when this changes.
    pub fn fingerprint(&self, model: &str, version: u64) -> Fingerprint {
        let mut files: Vec<_> = std::fs::read_dir(self.version_dir(model, version))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), meta.len(), meta.modified().ok()))
            })
            .collect();
        files.sort();
        files
    }
}
