//! The live figures of a rollout on one alias, over a sliding window: per side (stable,
//! canary) requests, errors, non-finite outputs and a latency histogram; for a shadow,
//! comparisons, label disagreements, the largest output difference, errors and drops.
//! Requests write them; `GET /v1/models/{model}` and the guard read them. One lock per
//! alias in rollout, held for a few additions.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::rollout::Arm;

/// Latency buckets: four per power of two from 1 µs, up to ~1 s (the last is open).
const LATENCY_BUCKETS: usize = 80;
/// The window is kept as this many slices; the oldest is dropped as time moves.
const SLICES: u32 = 10;

#[derive(Debug, Clone, Copy)]
struct ArmCounts {
    requests: u64,
    errors: u64,
    non_finite: u64,
    latency: [u32; LATENCY_BUCKETS],
}

impl Default for ArmCounts {
    fn default() -> Self {
        ArmCounts { requests: 0, errors: 0, non_finite: 0, latency: [0; LATENCY_BUCKETS] }
    }
}

impl ArmCounts {
    fn add(&mut self, other: &ArmCounts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.non_finite += other.non_finite;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// The upper edge of the bucket holding the 99th percentile (resolution ~19 %).
    fn p99(&self) -> Option<Duration> {
        let total: u64 = self.latency.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 99).div_ceil(100);
        let mut seen = 0u64;
        for (i, &c) in self.latency.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(bucket_upper(i));
            }
        }
        Some(bucket_upper(LATENCY_BUCKETS - 1))
    }
}

fn latency_bucket(elapsed: Duration) -> usize {
    let micros = elapsed.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    ((micros.log2() * 4.0).floor() as usize + 1).min(LATENCY_BUCKETS - 1)
}

fn bucket_upper(i: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf(i as f64 / 4.0) * 1e-6)
}

#[derive(Debug, Clone, Copy, Default)]
struct ShadowCounts {
    compared: u64,
    disagreed: u64,
    errors: u64,
    dropped: u64,
    non_finite: u64,
    max_abs_diff: f64,
}

impl ShadowCounts {
    fn add(&mut self, other: &ShadowCounts) {
        self.compared += other.compared;
        self.disagreed += other.disagreed;
        self.errors += other.errors;
        self.dropped += other.dropped;
        self.non_finite += other.non_finite;
        self.max_abs_diff = self.max_abs_diff.max(other.max_abs_diff);
    }
}

#[derive(Debug, Clone, Copy)]
struct Slice {
    start: Instant,
    stable: ArmCounts,
    canary: ArmCounts,
    shadow: ShadowCounts,
}

impl Slice {
    fn new(start: Instant) -> Slice {
        Slice {
            start,
            stable: ArmCounts::default(),
            canary: ArmCounts::default(),
            shadow: ShadowCounts::default(),
        }
    }
}

/// The outcome of one shadow run.
#[derive(Debug, Clone, Copy)]
pub enum ShadowResult {
    /// Compared with the stable answer: whether a label differed, the largest |difference|
    /// of a numeric output, and whether any output was not finite.
    Compared {
        disagreed: bool,
        max_abs_diff: f64,
        non_finite: bool,
    },
    Failed,
    Dropped,
}

/// What a rollout is, and its sliding window.
#[derive(Debug)]
pub struct RolloutFigures {
    /// The versions watched: a change of canary or shadow starts new figures.
    pub canary: Option<u64>,
    pub shadow: Option<u64>,
    window: Duration,
    slices: Mutex<VecDeque<Slice>>,
}

