//! The model registry: a directory laid out as
//!
//! ```text
//! <root>/<model>/state.toml                 aliases (production, canary, ...) + history
//! <root>/<model>/<version>/manifest.toml    what the version is; its feature view
//! <root>/<model>/<version>/model.onnx       the graph (sha256 in the manifest)
//! ```
//!
//! and the served [`Snapshot`] of it behind `arc_swap`: a request loads one snapshot and
//! finishes on it, whatever is swapped in meanwhile; a version is dropped when the last
//! snapshot and request holding it are gone. [`Registry::reconcile`] makes the snapshot
//! match the directory: it loads (checks, warms) what should be resident before
//! publishing, and never moves an alias to a version that failed.

pub mod lifecycle;
mod loader;
pub mod manifest;
pub mod state;
pub mod version;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;

pub use manifest::Manifest;
pub use state::{ModelState, PRODUCTION};
pub use version::{LoadOptions, ModelVersion, OutputValue};

use crate::Error;
use crate::metrics::Metrics;

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
    /// The aliases as served: each points at a Ready version.
    pub aliases: BTreeMap<String, u64>,
    /// Resident versions (loaded, or refused with the reason).
    pub versions: BTreeMap<u64, VersionState>,
    /// Every version directory present.
    pub on_disk: Vec<u64>,
    /// Aliases whose state.toml target is not served, and why.
    pub alias_errors: BTreeMap<String, String>,
    /// Set when `state.toml` could not be read: the last good aliases stay in force.
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
    pub keep_latest: usize,
}

