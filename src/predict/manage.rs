//! Operator actions on a running server: move an alias (promote, roll back) in the
//! shared registry and swap this replica before answering; read an alias history; list
//! the registry's versions; load and unload models. Registry work is blocking file and
//! model I/O, so it runs on the blocking pool.

use std::sync::Arc;

use serde::Serialize;

use super::predictor::Predictor;
use crate::Error;
pub use crate::registry::lifecycle::{Move, MoveOutcome, MoveRequest};
pub use crate::registry::rollout::{Assignment, GuardSpec};
pub use crate::registry::rollout_steps::{RolloutOutcome, RolloutStep};
pub use crate::registry::state::{Action, AliasMove};
use crate::registry::{Registry, VersionState, lifecycle, rollout_steps};

/// A model's aliases and every move they made.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub model: String,
    pub aliases: std::collections::BTreeMap<String, u64>,
    pub history: Vec<AliasMove>,
}

/// One version in the registry directory and whether this replica serves it.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryEntry {
    pub name: String,
    pub version: String,
    /// `READY` or `UNAVAILABLE`, as the Open Inference Protocol's repository extension has it.
    pub state: &'static str,
    pub reason: String,
}

impl Predictor {
    /// Counts a refused admin authentication (`reason`: `missing` or `wrong` token).
    pub fn count_auth_failure(&self, reason: &'static str) {
        self.0.metrics.admin_auth_failures.with_label_values(&[reason]).inc();
    }

    /// Runs registry work (file and model I/O) on the blocking pool.
    async fn on_registry<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&Registry) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let registry = Arc::clone(&self.0.registry);
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| Error::Registry(format!("{what} task failed: {e}")))?
    }

    /// Moves an alias: the target version is loaded and validated first, the registry
    /// records the move (so every replica follows), and this replica swaps before the
    /// answer.
    pub async fn move_alias(
        &self,
        model: &str,
        action: Move,
        request: MoveRequest,
    ) -> Result<MoveOutcome, Error> {
        let model = model.to_string();
        let outcome = self
            .registry_step("alias move", move |registry| {
                lifecycle::move_alias(registry.dir(), &model, action, &request, registry.source(), |v| {
                    registry.ensure_loaded(&model, v)
                })
            })
            .await?;
        self.count_move(&outcome.model, &outcome.alias, outcome.action);
        Ok(outcome)
    }

    /// One rollout step on an alias (canary, shadow, guard): validated and written to the
    /// registry like a promotion, and this replica swaps before the answer.
    pub async fn rollout_step(
        &self,
        model: &str,
        step: RolloutStep,
        request: MoveRequest,
    ) -> Result<RolloutOutcome, Error> {
        let model = model.to_string();
        let outcome = self
            .registry_step("rollout step", move |registry| {
                rollout_steps::step(registry.dir(), &model, step, &request, registry.source(), |v| {
                    registry.ensure_loaded(&model, v)
                })
            })
            .await?;
        self.count_move(&outcome.model, &outcome.alias, outcome.action);
        Ok(outcome)
    }

    /// Registry work that changes the registry, then this replica's swap; the others
    /// follow through the registry watcher.
    async fn registry_step<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&Registry) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.on_registry(what, move |registry| {
            let outcome = work(registry)?;
            registry.reconcile().map_err(|e| Error::Registry(e.to_string()))?;
            Ok(outcome)
        })
        .await
    }

    fn count_move(&self, model: &str, alias: &str, action: Action) {
        self.0.metrics.alias_moves.with_label_values(&[model, alias, action.label()]).inc();
    }

    pub async fn history(&self, model: &str) -> Result<History, Error> {
        lifecycle::check_model(model)?;
        let model = model.to_string();
        self.on_registry("history", move |registry| {
            if !registry.dir().model_dir(&model).is_dir() {
                return Err(Error::ModelNotFound { model });
            }
            let state = lifecycle::read_state(registry.dir(), &model)?;
            Ok(History { model, aliases: state.aliases, history: state.history })
        })
        .await
    }

    /// Every model version in the registry directory with its state in this replica.
    pub async fn repository_index(&self) -> Result<Vec<RepositoryEntry>, Error> {
        self.on_registry("repository index", |registry| {
            let snapshot = registry.snapshot();
            let dir = registry.dir();
            let mut index = Vec::new();
            for model in dir.models().map_err(|e| Error::Registry(e.to_string()))? {
                let entry = snapshot.models.get(&model);
                for v in dir.versions(&model).unwrap_or_default() {
                    let (state, reason) = match entry.and_then(|e| e.versions.get(&v)) {
                        Some(VersionState::Ready(_)) => ("READY", String::new()),
                        Some(VersionState::Failed(reason)) => ("UNAVAILABLE", reason.clone()),
                        None if entry.is_some() => {
                            ("UNAVAILABLE", "not resident (registry.keep_latest)".into())
                        }
                        None => ("UNAVAILABLE", "model not loaded".into()),
                    };
                    index.push(RepositoryEntry {
                        name: model.clone(),
                        version: v.to_string(),
                        state,
                        reason,
                    });
                }
            }
            Ok(index)
        })
        .await
    }

    /// Serves `model` (again), loading its resident versions now.
    pub async fn load_model(&self, model: &str) -> Result<(), Error> {
        lifecycle::check_model(model)?;
        let model = model.to_string();
        self.on_registry("load", move |registry| registry.load_model(&model)).await
    }

    /// Stops serving `model`; its versions are freed when their last request ends.
    pub async fn unload_model(&self, model: &str) -> Result<(), Error> {
        lifecycle::check_model(model)?;
        let model = model.to_string();
        self.on_registry("unload", move |registry| registry.unload_model(&model)).await
    }
}
