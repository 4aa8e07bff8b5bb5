//! A version's reference distribution (`[reference]` in its manifest): per input feature
//! and per numeric output, the bins of the training data and the share of it in each. The
//! server compares what it serves with it (drift, `crate::observe`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Training rows the shares were computed from.
    #[serde(default)]
    pub rows: u64,
    /// By input feature name.
    #[serde(default)]
    pub features: BTreeMap<String, Bins>,
    /// By output name (`<name>.<key>` for an entry of a map output, `<name>.<i>` of a list).
    #[serde(default)]
    pub outputs: BTreeMap<String, Bins>,
}

/// Bin `i` holds `edges[i-1] <= v < edges[i]` (numpy's `searchsorted(edges, v, "right")`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bins {
    pub edges: Vec<f64>,
    /// One per bin: `edges.len() + 1`, summing to 1.
    pub shares: Vec<f64>,
}

/// Training shares may not sum to 1 exactly after rounding; further off is a mistake.
const SUM_TOLERANCE: f64 = 1e-3;
/// More bins than any sensible reference; bounds what a manifest makes the server keep.
pub const MAX_BINS: usize = 1024;

impl Bins {
    /// The bin `v` falls in.
    pub fn bin(&self, v: f64) -> usize {
        self.edges.partition_point(|e| *e <= v)
    }

    pub fn len(&self) -> usize {
        self.shares.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    fn check(&self, at: &str) -> Result<(), String> {
        if self.shares.len() != self.edges.len() + 1 {
            return Err(format!(
                "{at}: {} edges need {} shares, got {}",
                self.edges.len(),
                self.edges.len() + 1,
                self.shares.len()
            ));
        }
        if self.shares.len() > MAX_BINS {
            return Err(format!("{at}: {} bins, at most {MAX_BINS}", self.shares.len()));
        }
        if self.edges.iter().any(|e| !e.is_finite()) || self.edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{at}.edges: must be finite and strictly ascending"));
        }
        if self.shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(format!("{at}.shares: must be finite and not negative"));
        }
        let sum: f64 = self.shares.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(format!("{at}.shares: sum to {sum}, not 1"));
        }
        Ok(())
    }
}

impl Reference {
    /// Every feature must be an input of the version and every output one of its outputs.
    pub fn check(&self, inputs: &[String], outputs: &[String]) -> Result<(), String> {
        for (name, bins) in &self.features {
            if !inputs.contains(name) {
                return Err(format!("reference.features.{name}: not an input feature of this version"));
            }
            bins.check(&format!("reference.features.{name}"))?;
        }
        for (name, bins) in &self.outputs {
            let known = outputs.iter().any(|o| {
                name == o || name.strip_prefix(o.as_str()).is_some_and(|rest| rest.starts_with('.'))
            });
            if !known {
                return Err(format!("reference.outputs.{name}: not an output of this version"));
            }
            bins.check(&format!("reference.outputs.{name}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins(edges: &[f64], shares: &[f64]) -> Bins {
        Bins { edges: edges.to_vec(), shares: shares.to_vec() }
    }

    #[test]
    fn bins_follow_searchsorted_right() {
        let b = bins(&[1.0, 2.0], &[0.2, 0.5, 0.3]);
        assert_eq!(b.bin(0.5), 0);
        assert_eq!(b.bin(1.0), 1);
        assert_eq!(b.bin(1.5), 1);
        assert_eq!(b.bin(2.0), 2);
        assert_eq!(b.bin(9.0), 2);
        assert_eq!(b.bin(f64::NEG_INFINITY), 0);
    }

    #[test]
    fn check_names_the_field() {
        let inputs = vec!["a".to_string()];
        let outputs = vec!["probability".to_string(), "scores".to_string()];
        let mut r = Reference::default();
        r.features.insert("a".into(), bins(&[1.0], &[0.5, 0.5]));
        r.outputs.insert("scores.fraud".into(), bins(&[], &[1.0]));
        assert!(r.check(&inputs, &outputs).is_ok());
        r.outputs.insert("scoresx".into(), bins(&[], &[1.0]));
        assert!(r.check(&inputs, &outputs).unwrap_err().contains("reference.outputs.scoresx"));
        r.outputs.remove("scoresx");
        r.features.insert("a".into(), bins(&[2.0, 1.0], &[0.5, 0.25, 0.25]));
        assert!(r.check(&inputs, &outputs).unwrap_err().contains("strictly ascending"));
        r.features.insert("a".into(), bins(&[1.0], &[0.5]));
        assert!(r.check(&inputs, &outputs).unwrap_err().contains("need 2 shares"));
        r.features.insert("a".into(), bins(&[1.0], &[0.5, 0.6]));
        assert!(r.check(&inputs, &outputs).unwrap_err().contains("sum to"));
        r.features.insert("b".into(), bins(&[1.0], &[0.5, 0.5]));
        r.features.remove("a");
        assert!(r.check(&inputs, &outputs).unwrap_err().contains("not an input feature"));
    }
}
