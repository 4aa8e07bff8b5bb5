//! Operator steps of a rollout on one alias: start a canary (the version is loaded and
//! warmed before any traffic reaches it), change its weight, promote it (the alias moves to
//! the canary) or abort it; start or stop a shadow; set or clear a guard. A guard that trips
//! takes the same path ([`RolloutStep::Trip`]). Each step is written to `state.toml` under
//! the model's lock with a history entry, as promotions are; every replica follows through
//! the registry watcher.

use serde::Serialize;

use super::RegistryDir;
use super::lifecycle::{MoveRequest, check_alias, check_model, read_state};
use super::mlflow::Mlflow;
use super::rollout::{Assignment, GuardSpec, Rollout, ShadowSpec};
use super::state::{Action, ModelState, StateLock, rfc3339_now};
use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum RolloutStep {
    Canary {
        version: u64,
        weight: f64,
        assignment: Assignment,
        sticky_key: Option<String>,
    },
    Weight(f64),
    Promote,
    Abort,
    Shadow {
        version: u64,
        sample: f64,
    },
    StopShadow,
    Guard(Option<GuardSpec>),
    /// A guard tripped: the canary and the shadow end; the reason names the rule and figures.
    /// Refused as stale unless the canary and shadow are still the ones it watched.
    Trip {
        canary: Option<u64>,
        shadow: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutOutcome {
    pub model: String,
    pub alias: String,
    pub action: Action,
    /// The alias's version after the step.
    pub stable: u64,
    /// What is in progress on the alias after the step.
    pub rollout: Option<Rollout>,
    pub shadow: Option<ShadowSpec>,
    pub guard: Option<GuardSpec>,
    pub at: String,
}

/// Applies one step. `validate` loads and checks a version (as for a promotion) and runs
/// under the state lock; its error refuses the step.
pub fn step(
    dir: &RegistryDir,
    model: &str,
    step: RolloutStep,
    request: &MoveRequest,
    source: Option<&Mlflow>,
    validate: impl FnOnce(u64) -> Result<(), String>,
) -> Result<RolloutOutcome, Error> {
    check_model(model)?;
    check_alias(&request.alias)?;
    if source.is_some() {
        return Err(Error::invalid(
            "registry",
            "canaries, shadows and guards are not available with an MLflow registry source yet; move the alias in MLflow",
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
    let refused =
        |version: u64, reason: String| Error::VersionRefused { model: model.to_string(), version, reason };
    let existing = |version: u64| -> Result<(), Error> {
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
        Ok(())
    };
    let none = |what: &str| Error::invalid(what, format!("alias `{alias}` of model `{model}` has no {what}"));
    let by = request.by.as_str();
    let (action, stable_after) = match step {
        RolloutStep::Canary { version, weight, assignment, sticky_key } => {
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
            existing(version)?;
            validate(version).map_err(|reason| refused(version, reason))?;
            let rollout = Rollout {
                canary: version,
                weight,
                assignment,
                sticky_key,
                started_at: rfc3339_now(),
                by: by.into(),
            };
            state.note(
                alias,
                Action::Canary,
                Some(stable),
                version,
                by,
                &describe(&rollout, &request.reason),
            );
            state.rollouts.insert(alias.to_string(), rollout);
            (Action::Canary, stable)
        }
        RolloutStep::Weight(weight) => {
            Rollout::check_weight(weight).map_err(|m| Error::invalid("weight", m))?;
            let rollout = state.rollouts.get_mut(alias).ok_or_else(|| none("canary"))?;
            rollout.weight = weight;
            let (canary, reason) = (rollout.canary, describe(rollout, &request.reason));
            state.note(alias, Action::Canary, Some(stable), canary, by, &reason);
            (Action::Canary, stable)
        }
        RolloutStep::Promote => {
            let rollout = state.rollouts.remove(alias).ok_or_else(|| none("canary"))?;
            validate(rollout.canary).map_err(|reason| refused(rollout.canary, reason))?;
            let reason = or(&request.reason, "canary promoted");
            state.record(alias, Action::Promote, rollout.canary, by, &reason);
            (Action::Promote, rollout.canary)
        }
        RolloutStep::Abort => {
            let rollout = state.rollouts.remove(alias).ok_or_else(|| none("canary"))?;
            let reason = or(&request.reason, "canary aborted");
            state.note(alias, Action::Abort, Some(stable), rollout.canary, by, &reason);
            (Action::Abort, stable)
        }
        RolloutStep::Shadow { version, sample } => {
            ShadowSpec::check_sample(sample).map_err(|m| Error::invalid("sample", m))?;
            if state.shadows.contains_key(alias) {
                return Err(Error::invalid(
                    "shadow",
                    format!("alias `{alias}` already has a shadow; stop it first"),
                ));
            }
            existing(version)?;
            validate(version).map_err(|reason| refused(version, reason))?;
            let shadow = ShadowSpec { version, sample, started_at: rfc3339_now(), by: by.into() };
            let reason = format!("shadow of {}% of requests{}", sample * 100.0, suffix(&request.reason));
            state.note(alias, Action::Shadow, Some(stable), version, by, &reason);
            state.shadows.insert(alias.to_string(), shadow);
            (Action::Shadow, stable)
        }
        RolloutStep::StopShadow => {
            let shadow = state.shadows.remove(alias).ok_or_else(|| none("shadow"))?;
            let reason = or(&request.reason, "shadow stopped");
            state.note(alias, Action::Abort, Some(stable), shadow.version, by, &reason);
            (Action::Abort, stable)
        }
        RolloutStep::Guard(spec) => {
            let reason = match &spec {
                Some(spec) => {
                    spec.check().map_err(|(field, m)| Error::invalid(field, m))?;
                    format!("guard set: {}{}", describe_guard(spec), suffix(&request.reason))
                }
                None => {
                    state.guards.get(alias).ok_or_else(|| none("guard"))?;
                    or(&request.reason, "guard cleared")
                }
            };
            match spec {
                Some(spec) => state.guards.insert(alias.to_string(), spec),
                None => state.guards.remove(alias),
            };
            state.note(alias, Action::Guard, None, stable, by, &reason);
            (Action::Guard, stable)
        }
        RolloutStep::Trip { canary, shadow } => {
            let watching = |state: &ModelState| {
                (state.rollouts.get(alias).map(|r| r.canary), state.shadows.get(alias).map(|s| s.version))
            };
            if watching(&state) != (canary, shadow) || (canary.is_none() && shadow.is_none()) {
                return Err(Error::invalid("guard", "the rollout changed since the guard judged it"));
            }
            let ended = canary.or(shadow).unwrap_or(stable);
            state.rollouts.remove(alias);
            state.shadows.remove(alias);
            state.note(alias, Action::Abort, Some(stable), ended, by, &request.reason);
            (Action::Abort, stable)
        }
    };
    lock.write(&state).map_err(Error::Registry)?;
    let at = state.history.last().map(|m| m.at.clone()).unwrap_or_default();
    let outcome = RolloutOutcome {
        model: model.to_string(),
        alias: alias.to_string(),
        action,
        stable: stable_after,
        rollout: state.rollouts.remove(alias),
        shadow: state.shadows.remove(alias),
        guard: state.guards.remove(alias),
        at,
    };
    tracing::info!(
        model,
        alias,
        action = action.label(),
        stable = stable_after,
        canary = ?outcome.rollout.as_ref().map(|r| (r.canary, r.weight)),
        shadow = ?outcome.shadow.as_ref().map(|s| s.version),
        by,
        reason = %state.history.last().map_or("", |m| m.reason.as_str()),
        "rollout step"
    );
    Ok(outcome)
}

fn or(reason: &str, default: &str) -> String {
    if reason.is_empty() { default.to_string() } else { reason.to_string() }
}

fn suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

/// The history's reason for a canary step: its weight and assignment, then the operator's.
fn describe(rollout: &Rollout, reason: &str) -> String {
    let assignment = match (&rollout.assignment, &rollout.sticky_key) {
        (Assignment::Random, _) => "random".to_string(),
        (Assignment::Sticky, Some(key)) => format!("sticky by {key}"),
        (Assignment::Sticky, None) => "sticky by the first entity key".to_string(),
    };
    format!("weight {}%, {assignment}{}", rollout.weight * 100.0, suffix(reason))
}

fn describe_guard(spec: &GuardSpec) -> String {
    let mut rules = Vec::new();
    if let Some(v) = spec.max_error_rate_increase {
        rules.push(format!("error rate +{} pp", v * 100.0));
    }
    if let Some(v) = spec.max_p99_increase_pct {
        rules.push(format!("p99 +{v}%"));
    }
    if let Some(v) = spec.max_disagreement {
        rules.push(format!("disagreement {}%", v * 100.0));
    }
    if spec.non_finite {
        rules.push("non-finite outputs".into());
    }
    format!("{} over {} s (min {} requests)", rules.join(", "), spec.window_s, spec.min_requests)
}
