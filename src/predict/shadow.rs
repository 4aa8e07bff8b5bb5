//! Shadow traffic: a sample of an alias's stable requests also runs on its shadow version,
//! off the response path. Jobs wait in a bounded queue; a full queue drops the job (counted,
//! never waited for); one worker, on a thread at the lowest CPU priority, runs them in turn
//! and compares each answer with the stable one: per output, the largest |difference| of
//! numbers and whether a label differs.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::messages::{OutputValue, PredictRequest};
use super::predictor::{Deadline, Predictor, run_model};
use crate::metrics::Metrics;
use crate::registry::Routed;
use crate::registry::named_outputs::extract;
use crate::registry::rollout::Arm;
use crate::registry::rollout_figures::{RolloutFigures, ShadowResult};
use crate::registry::rollout_snapshot::ServedShadow;

/// What the shadow runs on.
pub(super) enum ShadowInput {
    /// The stable run's input vector (the shadow's view assembles the same).
    Vector { input: Vec<f32>, rows: usize },
    /// The request itself: the shadow assembles its own features.
    Request(Box<PredictRequest>),
}

pub(super) struct ShadowJob {
    pub shadow: ServedShadow,
    pub figures: Option<Arc<RolloutFigures>>,
    pub input: ShadowInput,
    /// The stable answer's outputs, per row.
    pub primary: Vec<Vec<(String, OutputValue)>>,
}

/// The bounded queue between requests and the shadow worker.
pub(super) struct ShadowQueue {
    tx: mpsc::Sender<ShadowJob>,
    rx: Mutex<Option<mpsc::Receiver<ShadowJob>>>,
}

impl ShadowQueue {
    pub fn new(capacity: usize) -> ShadowQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        ShadowQueue { tx, rx: Mutex::new(Some(rx)) }
    }

    /// Queues a job, or drops it (counted) when the queue is full: never waits.
    pub fn offer(&self, job: ShadowJob, metrics: &Metrics) {
        let labels = [job.shadow.version.model.clone(), job.shadow.version.version.to_string()];
        if let Err(e) = self.tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
            };
            metrics.shadow_runs.with_label_values(&[labels[0].as_str(), labels[1].as_str(), "dropped"]).inc();
            if let Some(figures) = &job.figures {
                figures.record_shadow(ShadowResult::Dropped);
            }
        }
    }
}

impl Predictor {
    /// Starts the worker that runs shadow jobs (once): an OS thread of its own at the
    /// lowest CPU priority (Linux `SCHED_IDLE`: any other thread that wakes takes the core
    /// at once; elsewhere nice 19), with its own single-threaded runtime, so shadow work
    /// takes only CPU the answers leave idle. It ends when the last handle on the predictor
    /// is gone. Returns whether it started.
    pub fn spawn_shadow_worker(&self) -> bool {
        let Some(mut rx) = self.0.shadows.rx.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return false;
        };
        let shared = Arc::downgrade(&self.0);
        let started = std::thread::Builder::new().name("fti-shadow".into()).spawn(move || {
            // The priority is per thread on Linux, and inherited by the runtime's blocking
            // pool, where slow models run.
            let Some(runtime) = crate::idle::worker_runtime("shadow worker") else { return };
            runtime.block_on(async move {
                while let Some(job) = rx.recv().await {
                    let Some(shared) = shared.upgrade() else { break };
                    Predictor(shared).run_shadow(job).await;
                }
            });
        });
        if let Err(e) = started {
            tracing::error!("cannot start the shadow worker: {e}; shadows are dropped");
        }
        true
    }

    async fn run_shadow(&self, job: ShadowJob) {
        let version = &job.shadow.version;
        let deadline = Deadline::after(self.0.limits.request_timeout);
        let outputs: Result<Vec<Vec<(String, OutputValue)>>, crate::Error> = match job.input {
            ShadowInput::Vector { input, rows } => {
                run_model(version, input, rows, deadline).await.map(|tensors| {
                    (0..rows)
                        .map(|r| {
                            version
                                .outputs
                                .iter()
                                .map(|o| (o.name.clone(), extract(o, &tensors, r)))
                                .collect()
                        })
                        .collect()
                })
            }
            ShadowInput::Request(request) => {
                let routed =
                    Routed { version: Arc::clone(version), arm: Arm::Stable, figures: None, shadow: None };
                self.run_pipeline(&routed, *request, deadline, None)
                    .await
                    .map(|response| response.rows.into_iter().map(|row| row.outputs).collect())
            }
        };
        let model = version.model.as_str();
        let v = version.version.to_string();
        let metrics = &self.0.metrics;
        let result = match outputs {
            Ok(shadow) => {
                let comparison = compare(&job.primary, &shadow);
                for (output, diff) in &comparison.diffs {
                    metrics.shadow_abs_diff.with_label_values(&[model, &v, output]).observe(*diff);
                }
                for output in &comparison.disagreed {
                    metrics.shadow_disagreements.with_label_values(&[model, &v, output]).inc();
                }
                metrics.shadow_runs.with_label_values(&[model, &v, "ok"]).inc();
                ShadowResult::Compared {
                    disagreed: !comparison.disagreed.is_empty(),
                    max_abs_diff: comparison.diffs.iter().map(|(_, d)| *d).fold(0.0, f64::max),
                    non_finite: comparison.non_finite,
                }
            }
            Err(e) => {
                tracing::debug!(model, version = %v, "shadow run failed: {e}");
                metrics.shadow_runs.with_label_values(&[model, &v, "error"]).inc();
                ShadowResult::Failed
            }
        };
        if let Some(figures) = &job.figures {
            figures.record_shadow(result);
        }
    }
}

