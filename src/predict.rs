//! The core of the server, shared by every transport: resolve the version, validate the
//! request against its feature view, fetch features, compute on-demand features, assemble
//! the input batch, run the model and name the outputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::backend::Tensor;
use crate::features::{FeatureService, RequestValue};
use crate::metrics::{Metrics, stage};
use crate::registry::{ModelVersion, OutputValue, Registry, Snapshot, Target};

/// One row to predict: entity keys and request-time values, as the client named them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictRow {
    pub entities: Vec<(String, String)>,
    pub features: Vec<(String, RequestValue)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictRequest {
    pub rows: Vec<PredictRow>,
    /// Batch requests name fields `rows[i].…` in errors; single ones do not.
    pub batch: bool,
    /// Return the assembled model input vector with each prediction.
    pub return_features: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowPrediction {
    pub outputs: Vec<(String, OutputValue)>,
    pub missing_features: Vec<Arc<str>>,
    pub features: Option<Vec<(String, f64)>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PredictResponse {
    pub model: String,
    pub version: u64,
    pub rows: Vec<RowPrediction>,
}

/// A raw input tensor for protocols that send the model's input directly (Open
/// Inference Protocol): no entity lookup, no on-demand features.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug)]
pub struct InferResponse {
    pub version: Arc<ModelVersion>,
    pub outputs: Vec<Tensor>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_rows: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

struct Shared {
    registry: Arc<Registry>,
    features: FeatureService,
    metrics: Metrics,
    limits: Limits,
}

/// Cheap-to-clone handle on everything a request needs.
#[derive(Clone)]
pub struct Predictor(Arc<Shared>);

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

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub fn registry_handle(&self) -> Arc<Registry> {
        Arc::clone(&self.0.registry)
    }

    pub fn features(&self) -> &FeatureService {
        &self.0.features
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    /// Ready when every served model has a loaded production version and the store
    /// answered its last ping.
    pub fn is_ready(&self) -> bool {
        self.0.registry.snapshot().is_ready() && self.0.features.is_up()
    }

    pub async fn predict(
        &self,
        model: &str,
        target: &Target,
        request: PredictRequest,
    ) -> Result<PredictResponse, Error> {
        let start = Instant::now();
        let snapshot: Arc<Snapshot> = self.0.registry.snapshot();
        let version = match snapshot.resolve(model, target) {
            Ok(v) => v,
            Err(e) => {
                self.0.metrics.requests.with_label_values(&[model, "", "", e.code()]).inc();
                return Err(e);
            }
        };
        let timeout = self.0.limits.request_timeout;
        let result = match tokio::time::timeout(timeout, self.run(&version, request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        let backend = version.backend.kind().as_str();
        let labels = [version.model.as_str(), version.version_label.as_str()];
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.0.metrics.requests.with_label_values(&[labels[0], labels[1], backend, outcome]).inc();
        self.observe(&version, stage::TOTAL, start.elapsed());
        result
    }

    /// Runs the model on a client-supplied input tensor `[batch, width]`.
    pub async fn infer(
        &self,
        model: &str,
        target: &Target,
        input: TensorInput,
    ) -> Result<InferResponse, Error> {
        let start = Instant::now();
        let version = match self.0.registry.snapshot().resolve(model, target) {
            Ok(v) => v,
            Err(e) => {
                self.0.metrics.requests.with_label_values(&[model, "", "", e.code()]).inc();
                return Err(e);
            }
        };
        let timeout = self.0.limits.request_timeout;
        let run = async {
            let width = version.view.width();
            let expected = &version.manifest.model.input.name;
            if input.name != *expected {
                return Err(Error::invalid(
                    "inputs[0].name",
                    format!("expected `{expected}`, got `{}`", input.name),
                ));
            }
            let rows = match input.shape.as_slice() {
                [rows, w] if *w == width => *rows,
                other => {
                    let message = format!("expected [batch, {width}], got {other:?}");
                    return Err(Error::invalid("inputs[0].shape", message));
                }
            };
            if rows == 0 {
                return Err(Error::invalid("inputs[0].shape", "the batch must hold at least one row"));
            }
            if rows > self.0.limits.max_batch_rows {
                return Err(Error::TooManyRows { got: rows, max: self.0.limits.max_batch_rows });
            }
            if input.data.len() != rows * width {
                let message = format!(
                    "shape {:?} needs {} values, got {}",
                    input.shape,
                    rows * width,
                    input.data.len()
                );
                return Err(Error::invalid("inputs[0].data", message));
            }
            let t = Instant::now();
            let outputs = run_backend(&version, input.data, rows).await?;
            self.observe(&version, stage::INFERENCE, t.elapsed());
            Ok(outputs)
        };
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let backend = version.backend.kind().as_str();
        self.0.metrics.requests.with_label_values(&[model, &version.version_label, backend, outcome]).inc();
        self.observe(&version, stage::TOTAL, start.elapsed());
        result.map(|outputs| InferResponse { version, outputs })
    }

    fn observe(&self, version: &ModelVersion, stage: &str, elapsed: Duration) {
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

    async fn run(
        &self,
        version: &Arc<ModelVersion>,
        request: PredictRequest,
    ) -> Result<PredictResponse, Error> {
        let limits = self.0.limits;
        if request.rows.len() > limits.max_batch_rows {
            return Err(Error::TooManyRows { got: request.rows.len(), max: limits.max_batch_rows });
        }
        if request.rows.is_empty() {
            return Err(Error::invalid("rows", "must hold at least one row"));
        }
        let view = &version.view;

        // Validate everything the client sent before touching the network.
        let t0 = Instant::now();
        let mut entities = Vec::with_capacity(request.rows.len());
        let mut frames = Vec::with_capacity(request.rows.len());
        let mut missing: Vec<Vec<Arc<str>>> = Vec::with_capacity(request.rows.len());
        for (i, row) in request.rows.iter().enumerate() {
            let path = if request.batch { format!("rows[{i}].") } else { String::new() };
            entities.push(view.resolve_entities(&row.entities, &path)?);
            let mut frame = view.new_frame();
            let mut row_missing = Vec::new();
            view.fill_request(&mut frame, &row.features, &path, &mut row_missing)?;
            frames.push(frame);
            missing.push(row_missing);
        }
        let validate = t0.elapsed();

        let t1 = Instant::now();
        let fetched = self.0.features.fetch(view, &entities).await?;
        let groups = view.groups.len();
        for (r, frame) in frames.iter_mut().enumerate() {
            for g in 0..groups {
                let i = r * groups + g;
                view.fill_group(frame, g, &fetched.values[i], &fetched.entities[i], &mut missing[r])?;
            }
        }
        self.observe(version, stage::FEATURES, t1.elapsed());

        let t2 = Instant::now();
        let mut input = Vec::with_capacity(frames.len() * view.width());
        for frame in &mut frames {
            view.compute(frame);
            view.push_input(frame, &mut input);
        }
        self.observe(version, stage::TRANSFORM, validate + t2.elapsed());

        let t3 = Instant::now();
        let rows = frames.len();
        let tensors = run_backend(version, input, rows).await?;
        self.observe(version, stage::INFERENCE, t3.elapsed());

        let labels = [version.model.as_str(), version.version_label.as_str()];
        self.0.metrics.rows.with_label_values(&labels).inc_by(rows as u64);
        let defaulted: usize = missing.iter().map(Vec::len).sum();
        if defaulted > 0 {
            self.0.metrics.missing_features.with_label_values(&labels).inc_by(defaulted as u64);
        }
        let predictions = frames
            .iter()
            .zip(missing)
            .enumerate()
            .map(|(r, (frame, missing_features))| RowPrediction {
                outputs: version.outputs.iter().map(|o| (o.name.clone(), o.extract(&tensors, r))).collect(),
                missing_features,
                features: request
                    .return_features
                    .then(|| view.input_values(frame).map(|(n, v)| (n.to_string(), v)).collect()),
            })
            .collect();
        Ok(PredictResponse { model: version.model.clone(), version: version.version, rows: predictions })
    }
}

/// Runs the backend inline for fast models, on the blocking pool for slow ones.
async fn run_backend(
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
            .unwrap_or_else(|e| Err(crate::backend::BackendError::Run(format!("inference task: {e}"))))
    };
    tensors.map_err(|e| {
        tracing::error!(model = %version.model, version = version.version, "{e}");
        Error::Inference { model: version.model.clone(), version: version.version }
    })
}
