//! `fti-serve models ...`: operator commands on the registry directory itself. They need
//! no running server: replicas pick changes up by watching the registry. `promote`
//! loads and validates the version first (checksum, feature view, graph, warm-up), like
//! a server would, so a version that would be refused never becomes an alias target.
//! With an MLflow source, the directory is its cache: `list`, `show` and `history` read
//! it after a sync, and `promote`/`rollback` set the alias in MLflow as well.

use crate::Error;
use crate::metrics::Metrics;
use crate::registry::lifecycle::{self, Move, MoveOutcome, MoveRequest};
use crate::registry::mlflow::Mlflow;
use crate::registry::rollout::Assignment;
use crate::registry::rollout_steps::{self, RolloutOutcome, RolloutStep};
use crate::registry::{LoadOptions, Manifest, RegistryDir, load};
use std::fmt::Write as _;

fn who() -> String {
    std::env::var("USER").map(|u| format!("cli ({u})")).unwrap_or_else(|_| "cli".to_string())
}

pub fn list(dir: &RegistryDir) -> Result<String, Error> {
    let mut out = String::new();
    let _ = writeln!(out, "{:<16} {:>8}  {:<24} DESCRIPTION", "MODEL", "VERSION", "ALIASES");
    for model in dir.models().map_err(|e| Error::Registry(e.to_string()))? {
        let state = lifecycle::read_state(dir, &model)?;
        for v in dir.versions(&model).map_err(|e| Error::Registry(e.to_string()))? {
            let aliases: Vec<&str> =
                state.aliases.iter().filter(|(_, to)| **to == v).map(|(a, _)| a.as_str()).collect();
            let description = match Manifest::read(&dir.version_dir(&model, v).join("manifest.toml")) {
                Ok(m) => m.model.description,
                Err(e) => format!("(unreadable manifest: {e})"),
            };
            let _ = writeln!(out, "{model:<16} {v:>8}  {:<24} {description}", aliases.join(","));
        }
    }
    Ok(out)
}

