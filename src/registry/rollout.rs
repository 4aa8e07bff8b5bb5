//! Progressive rollouts: an alias can carry a canary version that takes a share of its
//! traffic, assigned per request at random or sticky by entity (a hash of the request's
//! entity key, the same on every replica, so one customer sees one version throughout).
//! Declared in `state.toml` next to the aliases ([`Rollout`]); served from the snapshot
//! ([`ServedRollout`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::version::ModelVersion;

/// Weights are kept in parts per million: 5 % is 50,000.
pub const PPM: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// Each request is assigned on its own.
    #[default]
    Random,
    /// By a hash of the request's entity key: one entity, one version.
    Sticky,
}

/// A canary on one alias, as `state.toml` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The version that takes `weight` of the alias's requests.
    pub canary: u64,
    /// The canary's share, 0 < weight < 1.
    pub weight: f64,
    #[serde(default)]
    pub assignment: Assignment,
    /// With sticky assignment: the entity key hashed (default: the request's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_key: Option<String>,
    /// RFC 3339 UTC time the canary started.
    pub started_at: String,
    pub by: String,
}

impl Rollout {
    /// Checks the weight: strictly between 0 and 1 (0 is an abort, 1 a promotion).
    pub fn check_weight(weight: f64) -> Result<(), String> {
        if weight.is_finite() && weight > 0.0 && weight < 1.0 {
            Ok(())
        } else {
            Err(format!("weight must be between 0 and 1 (exclusive), got {weight}"))
        }
    }

    pub fn weight_ppm(&self) -> u32 {
        (self.weight.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32
    }
}

/// A shadow on one alias, as `state.toml` records it: a sample of the alias's requests is
/// also run on `version`, off the response path, and compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    pub version: u64,
    /// Share of the alias's (stable) requests mirrored, 0 < sample <= 1.
    pub sample: f64,
    pub started_at: String,
    pub by: String,
}

impl ShadowSpec {
    pub fn check_sample(sample: f64) -> Result<(), String> {
        if sample.is_finite() && sample > 0.0 && sample <= 1.0 {
            Ok(())
        } else {
            Err(format!("sample must be in (0, 1], got {sample}"))
        }
    }

    pub fn sample_ppm(&self) -> u32 {
        (self.sample.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32
    }
}

/// Rules that pull a canary and a shadow back by themselves, over a sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSpec {
    /// The sliding window the figures are taken over.
    pub window_s: u64,
    /// Requests each compared side needs in the window before a rate or p99 rule applies.
    pub min_requests: u64,
    /// Trips when the canary's error rate exceeds the stable version's by more than this
    /// (0.01: one percentage point).
    pub max_error_rate_increase: Option<f64>,
    /// Trips when the canary's p99 exceeds the stable version's by more than this percent.
    pub max_p99_increase_pct: Option<f64>,
    /// Trips when the shadow disagrees with the stable version's labels more often than
    /// this share of compared requests.
    pub max_disagreement: Option<f64>,
    /// Trips on any non-finite output of the canary or the shadow.
    pub non_finite: bool,
}

impl Default for GuardSpec {
    fn default() -> Self {
        GuardSpec {
            window_s: 60,
            min_requests: 100,
            max_error_rate_increase: None,
            max_p99_increase_pct: None,
            max_disagreement: None,
            non_finite: true,
        }
    }
}

impl GuardSpec {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.window_s == 0 || self.window_s > 3600 {
            return Err(("guard.window_s", "must be 1 to 3600 seconds".into()));
        }
        let rates = [
            ("guard.max_error_rate_increase", self.max_error_rate_increase),
            ("guard.max_disagreement", self.max_disagreement),
        ];
        for (field, value) in rates {
            if let Some(v) = value
                && !(v.is_finite() && (0.0..=1.0).contains(&v))
            {
                return Err((field, format!("must be between 0 and 1, got {v}")));
            }
        }
        if let Some(v) = self.max_p99_increase_pct
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(("guard.max_p99_increase_pct", format!("must be a percentage >= 0, got {v}")));
        }
        Ok(())
    }
}

/// Which side of a rollout answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The alias's own version (no rollout, or not picked for the canary).
    Stable,
    Canary,
}

/// A rollout as one snapshot serves it: the canary is loaded.
#[derive(Debug, Clone)]
pub struct ServedRollout {
    pub canary: Arc<ModelVersion>,
    pub weight_ppm: u32,
    pub assignment: Assignment,
    pub sticky_key: Option<String>,
    /// Salts the sticky hash so that two models split their entities independently.
    pub salt: u64,
}

impl ServedRollout {
    /// Whether a request goes to the canary. `entity` is the sticky key's value, when the
    /// rollout is sticky and the request has it; otherwise the request is assigned at
    /// random.
    pub fn picks_canary(&self, entity: Option<&str>) -> bool {
        let draw = match (self.assignment, entity) {
            (Assignment::Sticky, Some(key)) => mix(self.salt ^ fnv1a(key.as_bytes())),
            _ => next_random(),
        };
        bucket(draw) < self.weight_ppm
    }
}

/// The salt of a model's alias: stable across replicas and restarts.
pub fn salt(model: &str, alias: &str) -> u64 {
    mix(fnv1a(model.as_bytes()) ^ fnv1a(alias.as_bytes()).rotate_left(17))
}

/// A draw's bucket in `0..PPM`, without the bias of `%` (multiply-shift).
fn bucket(draw: u64) -> u32 {
    ((u128::from(draw) * u128::from(PPM)) >> 64) as u32
}

/// FNV-1a, 64 bits: a fixed function, so every replica hashes an entity the same.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The splitmix64 finaliser: spreads FNV's low-entropy high bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform draw in `0..PPM`, for sampling.
pub fn next_draw_ppm() -> u32 {
    bucket(next_random())
}

/// A splitmix64 sequence per thread, seeded at random (std's per-process hash keys).
pub fn next_random() -> u64 {
    use std::cell::Cell;
    use std::hash::BuildHasher;
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0u64));
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(GAMMA);
        s.set(next);
        mix(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_uniform_and_weights_exact() {
        let rollout = Rollout {
            canary: 2,
            weight: 0.05,
            assignment: Assignment::Random,
            sticky_key: None,
            started_at: String::new(),
            by: String::new(),
        };
        assert_eq!(rollout.weight_ppm(), 50_000);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(u64::MAX), PPM - 1);
        // Sticky draws over many distinct entities land near the weight.
        let salt = salt("fraud", "production");
        let hits = (0..200_000u64)
            .filter(|i| bucket(mix(salt ^ fnv1a(format!("4111{i:012}").as_bytes()))) < 50_000)
            .count();
        let share = hits as f64 / 200_000.0;
        assert!((share - 0.05).abs() < 0.003, "{share}");
    }

    #[test]
    fn sticky_is_stable_and_monotone_in_the_weight() {
        let salt = salt("fraud", "production");
        for i in 0..1000u64 {
            let key = format!("card-{i}");
            let b = bucket(mix(salt ^ fnv1a(key.as_bytes())));
            assert_eq!(b, bucket(mix(salt ^ fnv1a(key.as_bytes()))));
            // Raising the weight only adds entities to the canary: a bucket under 5 % is
            // under 10 % too.
            if b < 50_000 {
                assert!(b < 100_000);
            }
        }
        assert_ne!(salt, super::salt("churn", "production"));
    }

    #[test]
    fn weights_are_checked() {
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(Rollout::check_weight(bad).is_err(), "{bad}");
        }
        assert!(Rollout::check_weight(0.05).is_ok());
    }
}