/// A shadow answer against the stable one.
#[derive(Debug, Default, PartialEq)]
struct Comparison {
    /// Per numeric output, the largest |difference| over the rows.
    diffs: Vec<(String, f64)>,
    /// Outputs whose label (or kind) differed in some row.
    disagreed: Vec<String>,
    /// A shadow output was NaN or infinite.
    non_finite: bool,
}

fn compare(primary: &[Vec<(String, OutputValue)>], shadow: &[Vec<(String, OutputValue)>]) -> Comparison {
    let mut out = Comparison::default();
    for (p_row, s_row) in primary.iter().zip(shadow) {
        for (name, s) in s_row {
            out.non_finite |= numbers(s).iter().any(|x| !x.is_finite());
            let Some((_, p)) = p_row.iter().find(|(n, _)| n == name) else { continue };
            let diff = match (p, s) {
                (OutputValue::Int(a), OutputValue::Int(b)) => (a != b).then_some(f64::NAN),
                (OutputValue::Str(a), OutputValue::Str(b)) => (a != b).then_some(f64::NAN),
                (OutputValue::Map(a), OutputValue::Map(b))
                    if a.iter().map(|(k, _)| k).eq(b.iter().map(|(k, _)| k)) =>
                {
                    Some(max_diff(&numbers(p), &numbers(s)))
                }
                (OutputValue::Num(_), OutputValue::Num(_)) => Some(max_diff(&numbers(p), &numbers(s))),
                (OutputValue::List(a), OutputValue::List(b)) if a.len() == b.len() => {
                    Some(max_diff(&numbers(p), &numbers(s)))
                }
                _ => Some(f64::NAN),
            };
            match diff {
                // A label (or the kind of answer) differs.
                Some(d) if d.is_nan() => push_once(&mut out.disagreed, name),
                Some(d) => match out.diffs.iter_mut().find(|(n, _)| n == name) {
                    Some((_, max)) => *max = max.max(d),
                    None => out.diffs.push((name.clone(), d)),
                },
                None => {}
            }
        }
    }
    out
}

fn push_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn numbers(value: &OutputValue) -> Vec<f64> {
    match value {
        OutputValue::Num(x) => vec![*x],
        OutputValue::List(v) => v.clone(),
        OutputValue::Map(m) => m.iter().map(|(_, x)| *x).collect(),
        OutputValue::Int(_) | OutputValue::Str(_) => Vec::new(),
    }
}

/// The largest |a - b|; infinite when either side is not finite (a NaN output is as far as
/// an answer can be).
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| if x.is_finite() && y.is_finite() { (x - y).abs() } else { f64::INFINITY })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: f64, label: i64) -> Vec<(String, OutputValue)> {
        vec![("probability".into(), OutputValue::Num(p)), ("label".into(), OutputValue::Int(label))]
    }

    #[test]
    fn compares_numbers_and_labels_per_output() {
        let c = compare(&[row(0.2, 0), row(0.9, 1)], &[row(0.25, 0), row(0.4, 0)]);
        assert_eq!(c.disagreed, ["label"]);
        assert_eq!(c.diffs.len(), 1);
        assert!((c.diffs[0].1 - 0.5).abs() < 1e-12, "{c:?}");
        assert!(!c.non_finite);
        let c = compare(&[row(0.2, 0)], &[row(f64::NAN, 0)]);
        assert!(c.non_finite);
        assert_eq!(c.diffs[0].1, f64::INFINITY);
        assert!(c.disagreed.is_empty());
        let same = compare(&[row(0.2, 1)], &[row(0.2, 1)]);
        assert_eq!(same.diffs, [("probability".to_string(), 0.0)]);
        assert!(same.disagreed.is_empty());
    }
}
