//! `predict`: entity IDs and request values in, named outputs out. Validate everything
//! the client sent, fetch every group of every row in one store round trip, fill and
//! compute each row's frame, run the batch, name the outputs.

use std::sync::Arc;
use std::time::Instant;

use super::messages::{PredictRequest, PredictResponse, RowPrediction};
use super::outputs::extract;
use super::predictor::{Predictor, run_model};
use crate::Error;
use crate::metrics::stage;
use crate::registry::{ModelVersion, Target};

impl Predictor {
    pub async fn predict(
        &self,
        model: &str,
        target: &Target,
        request: PredictRequest,
    ) -> Result<PredictResponse, Error> {
        self.on_version(model, target, |version| async move { self.run_pipeline(&version, request).await })
            .await
    }

    async fn run_pipeline(
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
            let row = r * groups..(r + 1) * groups;
            view.fill_groups(frame, &fetched.values[row.clone()], &fetched.entities[row], &mut missing[r])?;
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
        let tensors = run_model(version, input, rows).await?;
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
                outputs: version.outputs.iter().map(|o| (o.name.clone(), extract(o, &tensors, r))).collect(),
                missing_features,
                features: request
                    .return_features
                    .then(|| view.input_values(frame).map(|(n, v)| (n.to_string(), v)).collect()),
            })
            .collect();
        Ok(PredictResponse { model: version.model.clone(), version: version.version, rows: predictions })
    }
}
