//! A guard's judgement: the rules of a [`GuardSpec`] applied to a rollout's [`Figures`].
//! Pure, so the rules are tested on figures alone; the task that acts on a verdict lives
//! with the predictor.

use super::rollout::GuardSpec;
use super::rollout_figures::Figures;

/// A rule that tripped, with the figures that tripped it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `non_finite`, `error_rate`, `p99` or `disagreement`: the metric label.
    pub rule: &'static str,
    pub detail: String,
}

pub fn judge(spec: &GuardSpec, f: &Figures) -> Option<Verdict> {
    let window = f.window_s;
    if spec.non_finite {
        let canary = f.canary.map_or(0, |c| c.non_finite);
        let shadow = f.shadow.map_or(0, |s| s.non_finite);
        if canary + shadow > 0 {
            return Some(Verdict {
                rule: "non_finite",
                detail: format!(
                    "non-finite outputs: canary {canary}, shadow {shadow} in the last {window} s"
                ),
            });
        }
    }
    let enough = |n: u64| n >= spec.min_requests.max(1);
    if let Some(canary) = f.canary
        && enough(canary.requests)
        && enough(f.stable.requests)
    {
        if let Some(max) = spec.max_error_rate_increase
            && canary.error_rate - f.stable.error_rate > max
        {
            return Some(Verdict {
                rule: "error_rate",
                detail: format!(
                    "canary error rate {:.4} ({} of {}) above stable {:.4} ({} of {}) by more than {max} over {window} s",
                    canary.error_rate,
                    canary.errors,
                    canary.requests,
                    f.stable.error_rate,
                    f.stable.errors,
                    f.stable.requests
                ),
            });
        }
        if let (Some(pct), Some(c), Some(s)) = (spec.max_p99_increase_pct, canary.p99_ms, f.stable.p99_ms)
            && c > s * (1.0 + pct / 100.0)
        {
            return Some(Verdict {
                rule: "p99",
                detail: format!(
                    "canary p99 {c:.3} ms above stable {s:.3} ms by more than {pct}% over {window} s ({} and {} requests)",
                    canary.requests, f.stable.requests
                ),
            });
        }
    }
    if let (Some(max), Some(shadow)) = (spec.max_disagreement, f.shadow)
        && enough(shadow.compared)
        && shadow.disagreement_rate > max
    {
        return Some(Verdict {
            rule: "disagreement",
            detail: format!(
                "shadow label disagreement {:.4} ({} of {} compared) above {max} over {window} s",
                shadow.disagreement_rate, shadow.disagreed, shadow.compared
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::rollout_figures::{ArmFigures, ShadowFigures};

    fn arm(requests: u64, errors: u64, p99_ms: f64) -> ArmFigures {
        ArmFigures {
            requests,
            errors,
            error_rate: errors as f64 / requests.max(1) as f64,
            non_finite: 0,
            p99_ms: Some(p99_ms),
        }
    }

    fn figures(stable: ArmFigures, canary: Option<ArmFigures>, shadow: Option<ShadowFigures>) -> Figures {
        Figures { window_s: 30.0, stable, canary, shadow }
    }

    #[test]
    fn each_rule_trips_on_its_figures_only() {
        let spec = GuardSpec {
            min_requests: 100,
            max_error_rate_increase: Some(0.01),
            max_p99_increase_pct: Some(50.0),
            max_disagreement: Some(0.1),
            ..GuardSpec::default()
        };
        let calm = figures(arm(1000, 1, 1.0), Some(arm(100, 1, 1.4)), None);
        assert_eq!(judge(&spec, &calm), None);
        let errors = figures(arm(1000, 1, 1.0), Some(arm(100, 5, 1.0)), None);
        assert_eq!(judge(&spec, &errors).map(|v| v.rule), Some("error_rate"));
        let slow = figures(arm(1000, 0, 1.0), Some(arm(100, 0, 1.6)), None);
        assert_eq!(judge(&spec, &slow).map(|v| v.rule), Some("p99"));
        // Too few canary requests: no rate or p99 verdict yet.
        let early = figures(arm(1000, 0, 1.0), Some(arm(99, 50, 9.0)), None);
        assert_eq!(judge(&spec, &early), None);
        let mut nan = arm(5, 0, 1.0);
        nan.non_finite = 1;
        let verdict = judge(&spec, &figures(arm(1000, 0, 1.0), Some(nan), None)).expect("trips");
        assert_eq!(verdict.rule, "non_finite");
        let shadow = ShadowFigures {
            compared: 200,
            disagreed: 30,
            disagreement_rate: 0.15,
            max_abs_diff: 0.4,
            errors: 0,
            dropped: 0,
            non_finite: 0,
        };
        let verdict = judge(&spec, &figures(arm(1000, 0, 1.0), None, Some(shadow))).expect("trips");
        assert_eq!(verdict.rule, "disagreement");
        assert!(verdict.detail.contains("30 of 200"), "{}", verdict.detail);
    }
}
