//! What a snapshot serves of the rollouts `state.toml` declares: per alias, its canary and
//! its shadow when their versions are loaded (otherwise the alias serves alone and the
//! reason is in `alias_errors`), its guard, and the live figures, kept across reconciles
//! while the same canary and shadow are watched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::rollout::{self, GuardSpec, Rollout, ServedRollout, ShadowSpec};
use super::rollout_figures::RolloutFigures;
use super::snapshot::{ModelEntry, VersionState};
use super::state::ModelState;
use super::version::ModelVersion;

/// An alias's rollout as one snapshot serves it.
#[derive(Debug, Clone)]
pub struct AliasRollout {
    pub canary: Option<(Rollout, ServedRollout)>,
    pub shadow: Option<(ShadowSpec, ServedShadow)>,
    pub guard: Option<GuardSpec>,
    pub figures: Arc<RolloutFigures>,
}

/// A shadow whose version is loaded.
#[derive(Debug, Clone)]
pub struct ServedShadow {
    pub version: Arc<ModelVersion>,
    pub sample_ppm: u32,
    /// The shadow's feature view assembles the same input vector as the alias's version:
    /// the stable run's vector is reused, with no second feature fetch.
    pub same_input: bool,
}

/// The rollout parts of `state.toml`.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub rollouts: BTreeMap<String, Rollout>,
    pub shadows: BTreeMap<String, ShadowSpec>,
    pub guards: BTreeMap<String, GuardSpec>,
}

impl Declared {
    pub fn from_state(state: &ModelState) -> Declared {
        Declared {
            rollouts: state.rollouts.clone(),
            shadows: state.shadows.clone(),
            guards: state.guards.clone(),
        }
    }

    /// What `entry` served, for when `state.toml` cannot be read.
    pub fn served_by(entry: &ModelEntry) -> Declared {
        let mut declared = Declared::default();
        for (alias, r) in &entry.rollouts {
            if let Some((d, _)) = &r.canary {
                declared.rollouts.insert(alias.clone(), d.clone());
            }
            if let Some((d, _)) = &r.shadow {
                declared.shadows.insert(alias.clone(), d.clone());
            }
            if let Some(g) = &r.guard {
                declared.guards.insert(alias.clone(), g.clone());
            }
        }
        declared
    }

    /// Versions that must be resident: every canary and shadow.
    pub fn versions(&self) -> impl Iterator<Item = u64> + '_ {
        self.rollouts.values().map(|r| r.canary).chain(self.shadows.values().map(|s| s.version))
    }
}

/// Fills `entry.rollouts` (after its aliases and versions), noting in `alias_errors` each
/// canary or shadow that cannot serve.
pub fn serve(name: &str, declared: &Declared, entry: &mut ModelEntry, prev: Option<&ModelEntry>) {
    let aliases: BTreeSet<String> = declared
        .rollouts
        .keys()
        .chain(declared.shadows.keys())
        .chain(declared.guards.keys())
        .cloned()
        .collect();
    for alias in aliases {
        let mut problems = Vec::new();
        let serves = entry.aliases.contains_key(&alias);
        let mut ready = |kind: &str, v: u64| match entry.versions.get(&v) {
            Some(VersionState::Ready(x)) if serves => Some(Arc::clone(x)),
            Some(VersionState::Ready(_)) => {
                problems.push((
                    kind.to_string(),
                    format!("the alias does not serve, so its {kind} {v} does not either"),
                ));
                None
            }
            Some(VersionState::Failed(reason)) => {
                problems.push((kind.to_string(), format!("{kind} version {v} was refused: {reason}")));
                None
            }
            None => {
                problems.push((kind.to_string(), format!("{kind} version {v} does not exist")));
                None
            }
        };
        let canary = declared.rollouts.get(&alias).and_then(|d| {
            let served = ServedRollout {
                canary: ready("canary", d.canary)?,
                weight_ppm: d.weight_ppm(),
                assignment: d.assignment,
                sticky_key: d.sticky_key.clone(),
                salt: rollout::salt(name, &alias),
            };
            Some((d.clone(), served))
        });
        let shadow = declared.shadows.get(&alias).and_then(|d| {
            let version = ready("shadow", d.version)?;
            let stable = entry.aliases.get(&alias).and_then(|v| match entry.versions.get(v) {
                Some(VersionState::Ready(x)) => Some(x),
                _ => None,
            })?;
            let same_input = stable.view.same_input_as(&version.view);
            Some((d.clone(), ServedShadow { version, sample_ppm: d.sample_ppm(), same_input }))
        });
        for (kind, problem) in problems {
            let key = format!("{alias} ({kind})");
            let message = format!("{problem}; the alias serves alone");
            if prev.and_then(|p| p.alias_errors.get(&key)) != Some(&message) {
                tracing::error!(model = name, alias = %alias, "{message}");
            }
            entry.alias_errors.insert(key, message);
        }
        let guard = declared.guards.get(&alias).cloned();
        let watched = (canary.as_ref().map(|(d, _)| d.canary), shadow.as_ref().map(|(d, _)| d.version));
        let window = Duration::from_secs(guard.as_ref().map_or(60, |g| g.window_s));
        let figures = prev
            .and_then(|p| p.rollouts.get(&alias))
            .map(|r| Arc::clone(&r.figures))
            .filter(|f| (f.canary, f.shadow) == watched && f.window() == window)
            .unwrap_or_else(|| Arc::new(RolloutFigures::new(watched.0, watched.1, window)));
        entry.rollouts.insert(alias, AliasRollout { canary, shadow, guard, figures });
    }
}
