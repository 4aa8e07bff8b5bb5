//! The registry's gauges: which version each alias serves, and one info series per
//! loaded version, republished after every reconcile.

use super::snapshot::{Snapshot, VersionState};
use crate::metrics::Metrics;

pub fn publish(metrics: &Metrics, prev: &Snapshot, next: &Snapshot) {
    for (name, entry) in &prev.models {
        for (alias, v) in &entry.aliases {
            if next.models.get(name).and_then(|e| e.aliases.get(alias)) != Some(v) {
                let _ = metrics.alias_version.remove_label_values(&[name, alias]);
            }
        }
    }
    metrics.model_version_info.reset();
    for (name, entry) in &next.models {
        for (alias, &v) in &entry.aliases {
            metrics.alias_version.with_label_values(&[name.as_str(), alias.as_str()]).set(v as i64);
        }
        for (v, state) in &entry.versions {
            if let VersionState::Ready(x) = state {
                let aliases: Vec<&str> =
                    entry.aliases.iter().filter(|(_, to)| *to == v).map(|(a, _)| a.as_str()).collect();
                metrics
                    .model_version_info
                    .with_label_values(&[
                        name.as_str(),
                        &x.version_label,
                        x.backend.kind().as_str(),
                        &aliases.join(","),
                    ])
                    .set(1);
            }
        }
    }
}
