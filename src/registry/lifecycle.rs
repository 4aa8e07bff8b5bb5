//! Moving aliases: promote and rollback. Shared by the CLI (which works on the registry
//! directory directly) and the admin API (which also swaps the served snapshot). The
//! version is validated while the model's state lock is held, and the state is written
//! only after validation succeeded, so a broken version never changes the registry.
//! With an MLflow source, the move is made in MLflow too, under the same lock, before the
//! cache's state is written.

use serde::Serialize;

use super::RegistryDir;
use super::mlflow::Mlflow;
use super::state::{Action, ModelState, StateLock};
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Promote(u64),
    Rollback,
}

#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub alias: String,
    /// Who or what asks (`cli`, `admin-api`, a user name).
    pub by: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoveOutcome {
    pub model: String,
    pub alias: String,
    pub action: Action,
    pub from: Option<u64>,
    pub to: u64,
    pub at: String,
}

fn registry_error(e: impl std::fmt::Display) -> Error {
    Error::Registry(e.to_string())
}

/// Alias names are path- and label-safe: they appear in URLs, state files and metrics.
pub fn check_alias(alias: &str) -> Result<(), Error> {
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("alias", format!("{alias:?} is not a valid alias (letters, digits, - and _)")))
    }
}

/// A model name from a client or an operator, checked before it becomes a path.
pub fn check_model(model: &str) -> Result<(), Error> {
    super::dir::check_model_name(model).map_err(|m| Error::invalid("model", m))
}

/// Reads a model's state; a model without `state.toml` has no aliases yet.
pub fn read_state(dir: &RegistryDir, model: &str) -> Result<ModelState, Error> {
    let path = dir.state_path(model);
    if !path.exists() {
        return Ok(ModelState::default());
    }
    ModelState::read(&path).map_err(Error::Registry)
}

/// Moves an alias. `validate` loads and checks the target version (checksum, feature
/// view, graph, warm-up) and runs under the state lock; its error refuses the move. With
/// `source`, the cache first follows MLflow's aliases as they are, the target version is
/// downloaded, and the alias is set in MLflow once the version validated.
pub fn move_alias(
    dir: &RegistryDir,
    model: &str,
    action: Move,
    request: &MoveRequest,
    source: Option<&Mlflow>,
    validate: impl FnOnce(u64) -> Result<(), String>,
) -> Result<MoveOutcome, Error> {
    check_model(model)?;
    check_alias(&request.alias)?;
    if let Some(source) = source {
        source.prepare_model(model)?;
    }
    let model_dir = dir.model_dir(model);
    if !model_dir.is_dir() {
        return Err(Error::ModelNotFound { model: model.to_string() });
    }
    let lock = StateLock::acquire(&model_dir).map_err(Error::Registry)?;
    let mut state = read_state(dir, model)?;
    if let Some(source) = source {
        source.pull(model, &mut state)?;
    }
    let current = state.aliases.get(&request.alias).copied();
    let (target, recorded) = match action {
        Move::Promote(version) => {
            if let Some(source) = source {
                source.fetch_version(model, version)?;
            }
            let versions = dir.versions(model).map_err(registry_error)?;
            if !versions.contains(&version) {
                return Err(Error::VersionNotFound { model: model.to_string(), version });
            }
            (version, Action::Promote)
        }
        Move::Rollback => match state.rollback_target(&request.alias) {
            Some(v) => (v, Action::Rollback),
            None => {
                return Err(Error::NothingToRollBack {
                    model: model.to_string(),
                    alias: request.alias.clone(),
                });
            }
        },
    };
    if let (Some(source), Move::Rollback) = (source, action) {
        source.fetch_version(model, target)?;
    }
    if current == Some(target) {
        return Err(Error::AliasUnchanged {
            model: model.to_string(),
            alias: request.alias.clone(),
            version: target,
        });
    }
    validate(target).map_err(|reason| Error::VersionRefused {
        model: model.to_string(),
        version: target,
        reason,
    })?;
    if let Some(source) = source {
        source.publish(model, &request.alias, target)?;
    }
    let from = state.record(&request.alias, recorded, target, &request.by, &request.reason);
    lock.write(&state).map_err(Error::Registry)?;
    let at = state.history.last().map(|m| m.at.clone()).unwrap_or_default();
    tracing::info!(model, alias = %request.alias, ?from, to = target, action = ?recorded, by = %request.by, "alias moved");
    Ok(MoveOutcome {
        model: model.to_string(),
        alias: request.alias.clone(),
        action: recorded,
        from,
        to: target,
        at,
    })
}
