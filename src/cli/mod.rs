//! Commands other than `serve`: the feature-pipeline sink (`materialize`), offline
//! on-demand features (`transform`), operator commands on the registry (`models`) and
//! the prediction log's export (`log`). `main.rs` parses arguments and calls these.

pub mod log;
pub mod materialize;
pub mod models;
pub mod transform;

use std::path::Path;

use crate::features::FeatureViewSpec;
use crate::registry::Manifest;

/// Reads a feature view from a standalone view file or from a version's manifest.
pub fn read_feature_view(path: &Path) -> Result<FeatureViewSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if table.contains_key("feature_view") {
        return Manifest::parse(&text)
            .map(|m| m.feature_view)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
