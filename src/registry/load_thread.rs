//! The loading thread: model versions are parsed, optimised and warmed on one dedicated
//! thread at low CPU priority, so a promotion takes spare cycles rather than serving
//! cycles: on a 2-core box a load at normal priority competes with every request.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::load::{self, LoadOptions};
use super::version::ModelVersion;
use crate::metrics::Metrics;

/// Niceness of the loading thread (0 = normal, 19 = lowest).
const LOADER_NICE: i32 = 10;

struct Job {
    dir: PathBuf,
    model: String,
    version: u64,
    reply: mpsc::Sender<Result<ModelVersion, String>>,
}

#[derive(Debug)]
pub struct LoadThread {
    jobs: mpsc::Sender<Job>,
    options: LoadOptions,
    metrics: Metrics,
}

impl LoadThread {
    pub fn spawn(options: LoadOptions, metrics: Metrics) -> LoadThread {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread_options = options.clone();
        let thread_metrics = metrics.clone();
        let spawned = std::thread::Builder::new().name("fti-loader".into()).spawn(move || {
            lower_priority();
            for job in rx {
                // A panic inside a model parser must not take the loading thread down.
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    load::load_version(&job.dir, &job.model, job.version, &thread_options, &thread_metrics)
                }))
                .unwrap_or_else(|_| Err("the model loader panicked on this version".to_string()));
                let _ = job.reply.send(result);
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the loading thread: {e}");
        }
        LoadThread { jobs, options, metrics }
    }

    /// Loads a version on the loading thread and waits for it. Blocking.
    pub fn load(&self, dir: &Path, model: &str, version: u64) -> Result<ModelVersion, String> {
        let (reply, result) = mpsc::channel();
        let job = Job { dir: dir.to_path_buf(), model: model.to_string(), version, reply };
        if self.jobs.send(job).is_err() {
            // No loading thread: load here rather than not at all.
            return load::load_version(dir, model, version, &self.options, &self.metrics);
        }
        result.recv().unwrap_or_else(|_| Err("the loading thread stopped".to_string()))
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux, a thread id names just this thread.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), LOADER_NICE) {
        tracing::debug!("cannot lower the loading thread's priority: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
