//! The served view of the registry: per model, its aliases, its resident versions (loaded
//! or refused with the reason) and what is on disk; and how a request's [`Target`] resolves
//! against it. A request holds one `Arc<Snapshot>` for its whole life.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::rollout::{Arm, next_draw_ppm};
use super::rollout_figures::RolloutFigures;
use super::rollout_snapshot::{AliasRollout, ServedShadow};
use super::state::PRODUCTION;
use super::version::ModelVersion;
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

    /// A version as protocols send it in text: empty means the production alias, else a
    /// version number. `field` names the field in the error.
    pub fn from_version_text(field: &str, text: &str) -> Result<Target, Error> {
        if text.is_empty() {
            return Ok(Target::production());
        }
        text.parse().map(Target::Version).map_err(|_| {
            Error::invalid(field, format!("expected a non-negative integer version, got {text:?}"))
        })
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
    /// Rollouts (canary, shadow, guard) served, by alias.
    pub rollouts: BTreeMap<String, AliasRollout>,
}

/// Where a request goes: the version that answers, which side of a rollout it is on, and
/// what else watches it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub version: Arc<ModelVersion>,
    pub arm: Arm,
    /// The alias's rollout figures, when one is in progress.
    pub figures: Option<Arc<RolloutFigures>>,
    /// A shadow that this request is also sent to (sampled, stable side only).
    pub shadow: Option<ServedShadow>,
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

    /// [`Snapshot::resolve`], with an alias's canary taking its share and its shadow its
    /// sample: `entity` gives the request's value of a sticky canary's key.
    pub fn route<'e>(
        &self,
        model: &str,
        target: &Target,
        entity: impl FnOnce(Option<&str>) -> Option<&'e str>,
    ) -> Result<Routed, Error> {
        let stable = self.resolve(model, target)?;
        let alone = |version| Ok(Routed { version, arm: Arm::Stable, figures: None, shadow: None });
        let Target::Alias(alias) = target else { return alone(stable) };
        let Some(rollout) = self.models.get(model).and_then(|m| m.rollouts.get(alias)) else {
            return alone(stable);
        };
        let figures = Some(Arc::clone(&rollout.figures));
        if let Some((_, served)) = &rollout.canary {
            let key = match served.assignment {
                super::rollout::Assignment::Sticky => entity(served.sticky_key.as_deref()),
                super::rollout::Assignment::Random => None,
            };
            if served.picks_canary(key) {
                return Ok(Routed {
                    version: Arc::clone(&served.canary),
                    arm: Arm::Canary,
                    figures,
                    shadow: None,
                });
            }
        }
        let shadow = rollout
            .shadow
            .as_ref()
            .filter(|(_, s)| s.sample_ppm >= super::rollout::PPM || next_draw_ppm() < s.sample_ppm)
            .map(|(_, s)| s.clone());
        Ok(Routed { version: stable, arm: Arm::Stable, figures, shadow })
    }

    /// Every served model has a loaded production version.
    pub fn is_ready(&self) -> bool {
        !self.models.is_empty() && self.models.values().all(ModelEntry::is_ready)
    }
}
