//! The [`Predictor`] handle and what every request shares: resolving the version, the
//! deadline, the outcome metrics and running the model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::backend::{BackendError, Tensor};
use crate::features::FeatureService;
use crate::metrics::{Metrics, UNKNOWN_MODEL};
use crate::registry::{ModelVersion, Registry, Target};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_rows: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

pub(super) struct Shared {
    pub(super) registry: Arc<Registry>,
    pub(super) features: FeatureService,
    pub(super) metrics: Metrics,
    pub(super) limits: Limits,
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
    ) -> Predictor {
        Predictor(Arc::new(Shared { registry, features, metrics, limits }))
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    /// The Prometheus text exposition of every metric.
    pub fn render_metrics(&self) -> String {
        self.0.metrics.render()
    }

    /// Pings the online store; readiness and `fti_store_up` follow the outcome.
    pub async fn check_store_health(&self) -> bool {
        self.0.features.check_health().await
    }

    /// Resolves `target` on one registry snapshot, runs `work` on that version under the
    /// request deadline, and counts the outcome and total time. Every request kind goes
    /// through here.
    pub(super) async fn on_version<T, F, Fut>(
        &self,
        model: &str,
        target: &Target,
        work: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Arc<ModelVersion>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let start = Instant::now();
        let version = match self.0.registry.snapshot().resolve(model, target) {
            Ok(v) => v,
            Err(e) => {
                // Only a served model's name may become a label value: a client could
                // otherwise grow /metrics without bound with made-up names.
                let label = if matches!(e, Error::ModelNotFound { .. }) { UNKNOWN_MODEL } else { model };
                self.0.metrics.requests.with_label_values(&[label, "", "", e.code()]).inc();
                return Err(e);
            }
        };
        let timeout = self.0.limits.request_timeout;
        let result = match tokio::time::timeout(timeout, work(Arc::clone(&version))).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let labels =
            [version.model.as_str(), version.version_label.as_str(), version.backend.kind().as_str()];
        self.0.metrics.requests.with_label_values(&[labels[0], labels[1], labels[2], outcome]).inc();
        self.observe(&version, crate::metrics::stage::TOTAL, start.elapsed());
        result
    }

    pub(super) fn observe(&self, version: &ModelVersion, stage: &str, elapsed: Duration) {
        self.0
            .metrics
            .stage_seconds
            .with_label_values(&[
                version.model.as_str(),
                version.version_label.as_str(),
                version.backend.kind().as_str(),
                stage,
            ])
            .observe(elapsed.as_secs_f64());
    }
}

/// Runs the backend inline for fast models, on the blocking pool for slow ones.
pub(super) async fn run_model(
    version: &Arc<ModelVersion>,
    input: Vec<f32>,
    rows: usize,
) -> Result<Vec<Tensor>, Error> {
    let tensors = if version.inline {
        version.backend.run(&input, rows)
    } else {
        let v = Arc::clone(version);
        tokio::task::spawn_blocking(move || v.backend.run(&input, rows))
            .await
            .unwrap_or_else(|e| Err(BackendError::Run(format!("inference task: {e}"))))
    };
    tensors.map_err(|e| {
        tracing::error!(model = %version.model, version = version.version, "{e}");
        Error::Inference { model: version.model.clone(), version: version.version }
    })
}
