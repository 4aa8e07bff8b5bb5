//! Between MLflow's aliases and fti-serve's: the configured mapping (MLflow alias ->
//! fti-serve alias, or every alias under its own name when none is configured), and
//! bringing a model's `state.toml` in line with what MLflow says, recording each move
//! with `by = "mlflow"` so the history tells who moved what.

use std::collections::BTreeMap;

use super::client::AliasEntry;
use crate::registry::state::{Action, ModelState};

/// Who the history names for moves made in MLflow.
pub const BY_MLFLOW: &str = "mlflow";

#[derive(Debug, Clone, Default)]
pub struct AliasMap {
    /// MLflow alias -> fti-serve alias; empty: identity.
    map: BTreeMap<String, String>,
}

impl AliasMap {
    pub fn new(map: BTreeMap<String, String>) -> AliasMap {
        AliasMap { map }
    }

    /// The fti-serve alias an MLflow alias serves as, if it is followed.
    pub fn to_local<'a>(&'a self, mlflow: &'a str) -> Option<&'a str> {
        if self.map.is_empty() {
            return crate::registry::lifecycle::check_alias(mlflow).is_ok().then_some(mlflow);
        }
        self.map.get(mlflow).map(String::as_str)
    }

    /// The MLflow alias an fti-serve alias is set through.
    pub fn to_mlflow<'a>(&'a self, local: &'a str) -> Option<&'a str> {
        if self.map.is_empty() {
            return Some(local);
        }
        self.map.iter().find(|(_, l)| l.as_str() == local).map(|(m, _)| m.as_str())
    }

    /// MLflow's aliases as fti-serve aliases -> versions.
    pub fn wanted(&self, aliases: &[AliasEntry]) -> BTreeMap<String, u64> {
        aliases
            .iter()
            .filter_map(|a| self.to_local(&a.alias).map(|local| (local.to_string(), a.version)))
            .collect()
    }
}

/// Moves `state`'s aliases to `wanted`, recording each move; a move back to the version
/// a rollback would return to is recorded as a rollback. Aliases MLflow no longer has are
/// left where they are (deleting an alias in MLflow does not stop serving). Returns
/// whether anything moved.
pub fn align(state: &mut ModelState, wanted: &BTreeMap<String, u64>) -> bool {
    let mut moved = false;
    for (alias, &version) in wanted {
        if state.aliases.get(alias) == Some(&version) {
            continue;
        }
        let action =
            if state.rollback_target(alias) == Some(version) { Action::Rollback } else { Action::Promote };
        state.record(alias, action, version, BY_MLFLOW, "alias set in MLflow");
        moved = true;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(alias: &str, version: u64) -> AliasEntry {
        AliasEntry { alias: alias.into(), version }
    }

    #[test]
    fn identity_unless_mapped() {
        let identity = AliasMap::default();
        assert_eq!(identity.to_local("champion"), Some("champion"));
        assert_eq!(identity.to_local("not valid!"), None);
        assert_eq!(identity.to_mlflow("production"), Some("production"));

        let mapped = AliasMap::new(BTreeMap::from([("champion".into(), "production".into())]));
        assert_eq!(mapped.to_local("champion"), Some("production"));
        assert_eq!(mapped.to_local("challenger"), None);
        assert_eq!(mapped.to_mlflow("production"), Some("champion"));
        assert_eq!(mapped.to_mlflow("canary"), None);
        let wanted = mapped.wanted(&[entry("champion", 3), entry("challenger", 4)]);
        assert_eq!(wanted, BTreeMap::from([("production".to_string(), 3)]));
    }

    #[test]
    fn align_records_promotions_and_rollbacks() {
        let mut state = ModelState::default();
        let want = |v| BTreeMap::from([("production".to_string(), v)]);
        assert!(align(&mut state, &want(1)));
        assert!(!align(&mut state, &want(1)), "nothing moves twice");
        assert!(align(&mut state, &want(2)));
        assert!(align(&mut state, &want(1)));
        let actions: Vec<_> = state.history.iter().map(|m| (m.action, m.to, m.by.as_str())).collect();
        assert_eq!(
            actions,
            [(Action::Promote, 1, "mlflow"), (Action::Promote, 2, "mlflow"), (Action::Rollback, 1, "mlflow")]
        );
        // An alias MLflow dropped stays where it was.
        assert!(!align(&mut state, &BTreeMap::new()));
        assert_eq!(state.aliases.get("production"), Some(&1));
    }
}