impl Snapshot {
    pub fn resolve(&self, model: &str, target: &Target) -> Result<Arc<ModelVersion>, Error> {
        let entry =
            self.models.get(model).ok_or_else(|| Error::ModelNotFound { model: model.to_string() })?;
        let version = match target {
            Target::Version(v) => *v,
            Target::Alias(alias) => match entry.aliases.get(alias) {
                Some(v) => *v,
                None => {
                    if let Some(reason) = entry.alias_errors.get(alias).or(entry.state_error.as_ref()) {
                        let version = 0;
                        let reason = format!("alias `{alias}`: {reason}");
                        return Err(Error::VersionUnavailable { model: model.to_string(), version, reason });
                    }
                    return Err(Error::AliasNotFound { model: model.to_string(), alias: alias.clone() });
                }
            },
        };
        match entry.versions.get(&version) {
            Some(VersionState::Ready(v)) => Ok(Arc::clone(v)),
            Some(VersionState::Failed(reason)) => {
                Err(Error::VersionUnavailable { model: model.to_string(), version, reason: reason.clone() })
            }
            None if entry.on_disk.contains(&version) => Err(Error::VersionUnavailable {
                model: model.to_string(),
                version,
                reason: format!(
                    "not loaded: only aliased versions and the latest {} are resident (registry.keep_latest)",
                    self.keep_latest
                ),
            }),
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
    fn fingerprint(&self, model: &str, version: u64) -> Vec<(String, u64, Option<SystemTime>)> {
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

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Models to serve; empty: every model in the directory.
    pub models: Vec<String>,
    /// Besides aliased versions, keep this many of the newest versions loaded.
    pub keep_latest: usize,
    pub load: version::LoadOptions,
}

type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// What survives between reconciles besides the snapshot. Held for the whole of a
/// reconcile or load, which also serialises loading: one model loads at a time, so a
/// promotion takes at most one core from serving.
#[derive(Default)]
struct Loader {
    failed: HashMap<(String, u64), (Fingerprint, String)>,
    /// Versions loaded for a promotion, handed to the next reconcile.
    preloaded: HashMap<(String, u64), Arc<ModelVersion>>,
    /// Models an operator loaded beyond `registry.models`, or unloaded, at run time.
    loaded: BTreeSet<String>,
    unloaded: BTreeSet<String>,
}

/// The served registry: the directory plus the current snapshot.
pub struct Registry {
    dir: RegistryDir,
    options: RegistryOptions,
    snapshot: ArcSwap<Snapshot>,
    loader: Mutex<Loader>,
    load_thread: loader::LoadThread,
    metrics: Metrics,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("root", &self.dir.root).field("options", &self.options).finish()
    }
}

impl Registry {
    pub fn new(dir: RegistryDir, options: RegistryOptions, metrics: Metrics) -> Registry {
        let snapshot = Snapshot { keep_latest: options.keep_latest, ..Snapshot::default() };
        Registry {
            dir,
            snapshot: ArcSwap::from_pointee(snapshot),
            loader: Mutex::new(Loader::default()),
            load_thread: loader::LoadThread::spawn(options.load.clone()),
            options,
            metrics,
        }
    }

    pub fn dir(&self) -> &RegistryDir {
        &self.dir
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn lock_loader(&self) -> MutexGuard<'_, Loader> {
        // A panic while loading leaves the maps consistent (they are only ever inserted
        // into whole), so a poisoned lock is still usable.
        self.loader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the snapshot match the directory. Blocking: call from a blocking context.
    pub fn reconcile(&self) -> Result<(), RegistryError> {
        let mut loader = self.lock_loader();
        let current = self.snapshot.load_full();
        let configured =
            if self.options.models.is_empty() { self.dir.models()? } else { self.options.models.clone() };
        let names: BTreeSet<String> = configured
            .into_iter()
            .chain(loader.loaded.iter().cloned())
            .filter(|m| !loader.unloaded.contains(m))
            .collect();
        let mut next = Snapshot { keep_latest: self.options.keep_latest, ..Snapshot::default() };
        for name in names {
            let entry = self.reconcile_model(&name, current.models.get(&name), &mut loader);
            next.models.insert(name, entry);
        }
        self.publish_metrics(&current, &next);
        self.snapshot.store(Arc::new(next));
        Ok(())
    }

    fn reconcile_model(&self, name: &str, prev: Option<&ModelEntry>, loader: &mut Loader) -> ModelEntry {
        let mut entry = ModelEntry::default();
        match self.dir.versions(name) {
            Ok(v) => entry.on_disk = v,
            Err(e) => entry.state_error = Some(e.to_string()),
        }
        let wanted = match lifecycle::read_state(&self.dir, name) {
            Ok(state) => state.aliases,
            Err(e) => {
                // Keep serving the last good aliases rather than none.
                entry.state_error = Some(e.to_string());
                prev.map(|p| p.aliases.clone()).unwrap_or_default()
            }
        };
        let newest = entry.on_disk.iter().rev().take(self.options.keep_latest).copied();
        let resident: BTreeSet<u64> =
            wanted.values().copied().chain(newest).filter(|v| entry.on_disk.contains(v)).collect();
        for v in resident {
            let state = self.obtain(name, v, prev, loader);
            entry.versions.insert(v, state);
        }
        for (alias, &v) in &wanted {
            let problem = match entry.versions.get(&v) {
                Some(VersionState::Ready(_)) => {
                    entry.aliases.insert(alias.clone(), v);
                    continue;
                }
                Some(VersionState::Failed(reason)) => format!("version {v} was refused: {reason}"),
                None => format!("version {v} does not exist"),
            };
            // The alias stays where it was, if that version still serves.
            let kept = prev.and_then(|p| {
                let old = *p.aliases.get(alias)?;
                match p.versions.get(&old)? {
                    VersionState::Ready(x) => Some((old, Arc::clone(x))),
                    VersionState::Failed(_) => None,
                }
            });
            let message = match kept {
                Some((old, version)) => {
                    entry.aliases.insert(alias.clone(), old);
                    entry.versions.entry(old).or_insert(VersionState::Ready(version));
                    format!("{problem}; still serving version {old}")
                }
                None => problem,
            };
            if prev.and_then(|p| p.alias_errors.get(alias)) != Some(&message) {
                tracing::error!(model = name, alias = %alias, "{message}");
            }
            entry.alias_errors.insert(alias.clone(), message);
        }
        entry
    }

    /// A resident version: the one already served, one preloaded for a promotion, the
    /// remembered refusal (unless its files changed), or a fresh load.
    fn obtain(&self, name: &str, v: u64, prev: Option<&ModelEntry>, loader: &mut Loader) -> VersionState {
        if let Some(VersionState::Ready(x)) = prev.and_then(|p| p.versions.get(&v)) {
            return VersionState::Ready(Arc::clone(x));
        }
        let key = (name.to_string(), v);
        if let Some(x) = loader.preloaded.remove(&key) {
            return VersionState::Ready(x);
        }
        match self.load(name, v, loader) {
            Ok(x) => VersionState::Ready(x),
            Err(reason) => VersionState::Failed(reason),
        }
    }

    fn load(&self, name: &str, v: u64, loader: &mut Loader) -> Result<Arc<ModelVersion>, String> {
        let key = (name.to_string(), v);
        let fingerprint = self.dir.fingerprint(name, v);
        if let Some((seen, reason)) = loader.failed.get(&key)
            && *seen == fingerprint
        {
            return Err(reason.clone());
        }
        match self.load_thread.load(&self.dir.version_dir(name, v), name, v) {
            Ok(x) => {
                tracing::info!(
                    model = name,
                    version = v,
                    backend = %x.backend.kind(),
                    inline = x.inline,
                    warmup_us = x.warmup_latency.as_micros() as u64,
                    "model version loaded"
                );
                self.metrics.model_loads.with_label_values(&[name, "ready"]).inc();
                loader.failed.remove(&key);
                Ok(Arc::new(x))
            }
            Err(reason) => {
                tracing::error!(model = name, version = v, "model version refused: {reason}");
                self.metrics.model_loads.with_label_values(&[name, "failed"]).inc();
                loader.failed.insert(key, (fingerprint, reason.clone()));
                Err(reason)
            }
        }
    }

    /// Serves `model` (again), loading its resident versions now. Blocking.
    pub fn load_model(&self, model: &str) -> Result<(), Error> {
        if !self.dir.model_dir(model).is_dir() {
            return Err(Error::ModelNotFound { model: model.to_string() });
        }
        {
            let mut loader = self.lock_loader();
            loader.unloaded.remove(model);
            loader.loaded.insert(model.to_string());
            // A load request retries refused versions even if their files did not change.
            loader.failed.retain(|(m, _), _| m != model);
        }
        self.reconcile().map_err(|e| Error::Registry(e.to_string()))
    }

    /// Stops serving `model`; its versions are freed when their last request ends. Blocking.
    pub fn unload_model(&self, model: &str) -> Result<(), Error> {
        if !self.snapshot().models.contains_key(model) {
            return Err(Error::ModelNotFound { model: model.to_string() });
        }
        {
            let mut loader = self.lock_loader();
            loader.loaded.remove(model);
            loader.unloaded.insert(model.to_string());
        }
        self.reconcile().map_err(|e| Error::Registry(e.to_string()))
    }

    /// Loads and validates a version for a promotion (unless it is already served), so
    /// the alias moves only to a version known to work. Blocking.
    pub fn ensure_loaded(&self, name: &str, v: u64) -> Result<(), String> {
        let mut loader = self.lock_loader();
        let snapshot = self.snapshot.load();
        if let Some(VersionState::Ready(_)) = snapshot.models.get(name).and_then(|m| m.versions.get(&v)) {
            return Ok(());
        }
        if loader.preloaded.contains_key(&(name.to_string(), v)) {
            return Ok(());
        }
        // An explicit promotion retries a refused version even if its files did not change.
        loader.failed.remove(&(name.to_string(), v));
        let loaded = self.load(name, v, &mut loader)?;
        loader.preloaded.insert((name.to_string(), v), loaded);
        Ok(())
    }

    fn publish_metrics(&self, prev: &Snapshot, next: &Snapshot) {
        for (name, entry) in &prev.models {
            for (alias, v) in &entry.aliases {
                if next.models.get(name).and_then(|e| e.aliases.get(alias)) != Some(v) {
                    let _ = self.metrics.alias_version.remove_label_values(&[name, alias]);
                }
            }
        }
        self.metrics.model_version_info.reset();
        for (name, entry) in &next.models {
            for (alias, &v) in &entry.aliases {
                self.metrics.alias_version.with_label_values(&[name.as_str(), alias.as_str()]).set(v as i64);
            }
            for (v, state) in &entry.versions {
                if let VersionState::Ready(x) = state {
                    let aliases: Vec<&str> =
                        entry.aliases.iter().filter(|(_, to)| *to == v).map(|(a, _)| a.as_str()).collect();
                    self.metrics
                        .model_version_info
                        .with_label_values(&[
                            name.as_str(),
                            &x.version_label,
                            x.backend.kind().as_str(),
                            &aliases.join(","),
                        ])
                        .set(1);
                }
            }
        }
    }
}
