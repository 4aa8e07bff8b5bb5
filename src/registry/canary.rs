//! Operator steps of a canary on one alias: start it (the canary version is loaded and
//! warmed before any traffic reaches it), change its weight, promote it (the alias moves
//! to the canary, which then takes all traffic) or abort it. Each step is written to
//! `state.toml` under the model's lock, with a history entry, as promotions are; every
//! replica follows through the registry watcher.

use serde::Serialize;

use super::RegistryDir;
use super::lifecycle::{MoveRequest, check_alias, check_model, read_state};
use super::mlflow::Mlflow;
use super::rollout::{Assignment, Rollout};
use super::state::{Action, StateLock, rfc3339_now};
use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum CanaryStep {
    Start { version: u64, weight: f64, assignment: Assignment, sticky_key: Option<String> },
    Weight(f64),
    Promote,
    Abort,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryOutcome {
    pub model: String,
    pub alias: String,
    pub action: Action,
    /// The alias's version after the step.
    pub stable: u64,
    /// The canary in progress after the step, if any.
    pub rollout: Option<Rollout>,
    pub at: String,
}

/// Applies one step. `validate` loads and checks a version (as for a promotion) and runs
/// under the state lock; its error refuses the step.
pub fn step(
    dir: &RegistryDir,
    model: &str,
    step: CanaryStep,
    request: &MoveRequest,
    source: Option<&Mlflow>,
    validate: impl FnOnce(u64) -> Result<(), String>,
) -> Result<CanaryOutcome, Error> {
    check_model(model)?;
    check_alias(&request.alias)?;
    if source.is_some() {
        return Err(Error::invalid(
            "registry",
            "canaries are not available with an MLflow registry source yet; move the alias in MLflow",
        ));
    }
    let model_dir = dir.model_dir(model);
    if !model_dir.is_dir() {
        return Err(Error::ModelNotFound { model: model.to_string() });
    }
    let alias = request.alias.as_str();
    let lock = StateLock::acquire(&model_dir).map_err(Error::Registry)?;
    let mut state = read_state(dir, model)?;
    let Some(stable) = state.aliases.get(alias).copied() else {
        return Err(Error::AliasNotFound { model: model.to_string(), alias: alias.to_string() });
    };
    let no_canary = || Error::invalid("canary", format!("alias `{alias}` of model `{model}` has no canary"));
    let (action, stable_after) = match step {
        CanaryStep::Start { version, weight, assignment, sticky_key } => {
            Rollout::check_weight(weight).map_err(|m| Error::invalid("weight", m))?;
            if let Some(key) = &sticky_key
                && (key.is_empty() || key.len() > 128)
            {
                return Err(Error::invalid("sticky_key", "must be an entity key name (1 to 128 bytes)"));
            }
            if state.rollouts.contains_key(alias) {
                return Err(Error::invalid(
                    "canary",
                    format!("alias `{alias}` already has a canary; change its weight, promote or abort it"),
                ));
            }
            let versions = dir.versions(model).map_err(|e| Error::Registry(e.to_string()))?;
            if !versions.contains(&version) {
                return Err(Error::VersionNotFound { model: model.to_string(), version });
            }
            if version == stable {
                return Err(Error::AliasUnchanged {
                    model: model.to_string(),
                    alias: alias.to_string(),
                    version,
                });
            }
            validate(version).map_err(|reason| Error::VersionRefused {
                model: model.to_string(),
                version,
                reason,
            })?;
            let rollout = Rollout {
                canary: version,
                weight,
                assignment,
                sticky_key,
                started_at: rfc3339_now(),
                by: request.by.clone(),
            };
            let reason = describe(&rollout, &request.reason);
            state.note(alias, Action::Canary, Some(stable), version, &request.by, &reason);
            state.rollouts.insert(alias.to_string(), rollout);
            (Action::Canary, stable)
        }
        CanaryStep::Weight(weight) => {
            Rollout::check_weight(weight).map_err(|m| Error::invalid("weight", m))?;
            let rollout = state.rollouts.get_mut(alias).ok_or_else(no_canary)?;
            rollout.weight = weight;
            let (canary, reason) = (rollout.canary, describe(rollout, &request.reason));
            state.note(alias, Action::Canary, Some(stable), canary, &request.by, &reason);
            (Action::Canary, stable)
        }
        CanaryStep::Promote => {
            let rollout = state.rollouts.remove(alias).ok_or_else(no_canary)?;
            validate(rollout.canary).map_err(|reason| Error::VersionRefused {
                model: model.to_string(),
                version: rollout.canary,
                reason,
            })?;
            let reason = if request.reason.is_empty() {
                "canary promoted".to_string()
            } else {
                request.reason.clone()
            };
            state.record(alias, Action::Promote, rollout.canary, &request.by, &reason);
            (Action::Promote, rollout.canary)
        }
        CanaryStep::Abort => {
            let rollout = state.rollouts.remove(alias).ok_or_else(no_canary)?;
            let reason =
                if request.reason.is_empty() { "canary aborted".to_string() } else { request.reason.clone() };
            state.note(alias, Action::Abort, Some(stable), rollout.canary, &request.by, &reason);
            (Action::Abort, stable)
        }
    };
    lock.write(&state).map_err(Error::Registry)?;
    let at = state.history.last().map(|m| m.at.clone()).unwrap_or_default();
    let rollout = state.rollouts.get(alias).cloned();
    tracing::info!(model, alias, action = action.label(), stable = stable_after, canary = ?rollout.as_ref().map(|r| r.canary), weight = ?rollout.as_ref().map(|r| r.weight), by = %request.by, "rollout step");
    Ok(CanaryOutcome {
        model: model.to_string(),
        alias: alias.to_string(),
        action,
        stable: stable_after,
        rollout,
        at,
    })
}

/// The history's reason for a canary step: its weight and assignment, then the operator's.
fn describe(rollout: &Rollout, reason: &str) -> String {
    let assignment = match (&rollout.assignment, &rollout.sticky_key) {
        (Assignment::Random, _) => "random".to_string(),
        (Assignment::Sticky, Some(key)) => format!("sticky by {key}"),
        (Assignment::Sticky, None) => "sticky by the first entity key".to_string(),
    };
    let text = format!("weight {}%, {assignment}", rollout.weight * 100.0);
    if reason.is_empty() { text } else { format!("{text}: {reason}") }
}
