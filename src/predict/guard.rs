//! The guard task: every second it judges each guarded rollout's figures
//! ([`crate::registry::guard::judge`]) and, on a verdict, ends the alias's canary and
//! shadow through the same registry step an operator's abort takes, recorded with
//! `by = "guard"`, the rule and the figures. Production keeps serving throughout; other
//! replicas follow through the registry.

use std::time::Duration;

use super::manage::{MoveRequest, RolloutStep};
use super::predictor::Predictor;
use crate::registry::guard::judge;

/// Who the history names for a guard's abort.
pub const BY_GUARD: &str = "guard";

impl Predictor {
    /// Judges the guarded rollouts every `interval`, until the task is dropped.
    pub async fn watch_guards(&self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.judge_guards().await;
        }
    }

    async fn judge_guards(&self) {
        let snapshot = self.0.registry.snapshot();
        for (model, entry) in &snapshot.models {
            for (alias, rollout) in &entry.rollouts {
                let Some(spec) = &rollout.guard else { continue };
                let canary = rollout.canary.as_ref().map(|(d, _)| d.canary);
                let shadow = rollout.shadow.as_ref().map(|(d, _)| d.version);
                if canary.is_none() && shadow.is_none() {
                    continue;
                }
                let Some(verdict) = judge(spec, &rollout.figures.figures()) else { continue };
                let reason = format!("guard tripped on {}: {}", verdict.rule, verdict.detail);
                let request =
                    MoveRequest { alias: alias.clone(), by: BY_GUARD.into(), reason: reason.clone() };
                match self.rollout_step(model, RolloutStep::Trip { canary, shadow }, request).await {
                    Ok(_) => {
                        self.0
                            .metrics
                            .guard_trips
                            .with_label_values(&[model.as_str(), alias.as_str(), verdict.rule])
                            .inc();
                        tracing::error!(model = %model, alias = %alias, ?canary, ?shadow, rule = verdict.rule, "{reason}; the alias serves alone");
                    }
                    // Another replica (or an operator) changed the rollout first.
                    Err(e) => {
                        tracing::warn!(model = %model, alias = %alias, "guard could not end the rollout: {e}");
                    }
                }
            }
        }
    }
}
