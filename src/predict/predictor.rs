//! The [`Predictor`] handle and what every request shares: resolving the version, the
//! deadline, the outcome metrics and running the model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::admission::{Admission, Permit};
use super::shadow::ShadowQueue;
use crate::Error;
use crate::backend::{BackendError, Tensor};
use crate::features::FeatureService;
use crate::metrics::{Metrics, UNKNOWN_MODEL};
use crate::observe::Observer;
use crate::registry::{ModelVersion, Registry, Routed, Target};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_rows: usize,
    /// Transports: the largest request body or message, and how long a body may take to
    /// arrive.
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    /// Requests in flight beyond this are refused at once (admission control).
    pub max_in_flight: usize,
    /// Shadow runs waiting beyond this are dropped (and counted).
    pub shadow_queue: usize,
}

pub(super) struct Shared {
    pub(super) registry: Arc<Registry>,
    pub(super) features: FeatureService,
    pub(super) metrics: Metrics,
    pub(super) limits: Limits,
    admission: Arc<Admission>,
    pub(super) shadows: ShadowQueue,
    /// The prediction log and drift windows.
    pub(super) observer: Observer,
    /// Set at SIGTERM: readiness answers 503 while in-flight requests finish.
    draining: AtomicBool,
}

/// When a request must be answered by. Checked before each stage that costs (feature
/// fetch, model run), not only where something awaits: an embedded store and an inline
/// model never yield, so a timer alone would let an over-deadline request run to the end.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub(super) fn after(budget: Duration) -> Deadline {
        Deadline { at: Instant::now() + budget, budget }
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        if Instant::now() >= self.at { Err(Error::Timeout(self.budget)) } else { Ok(()) }
    }

    /// When the request was routed (its budget began).
    pub(super) fn started(&self) -> Instant {
        self.at - self.budget
    }
}

/// Cheap-to-clone handle on everything a request needs.
#[derive(Clone)]
pub struct Predictor(pub(super) Arc<Shared>);

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor").field("features", &self.0.features).finish_non_exhaustive()
    }
}

impl Predictor {
    pub fn new(
        registry: Arc<Registry>,
        features: FeatureService,
        metrics: Metrics,
        limits: Limits,
        observer: Observer,
    ) -> Predictor {
        let admission = Admission::new(limits.max_in_flight);
        Predictor(Arc::new(Shared {
            registry,
            features,
            metrics,
            limits,
            admission,
            shadows: ShadowQueue::new(limits.shadow_queue),
            observer,
            draining: AtomicBool::new(false),
        }))
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    /// The Prometheus text exposition of every metric.
    pub fn render_metrics(&self) -> String {
        self.0.metrics.in_flight.set(self.0.admission.in_flight() as i64);
        self.0.metrics.render()
    }

    /// Pings the online store; readiness and `fti_store_up` follow the outcome.
    pub async fn check_store_health(&self) -> bool {
        self.0.features.check_health().await
    }

    /// Keeps the store's health current (and drives reconnection after an outage, off
    /// the requests' clock). Runs until the task is dropped.
    pub async fn watch_store(&self, interval: Duration) {
        self.0.features.watch_health(interval).await;
    }

    /// Writes what the prediction log still holds and stops its thread (after the
    /// transports have drained); waits at most `timeout`.
    pub fn finish_observing(&self, timeout: Duration) {
        self.0.observer.finish(timeout);
    }

    /// Readiness turns 503 from now on (a shutdown has begun); requests are still served.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// Counts connections a listener closed for being over its cap (`transport`: `http`
    /// or `grpc`).
    pub fn connection_refusals(&self, transport: &'static str) -> crate::connections::Refused {
        let counter = self.0.metrics.connections_refused.with_label_values(&[transport]);
        Box::new(move || counter.inc())
    }

    /// Admission control: a permit per request in flight, taken before the request costs
    /// anything and refused at once when none is left, so overload is answered fast
    /// instead of queueing every client behind it. Hold it until the answer is written.
    pub fn try_admit(&self) -> Result<Permit, Error> {
        self.0.admission.try_admit().ok_or_else(|| {
            self.0.metrics.shed.inc();
            Error::Overloaded { limit: self.0.admission.limit() }
        })
    }

    /// Resolves `target` on one registry snapshot (an alias's canary taking its share;
    /// `entity` gives the request's value of a sticky canary's key), runs `work` on that
    /// version under the request deadline (the shorter of the server's and the client's),
    /// and counts the outcome and total time. Every request kind goes through here.
    pub(super) async fn on_version<R, T, F, Fut>(
        &self,
        model: &str,
        target: &Target,
        request: R,
        entity: for<'r> fn(&'r R, Option<&str>) -> Option<&'r str>,
        client_timeout: Option<Duration>,
        work: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Routed, Deadline, R) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let start = Instant::now();
        let server = self.0.limits.request_timeout;
        let budget = client_timeout.map_or(server, |t| t.min(server));
        let deadline = Deadline { at: start + budget, budget };
        let routed = match self.0.registry.snapshot().route(model, target, |key| entity(&request, key)) {
            Ok(routed) => routed,
            Err(e) => {
                // Only a served model's name may become a label value: a client could
                // otherwise grow /metrics without bound with made-up names.
                let label = if matches!(e, Error::ModelNotFound { .. }) { UNKNOWN_MODEL } else { model };
                self.0.metrics.requests.with_label_values(&[label, "", "", e.code()]).inc();
                return Err(e);
            }
        };
        let version = Arc::clone(&routed.version);
        let figures = routed.figures.clone();
        let arm = routed.arm;
        let result = match tokio::time::timeout_at(deadline.at.into(), work(routed, deadline, request)).await
        {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(budget)),
        };
        version.metrics.count(match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        });
        let elapsed = start.elapsed();
        version.metrics.total.observe(elapsed.as_secs_f64());
        if let Some(figures) = figures {
            let failed = result.as_ref().err().is_some_and(Error::is_version_fault);
            figures.record(arm, !failed, elapsed);
        }
        result
    }
}

/// Set when the request's future is dropped (its client went away, or its deadline fired
/// while it waited): work queued for it on the blocking pool is then not started.
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the backend inline for fast models, on the blocking pool for slow ones; never
/// starts a run past the request's deadline or for a request nobody waits for any more.
pub(super) async fn run_model(
    version: &Arc<ModelVersion>,
    input: Vec<f32>,
    rows: usize,
    deadline: Deadline,
) -> Result<Vec<Tensor>, Error> {
    deadline.check()?;
    let tensors = if version.inline {
        version.backend.run(&input, rows)
    } else {
        let v = Arc::clone(version);
        let abandoned = Arc::new(AtomicBool::new(false));
        let guard = Abandoned(Arc::clone(&abandoned));
        let ran = tokio::task::spawn_blocking(move || {
            if abandoned.load(Ordering::Relaxed) {
                return None;
            }
            if deadline.check().is_err() {
                return None;
            }
            Some(v.backend.run(&input, rows))
        })
        .await;
        drop(guard);
        match ran {
            Ok(Some(tensors)) => tensors,
            Ok(None) => return Err(Error::Timeout(deadline.budget)),
            Err(e) => Err(BackendError::Run(format!("inference task: {e}"))),
        }
    };
    tensors.map_err(|e| {
        tracing::error!(model = %version.model, version = version.version, "{e}");
        Error::Inference { model: version.model.clone(), version: version.version }
    })
}
