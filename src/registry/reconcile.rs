//! The served registry: the directory plus the current [`Snapshot`] behind `arc_swap`.
//! [`Registry::reconcile`] makes the snapshot match the directory: it loads (checks,
//! warms) what should be resident before publishing, and never moves an alias to a
//! version that failed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use super::dir::{Fingerprint, RegistryDir, RegistryError};
use super::gauges;
use super::lifecycle;
use super::load::LoadOptions;
use super::load_thread::LoadThread;
use super::mlflow::Mlflow;
use super::rollout_snapshot::{self, Declared};
use super::snapshot::{ModelEntry, Snapshot, VersionState};
use super::version::ModelVersion;
use crate::Error;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Models to serve; empty: every model in the directory.
    pub models: Vec<String>,
    /// Besides aliased versions, keep this many of the newest versions loaded.
    pub keep_latest: usize,
    pub load: LoadOptions,
    /// Where versions and aliases come from when it is not the directory alone.
    pub source: Option<Arc<Mlflow>>,
}

/// What survives between reconciles besides the snapshot: refusals, versions preloaded
/// for a promotion, models loaded or unloaded at run time. Held for the whole of a
/// reconcile or load, which also serialises loading: one model loads at a time, so a
/// promotion takes at most one core from serving.
#[derive(Default)]
struct Residency {
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
    residency: Mutex<Residency>,
    load_thread: LoadThread,
    metrics: Metrics,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("root", &self.dir.root()).field("options", &self.options).finish()
    }
}

impl Registry {
    pub fn new(dir: RegistryDir, options: RegistryOptions, metrics: Metrics) -> Registry {
        let snapshot = Snapshot { keep_latest: options.keep_latest, ..Snapshot::default() };
        Registry {
            dir,
            snapshot: ArcSwap::from_pointee(snapshot),
            residency: Mutex::new(Residency::default()),
            load_thread: LoadThread::spawn(options.load.clone(), metrics.clone()),
            options,
            metrics,
        }
    }

    pub fn dir(&self) -> &RegistryDir {
        &self.dir
    }

    /// The MLflow source the directory mirrors, if any.
    pub fn source(&self) -> Option<&Mlflow> {
        self.options.source.as_deref()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn lock_residency(&self) -> MutexGuard<'_, Residency> {
        // A panic while loading leaves the maps consistent (they are only ever inserted
        // into whole), so a poisoned lock is still usable.
        self.residency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the snapshot match the directory. Blocking: call from a blocking context.
    pub fn reconcile(&self) -> Result<(), RegistryError> {
        let mut residency = self.lock_residency();
        let current = self.snapshot.load_full();
        let configured =
            if self.options.models.is_empty() { self.dir.models()? } else { self.options.models.clone() };
        let names: BTreeSet<String> = configured
            .into_iter()
            .chain(residency.loaded.iter().cloned())
            .filter(|m| !residency.unloaded.contains(m))
            .collect();
        let mut next = Snapshot { keep_latest: self.options.keep_latest, ..Snapshot::default() };
        for name in names {
            let entry = self.reconcile_model(&name, current.models.get(&name), &mut residency);
            next.models.insert(name, entry);
        }
        gauges::publish(&self.metrics, &current, &next);
        self.snapshot.store(Arc::new(next));
        Ok(())
    }

    fn reconcile_model(
        &self,
        name: &str,
        prev: Option<&ModelEntry>,
        residency: &mut Residency,
    ) -> ModelEntry {
        let mut entry = ModelEntry::default();
        match self.dir.versions(name) {
            Ok(v) => entry.on_disk = v,
            Err(e) => entry.state_error = Some(e.to_string()),
        }
        let (wanted, declared) = match lifecycle::read_state(&self.dir, name) {
            Ok(state) => (state.aliases.clone(), Declared::from_state(&state)),
            Err(e) => {
                // Keep serving the last good aliases (and rollouts) rather than none.
                entry.state_error = Some(e.to_string());
                let aliases = prev.map(|p| p.aliases.clone()).unwrap_or_default();
                (aliases, prev.map(Declared::served_by).unwrap_or_default())
            }
        };
        let newest = entry.on_disk.iter().rev().take(self.options.keep_latest).copied();
        let canaries = declared.versions();
        let resident: BTreeSet<u64> = wanted
            .values()
            .copied()
            .chain(canaries)
            .chain(newest)
            .filter(|v| entry.on_disk.contains(v))
            .collect();
        for v in resident {
            let state = self.resident_version(name, v, prev, residency);
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
        rollout_snapshot::serve(name, &declared, &mut entry, prev);
        entry
    }

    /// A resident version: the one already served, one preloaded for a promotion, the
    /// remembered refusal (unless its files changed), or a fresh load.
    fn resident_version(
        &self,
        name: &str,
        v: u64,
        prev: Option<&ModelEntry>,
        residency: &mut Residency,
    ) -> VersionState {
        if let Some(VersionState::Ready(x)) = prev.and_then(|p| p.versions.get(&v)) {
            return VersionState::Ready(Arc::clone(x));
        }
        let key = (name.to_string(), v);
        if let Some(x) = residency.preloaded.remove(&key) {
            return VersionState::Ready(x);
        }
        match self.load(name, v, residency) {
            Ok(x) => VersionState::Ready(x),
            Err(reason) => VersionState::Failed(reason),
        }
    }

    fn load(&self, name: &str, v: u64, residency: &mut Residency) -> Result<Arc<ModelVersion>, String> {
        let key = (name.to_string(), v);
        let fingerprint = self.dir.fingerprint(name, v);
        if let Some((seen, reason)) = residency.failed.get(&key)
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
                residency.failed.remove(&key);
                Ok(Arc::new(x))
            }
            Err(reason) => {
                tracing::error!(model = name, version = v, "model version refused: {reason}");
                self.metrics.model_loads.with_label_values(&[name, "failed"]).inc();
                residency.failed.insert(key, (fingerprint, reason.clone()));
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
            let mut residency = self.lock_residency();
            residency.unloaded.remove(model);
            residency.loaded.insert(model.to_string());
            // A load request retries refused versions even if their files did not change.
            residency.failed.retain(|(m, _), _| m != model);
        }
        self.reconcile().map_err(|e| Error::Registry(e.to_string()))
    }

    /// Stops serving `model`; its versions are freed when their last request ends. Blocking.
    pub fn unload_model(&self, model: &str) -> Result<(), Error> {
        if !self.snapshot().models.contains_key(model) {
            return Err(Error::ModelNotFound { model: model.to_string() });
        }
        {
            let mut residency = self.lock_residency();
            residency.loaded.remove(model);
            residency.unloaded.insert(model.to_string());
        }
        self.reconcile().map_err(|e| Error::Registry(e.to_string()))
    }

    /// Loads and validates a version for a promotion (unless it is already served), so
    /// the alias moves only to a version known to work. Blocking.
    pub fn ensure_loaded(&self, name: &str, v: u64) -> Result<(), String> {
        let mut residency = self.lock_residency();
        let snapshot = self.snapshot.load();
        if let Some(VersionState::Ready(_)) = snapshot.models.get(name).and_then(|m| m.versions.get(&v)) {
            return Ok(());
        }
        if residency.preloaded.contains_key(&(name.to_string(), v)) {
            return Ok(());
        }
        // An explicit promotion retries a refused version even if its files did not change.
        residency.failed.remove(&(name.to_string(), v));
        let loaded = self.load(name, v, &mut residency)?;
        residency.preloaded.insert((name.to_string(), v), loaded);
        Ok(())
    }
}
