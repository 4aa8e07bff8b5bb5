//! `state.toml` of one model: which version each alias serves, and (written by the
//! lifecycle tooling) an append-only history of alias moves.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The alias that requests without a version are served by.
pub const PRODUCTION: &str = "production";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    #[serde(default)]
    pub aliases: BTreeMap<String, u64>,
    #[serde(default)]
    pub history: Vec<AliasMove>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasMove {
    /// RFC 3339 time of the move.
    pub at: String,
    pub alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    pub to: u64,
    /// Who or what made the move (`cli`, `admin-api`, a user name).
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

impl ModelState {
    pub fn read(path: &Path) -> Result<ModelState, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