pub fn show(dir: &RegistryDir, model: &str) -> Result<String, Error> {
    let versions = dir.versions(model).map_err(|_| Error::ModelNotFound { model: model.to_string() })?;
    let state = lifecycle::read_state(dir, model)?;
    let mut out = format!("model {model}\n");
    for (alias, v) in &state.aliases {
        let _ = writeln!(out, "  alias {alias} -> {v}");
        if let Some(r) = state.rollouts.get(alias) {
            let sticky = match (&r.assignment, &r.sticky_key) {
                (Assignment::Random, _) => "random".to_string(),
                (Assignment::Sticky, key) => {
                    format!("sticky by {}", key.as_deref().unwrap_or("the first entity"))
                }
            };
            let _ = writeln!(
                out,
                "    canary -> {} at {}% ({sticky}), since {} by {}",
                r.canary,
                r.weight * 100.0,
                r.started_at,
                r.by
            );
        }
        if let Some(s) = state.shadows.get(alias) {
            let _ = writeln!(
                out,
                "    shadow -> {} on {}% of requests, since {} by {}",
                s.version,
                s.sample * 100.0,
                s.started_at,
                s.by
            );
        }
        if let Some(g) = state.guards.get(alias) {
            let _ = writeln!(
                out,
                "    guard {}",
                toml::to_string(g).unwrap_or_default().trim().replace('\n', ", ")
            );
        }
    }
    for v in versions {
        let _ = writeln!(out, "  version {v}");
        match Manifest::read(&dir.version_dir(model, v).join("manifest.toml")) {
            Ok(m) => {
                let _ = writeln!(out, "    {}", m.model.description);
                let _ = writeln!(out, "    created {} with {}", m.model.created_at, m.model.framework);
                let _ = writeln!(
                    out,
                    "    feature view {} ({} inputs)",
                    m.feature_view.name,
                    m.feature_view.input.len()
                );
                let outputs: Vec<&str> = m.outputs.iter().map(|o| o.name.as_str()).collect();
                let _ = writeln!(out, "    outputs {}", outputs.join(", "));
                if !m.training.is_empty() {
                    let _ = writeln!(
                        out,
                        "    training {}",
                        m.training.to_string().replace('\n', ", ").trim_end_matches(", ")
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "    unreadable manifest: {e}");
            }
        }
    }
    Ok(out)
}

/// A replica's live rollout figures (its `GET /v1/models/{model}` answer), one alias a
/// block.
pub fn live_figures(info: &serde_json::Value) -> String {
    let mut out = String::new();
    let Some(rollouts) = info["rollouts"].as_object().filter(|r| !r.is_empty()) else {
        return "  no rollout in progress on that replica\n".to_string();
    };
    let ms = |v: &serde_json::Value| v.as_f64().map_or_else(|| "-".to_string(), |x| format!("{x:.3} ms"));
    for (alias, r) in rollouts {
        let f = &r["figures"];
        let _ = writeln!(
            out,
            "  live figures of {alias} over the last {} s:",
            f["window_s"].as_f64().unwrap_or(0.0)
        );
        for side in ["stable", "canary"] {
            let a = &f[side];
            if a.is_null() {
                continue;
            }
            let _ = writeln!(
                out,
                "    {side:<7} requests {:>8}  errors {:>6} ({:.2}%)  p99 {}  non-finite {}",
                a["requests"],
                a["errors"],
                a["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
                ms(&a["p99_ms"]),
                a["non_finite"]
            );
        }
        let s = &f["shadow"];
        if !s.is_null() {
            let _ = writeln!(
                out,
                "    shadow  compared {:>8}  label disagreements {} ({:.2}%)  max |diff| {}  errors {}  dropped {}  non-finite {}",
                s["compared"],
                s["disagreed"],
                s["disagreement_rate"].as_f64().unwrap_or(0.0) * 100.0,
                s["max_abs_diff"],
                s["errors"],
                s["dropped"],
                s["non_finite"]
            );
        }
    }
    out
}

/// Promotes (`Move::Promote(v)`) or rolls back (`Move::Rollback`) `alias`, loading and
/// validating the version that would become current before anything is written.
pub fn move_alias(
    dir: &RegistryDir,
    model: &str,
    action: Move,
    alias: &str,
    reason: &str,
    options: &LoadOptions,
    source: Option<&Mlflow>,
) -> Result<MoveOutcome, Error> {
    let request = MoveRequest { alias: alias.to_string(), by: who(), reason: reason.to_string() };
    lifecycle::move_alias(dir, model, action, &request, source, |v| {
        load::load_version(&dir.version_dir(model, v), model, v, options, &Metrics::new()).map(drop)
    })
}

/// One rollout step on `alias`, validating a canary or shadow version first (as `promote`
/// does).
pub fn rollout_step(
    dir: &RegistryDir,
    model: &str,
    step: RolloutStep,
    alias: &str,
    reason: &str,
    options: &LoadOptions,
    source: Option<&Mlflow>,
) -> Result<RolloutOutcome, Error> {
    let request = MoveRequest { alias: alias.to_string(), by: who(), reason: reason.to_string() };
    rollout_steps::step(dir, model, step, &request, source, |v| {
        load::load_version(&dir.version_dir(model, v), model, v, options, &Metrics::new()).map(drop)
    })
}

pub fn history(dir: &RegistryDir, model: &str) -> Result<String, Error> {
    if !dir.model_dir(model).is_dir() {
        return Err(Error::ModelNotFound { model: model.to_string() });
    }
    let state = lifecycle::read_state(dir, model)?;
    let mut out = format!(
        "{:<21} {:<12} {:<9} {:>5} -> {:<5} {:<20} {}\n",
        "AT", "ALIAS", "ACTION", "FROM", "TO", "BY", "REASON"
    );
    for m in &state.history {
        let from = m.from.map_or_else(|| "-".to_string(), |v| v.to_string());
        let action = format!("{:?}", m.action).to_lowercase();
        let _ = writeln!(
            out,
            "{:<21} {:<12} {:<9} {:>5} -> {:<5} {:<20} {}",
            m.at, m.alias, action, from, m.to, m.by, m.reason
        );
    }
    Ok(out)
}
