//! What the server records of what it serves (docs/prediction-log.md): the prediction log
//! (rotating JSON-lines files, Redis Streams; read back by [`export`]) and drift
//! monitoring against each version's training reference ([`drift`]).
//!
//! The request path only offers an [`Observation`] to a bounded queue ([`Observer::offer`]);
//! one thread ([`writer`]) encodes records ([`record`]), writes the sinks ([`files`],
//! [`stream`]) and keeps the drift windows. A full queue drops and counts, never waits.

pub mod drift;
pub mod export;
pub mod files;
pub mod observation;
pub mod parquet_out;
mod queue;
pub mod record;
pub mod request_id;
pub mod stream;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use drift::{DriftOptions, DriftSummary, VersionDrift};
pub use files::FilesOptions;
pub use observation::Observation;
pub use stream::StreamOptions;

use crate::metrics::{Metrics, ObserveMetrics};
use crate::registry::rollout::next_draw_ppm;

const PPM: f64 = 1_000_000.0;

/// The prediction log's settings (the app builds them from `[prediction_log]`).
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Share of requests recorded.
    pub sample: f64,
    pub per_model: HashMap<String, f64>,
    pub files: Option<FilesOptions>,
    pub stream: Option<StreamOptions>,
}

#[derive(Debug, Clone)]
pub struct ObserveOptions {
    /// `None`: nothing is logged.
    pub log: Option<LogOptions>,
    /// `None`: no drift windows.
    pub drift: Option<DriftOptions>,
    /// Share of requests that feed the drift windows.
    pub drift_sample: f64,
    pub queue: usize,
    pub batch: usize,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub log: bool,
    pub drift: bool,
}

struct Worker {
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
}

/// The request path's handle: sampling, the queue, and the writer thread's stop.
pub struct Observer {
    tx: Option<queue::Sender<Observation>>,
    sample_ppm: u32,
    per_model_ppm: HashMap<String, u32>,
    logging: bool,
    drift: bool,
    drift_ppm: u32,
    metrics: ObserveMetrics,
    summary: DriftSummary,
    worker: Mutex<Option<Worker>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").field("logging", &self.logging).field("drift", &self.drift).finish()
    }
}

fn sampled(ppm: u32) -> bool {
    ppm > 0 && (ppm >= PPM as u32 || next_draw_ppm() < ppm)
}

fn ppm(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * PPM).round() as u32
}

impl Observer {
    /// Nothing observed (no thread, no queue).
    pub fn off(metrics: &Metrics) -> Observer {
        Observer {
            tx: None,
            sample_ppm: 0,
            per_model_ppm: HashMap::new(),
            logging: false,
            drift: false,
            drift_ppm: 0,
            metrics: metrics.observe.clone(),
            summary: DriftSummary::default(),
            worker: Mutex::new(None),
        }
    }

    /// Starts the writer thread when anything is to be observed.
    pub fn start(options: &ObserveOptions, metrics: &Metrics) -> Result<Observer, String> {
        let mut observer = Observer::off(metrics);
        if options.log.is_none() && options.drift.is_none() {
            return Ok(observer);
        }
        let (tx, rx) = queue::queue(options.queue);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = sync_channel(1);
        let (files, stream) = match &options.log {
            Some(log) => {
                observer.logging = true;
                observer.sample_ppm = ppm(log.sample);
                observer.per_model_ppm = log.per_model.iter().map(|(m, s)| (m.clone(), ppm(*s))).collect();
                let stream = match &log.stream {
                    Some(o) => Some(stream::StreamSink::new(o.clone())?),
                    None => None,
                };
                (log.files.clone().map(files::FilesSink::new), stream)
            }
            None => (None, None),
        };
        observer.drift = options.drift.is_some();
        observer.drift_ppm = ppm(options.drift_sample);
        let drift = options
            .drift
            .map(|o| drift::Drift::new(o, observer.metrics.clone(), Arc::clone(&observer.summary)));
        let writer = writer::Writer {
            rx,
            stop: Arc::clone(&stop),
            batch: options.batch,
            files,
            stream,
            drift,
            metrics: observer.metrics.clone(),
        };
        std::thread::Builder::new()
            .name("fti-observe".into())
            .spawn(move || {
                writer.run();
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the prediction log thread: {e}"))?;
        observer.tx = Some(tx);
        *observer.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(Worker { stop, done });
        Ok(observer)
    }

    /// Whether this request of `model` is logged (its sample) and feeds drift.
    pub fn wanted(&self, model: &str) -> Wanted {
        let log = self.logging && sampled(self.per_model_ppm.get(model).copied().unwrap_or(self.sample_ppm));
        Wanted { log, drift: self.drift && sampled(self.drift_ppm) }
    }

    /// Queues `obs` for the writer; a full queue drops it (counted when it was to be logged).
    pub fn offer(&self, obs: Observation) {
        let Some(tx) = &self.tx else { return };
        let (log, rows) = (obs.log, obs.missing.len() as u64);
        match tx.offer(obs) {
            Ok(()) if log => self.metrics.accepted.inc_by(rows),
            Ok(()) => {}
            Err(_) => {
                if log {
                    self.metrics.dropped.with_label_values(&["queue"]).inc_by(rows);
                }
            }
        }
    }

    /// Each served version's drift window, as last published.
    pub fn drift_of(&self, model: &str) -> Vec<(u64, VersionDrift)> {
        let summary = self.summary.read().unwrap_or_else(PoisonError::into_inner);
        summary.iter().filter(|((m, _), _)| m == model).map(|((_, v), d)| (*v, d.clone())).collect()
    }

    /// Writes what is queued and stops the thread; waits at most `timeout`. Call once the
    /// transports have drained.
    pub fn finish(&self, timeout: Duration) {
        let Some(worker) = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        worker.stop.store(true, Ordering::Release);
        if worker.done.recv_timeout(timeout).is_err() {
            tracing::warn!("prediction log: the writer did not finish within {} ms", timeout.as_millis());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer(sample: f64, per_model: &[(&str, f64)], dir: &std::path::Path) -> Observer {
        let log = LogOptions {
            sample,
            per_model: per_model.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
            files: Some(FilesOptions {
                dir: dir.to_path_buf(),
                max_file_bytes: 1 << 20,
                max_file_age: Duration::from_secs(60),
                max_files: 0,
            }),
            stream: None,
        };
        let options = ObserveOptions { log: Some(log), drift: None, drift_sample: 1.0, queue: 16, batch: 8 };
        Observer::start(&options, &Metrics::new()).expect("observer")
    }

    #[test]
    fn requests_are_sampled_per_model() {
        let dir = tempfile::tempdir().expect("temp dir");
        let o = observer(0.25, &[("all", 1.0), ("none", 0.0)], dir.path());
        let logged = |model: &str| (0..20_000).filter(|_| o.wanted(model).log).count();
        let share = logged("other") as f64 / 20_000.0;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        assert_eq!(logged("all"), 20_000);
        assert_eq!(logged("none"), 0);
        assert!(!o.wanted("other").drift, "no drift without drift options");
        o.finish(Duration::from_secs(5));
    }

    #[test]
    fn nothing_observed_when_off() {
        let o = Observer::off(&Metrics::new());
        assert_eq!(o.wanted("m"), Wanted { log: false, drift: false });
    }
}
