//! The `fti-observe` thread: takes observations off the queue in batches, keeps the drift
//! windows, encodes records and writes them to each sink; a failing sink keeps a bounded
//! backlog and retries with back-off while the rest carries on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::drift::Drift;
use super::files::FilesSink;
use super::observation::Observation;
use super::record::{time_text, write_line};
use super::stream::{StreamSink, backoff};
use crate::metrics::ObserveMetrics;

/// How often drift gauges are refreshed and an idle file is checked for rotation.
const TICK: Duration = Duration::from_secs(1);
/// How long the thread sleeps when it has emptied the queue. It never waits on the queue
/// itself: a sender that finds the receiver parked must wake it (a futex call and a context
/// switch per request, which measured 14% of a saturated server's throughput); a sleeping
/// receiver costs the senders nothing, and a record waits at most this long.
const IDLE_WAIT: Duration = Duration::from_millis(10);

/// A sink's records not yet written, and when to try again after a failure.
struct Backlog<T> {
    items: Vec<T>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl<T> Backlog<T> {
    fn new() -> Backlog<T> {
        Backlog { items: Vec::new(), failures: 0, retry_at: None }
    }

    fn due(&self, force: bool) -> bool {
        !self.items.is_empty() && (force || self.retry_at.is_none_or(|at| Instant::now() >= at))
    }

    fn failed(&mut self) {
        self.failures += 1;
        self.retry_at = Some(Instant::now() + backoff(self.failures));
    }

    fn succeeded(&mut self) {
        self.items.clear();
        self.failures = 0;
        self.retry_at = None;
    }
}

pub struct Writer {
    pub rx: super::queue::Receiver<Observation>,
    pub stop: Arc<AtomicBool>,
    pub batch: usize,
    pub files: Option<FilesSink>,
    pub stream: Option<StreamSink>,
    pub drift: Option<Drift>,
    pub metrics: ObserveMetrics,
}

impl Writer {
    pub fn run(mut self) {
        // Records and drift counts take only CPU the answers leave idle: under CPU
        // overload the queue fills and the overflow is dropped and counted.
        let Some(runtime) = crate::idle::worker_runtime("prediction log writer") else { return };
        // A backlog holds at most this many records while its sink is down; beyond, the
        // newest are dropped and counted.
        let cap = self.batch.saturating_mul(4);
        let mut lines: Backlog<Vec<u8>> = Backlog::new();
        let mut entries: Backlog<(String, Vec<u8>)> = Backlog::new();
        for (name, present) in [("files", self.files.is_some()), ("stream", self.stream.is_some())] {
            if present {
                self.metrics.sink_up.with_label_values(&[name]).set(1);
            }
        }
        let mut last_tick = Instant::now();
        // Taken off the queue as it comes, handled a batch at a time; what is taken counts
        // against the queue's capacity until it is handled.
        let mut pending: VecDeque<Observation> = VecDeque::new();
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let closed = self.rx.take(&mut pending);
            let (mut rows, mut done) = (0, 0);
            while rows < self.batch || stopping {
                let Some(obs) = pending.pop_front() else { break };
                rows += obs.missing.len();
                done += 1;
                if let Some(drift) = &mut self.drift {
                    drift.observe(&obs);
                }
                if obs.log {
                    self.encode(&obs, &mut lines, &mut entries, cap);
                }
            }
            self.rx.done(done);
            let disconnected = closed && pending.is_empty();
            let idle = done == 0;
            let last = stopping || disconnected;
            self.flush_files(&mut lines, last);
            self.flush_stream(&runtime, &mut entries, last);
            if last_tick.elapsed() >= TICK || last {
                last_tick = Instant::now();
                if let Some(drift) = &mut self.drift {
                    drift.publish();
                }
                if let Some(files) = &mut self.files {
                    files.tick();
                }
            }
            if last {
                // What a failing sink still holds is lost with the process: counted.
                for (sink, left) in [("files", lines.items.len()), ("stream", entries.items.len())] {
                    if left > 0 {
                        tracing::error!(sink, records = left, "prediction log: records lost at shutdown");
                        self.metrics.dropped.with_label_values(&[sink]).inc_by(left as u64);
                    }
                }
                return;
            }
            if idle {
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }

    fn encode(
        &self,
        obs: &Observation,
        lines: &mut Backlog<Vec<u8>>,
        entries: &mut Backlog<(String, Vec<u8>)>,
        cap: usize,
    ) {
        let time = time_text(obs);
        for row in 0..obs.missing.len() {
            let mut line = Vec::with_capacity(512);
            write_line(&mut line, obs, row, &time);
            if self.stream.is_some() {
                if entries.items.len() < cap {
                    let mut json = line.clone();
                    json.pop();
                    entries.items.push((obs.version.model.clone(), json));
                } else {
                    self.metrics.dropped.with_label_values(&["stream"]).inc();
                }
            }
            if self.files.is_some() {
                if lines.items.len() < cap {
                    lines.items.push(line);
                } else {
                    self.metrics.dropped.with_label_values(&["files"]).inc();
                }
            }
        }
    }

    fn flush_files(&mut self, lines: &mut Backlog<Vec<u8>>, force: bool) {
        let Some(files) = &mut self.files else { return };
        if !lines.due(force) {
            return;
        }
        let bytes: Vec<u8> = lines.items.concat();
        match files.write(&bytes) {
            Ok(()) => {
                self.metrics.written.with_label_values(&["files"]).inc_by(lines.items.len() as u64);
                self.metrics.sink_up.with_label_values(&["files"]).set(1);
                lines.succeeded();
            }
            Err(e) => {
                if lines.failures == 0 {
                    tracing::error!("prediction log: writing files failed (retrying): {e}");
                }
                self.metrics.write_errors.with_label_values(&["files"]).inc();
                self.metrics.sink_up.with_label_values(&["files"]).set(0);
                lines.failed();
            }
        }
    }

    fn flush_stream(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        entries: &mut Backlog<(String, Vec<u8>)>,
        force: bool,
    ) {
        let Some(stream) = &mut self.stream else { return };
        if !entries.due(force) {
            return;
        }
        match runtime.block_on(stream.write(&entries.items)) {
            Ok(()) => {
                self.metrics.written.with_label_values(&["stream"]).inc_by(entries.items.len() as u64);
                self.metrics.sink_up.with_label_values(&["stream"]).set(1);
                entries.succeeded();
            }
            Err(e) => {
                if entries.failures == 0 {
                    tracing::error!(redis = %stream.describe(), "prediction log: XADD failed (retrying): {e}");
                }
                self.metrics.write_errors.with_label_values(&["stream"]).inc();
                self.metrics.sink_up.with_label_values(&["stream"]).set(0);
                entries.failed();
            }
        }
    }
}