/// A side's figures over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ArmFigures {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub non_finite: u64,
    /// Upper edge of the latency bucket holding the 99th percentile, in ms.
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShadowFigures {
    pub compared: u64,
    pub disagreed: u64,
    pub disagreement_rate: f64,
    pub max_abs_diff: f64,
    pub errors: u64,
    pub dropped: u64,
    pub non_finite: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub window_s: f64,
    pub stable: ArmFigures,
    pub canary: Option<ArmFigures>,
    pub shadow: Option<ShadowFigures>,
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

impl RolloutFigures {
    pub fn new(canary: Option<u64>, shadow: Option<u64>, window: Duration) -> RolloutFigures {
        RolloutFigures { canary, shadow, window, slices: Mutex::new(VecDeque::new()) }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Runs `f` on the current slice, starting a new one when the current is full and
    /// dropping those past the window.
    fn with_slice(&self, f: impl FnOnce(&mut Slice)) {
        let now = Instant::now();
        let slice_len = self.window / SLICES;
        let mut slices = self.slices.lock().unwrap_or_else(PoisonError::into_inner);
        if slices.back().is_none_or(|s| now.duration_since(s.start) >= slice_len) {
            slices.push_back(Slice::new(now));
        }
        while slices.front().is_some_and(|s| now.duration_since(s.start) > self.window) {
            slices.pop_front();
        }
        if let Some(slice) = slices.back_mut() {
            f(slice);
        }
    }

    /// One answered request of `arm`.
    pub fn record(&self, arm: Arm, ok: bool, elapsed: Duration) {
        self.with_slice(|s| {
            let counts = match arm {
                Arm::Stable => &mut s.stable,
                Arm::Canary => &mut s.canary,
            };
            counts.requests += 1;
            counts.errors += u64::from(!ok);
            counts.latency[latency_bucket(elapsed)] += 1;
        });
    }

    /// A served answer of `arm` held a non-finite output.
    pub fn record_non_finite(&self, arm: Arm) {
        self.with_slice(|s| match arm {
            Arm::Stable => s.stable.non_finite += 1,
            Arm::Canary => s.canary.non_finite += 1,
        });
    }

    pub fn record_shadow(&self, result: ShadowResult) {
        self.with_slice(|s| match result {
            ShadowResult::Compared { disagreed, max_abs_diff, non_finite } => {
                s.shadow.compared += 1;
                s.shadow.disagreed += u64::from(disagreed);
                s.shadow.non_finite += u64::from(non_finite);
                if max_abs_diff.is_finite() {
                    s.shadow.max_abs_diff = s.shadow.max_abs_diff.max(max_abs_diff);
                }
            }
            ShadowResult::Failed => s.shadow.errors += 1,
            ShadowResult::Dropped => s.shadow.dropped += 1,
        });
    }

    /// The figures over the window as of now.
    pub fn figures(&self) -> Figures {
        let now = Instant::now();
        let mut stable = ArmCounts::default();
        let mut canary = ArmCounts::default();
        let mut shadow = ShadowCounts::default();
        let slices = self.slices.lock().unwrap_or_else(PoisonError::into_inner);
        for s in slices.iter().filter(|s| now.duration_since(s.start) <= self.window) {
            stable.add(&s.stable);
            canary.add(&s.canary);
            shadow.add(&s.shadow);
        }
        drop(slices);
        let arm = |c: &ArmCounts| ArmFigures {
            requests: c.requests,
            errors: c.errors,
            error_rate: rate(c.errors, c.requests),
            non_finite: c.non_finite,
            p99_ms: c.p99().map(|d| d.as_secs_f64() * 1e3),
        };
        Figures {
            window_s: self.window.as_secs_f64(),
            stable: arm(&stable),
            canary: self.canary.map(|_| arm(&canary)),
            shadow: self.shadow.map(|_| ShadowFigures {
                compared: shadow.compared,
                disagreed: shadow.disagreed,
                disagreement_rate: rate(shadow.disagreed, shadow.compared),
                max_abs_diff: shadow.max_abs_diff,
                errors: shadow.errors,
                dropped: shadow.dropped,
                non_finite: shadow.non_finite,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bucket_edge_of_the_99th_percentile() {
        let figures = RolloutFigures::new(Some(2), None, Duration::from_secs(60));
        for _ in 0..990 {
            figures.record(Arm::Stable, true, Duration::from_micros(100));
        }
        for _ in 0..10 {
            figures.record(Arm::Stable, false, Duration::from_millis(50));
        }
        let f = figures.figures();
        assert_eq!((f.stable.requests, f.stable.errors), (1000, 10));
        let p99 = f.stable.p99_ms.expect("p99");
        assert!((0.1..0.125).contains(&p99), "{p99}");
        assert_eq!(f.canary.expect("canary").requests, 0);
        assert!(f.shadow.is_none());
        for _ in 0..20 {
            figures.record(Arm::Stable, true, Duration::from_millis(50));
        }
        let p99 = figures.figures().stable.p99_ms.expect("p99");
        assert!((50.0..60.0).contains(&p99), "{p99}");
    }

    #[test]
    fn buckets_cover_microseconds_to_a_second() {
        assert_eq!(latency_bucket(Duration::from_nanos(500)), 0);
        assert!(bucket_upper(latency_bucket(Duration::from_micros(300))) >= Duration::from_micros(300));
        assert_eq!(latency_bucket(Duration::from_secs(30)), LATENCY_BUCKETS - 1);
    }
}
