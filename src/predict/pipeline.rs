//! `predict`: entity IDs and request values in, named outputs out. Validate everything
//! the client sent, fetch every group of every row in one store round trip, fill and
//! compute each row's frame, run the batch, name the outputs.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::messages::{GroupReport, PredictRequest, PredictResponse, RowPrediction};
use super::predictor::{Deadline, Predictor, run_model};
use super::shadow::{ShadowInput, ShadowJob};
use crate::Error;
use crate::features::view::{GroupPlan, GroupRead};
use crate::observe::{Observation, Wanted, request_id};
use crate::registry::named_outputs::extract;
use crate::registry::{Routed, Target};

impl Predictor {
    pub async fn predict(
        &self,
        model: &str,
        target: &Target,
        mut request: PredictRequest,
    ) -> Result<PredictResponse, Error> {
        let request_id = match request.request_id.take() {
            Some(id) => {
                request_id::check(&id)?;
                id
            }
            None => request_id::generate(),
        };
        let wanted = self.0.observer.wanted(model);
        let tap = Tap { request_id: &request_id, target, wanted };
        let timeout = request.timeout;
        let mut response = self
            .on_version(
                model,
                target,
                request,
                sticky_entity,
                timeout,
                |routed, deadline, request| async move {
                    self.run_pipeline(&routed, request, deadline, Some(&tap)).await
                },
            )
            .await?;
        response.request_id = request_id;
        Ok(response)
    }

    /// The pipeline on the routed version; a sampled shadow gets the same request (or, when
    /// its view assembles the same vector, the same input) off the response path.
    pub(super) async fn run_pipeline(
        &self,
        routed: &Routed,
        request: PredictRequest,
        deadline: Deadline,
        tap: Option<&Tap<'_>>,
    ) -> Result<PredictResponse, Error> {
        let version = &routed.version;
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

        deadline.check()?;
        let t1 = Instant::now();
        let fetched = self.0.features.fetch(view, &entities).await?;
        let groups = view.groups.len();
        for (r, frame) in frames.iter_mut().enumerate() {
            let row = r * groups..(r + 1) * groups;
            view.fill_groups(frame, &fetched.values[row.clone()], &fetched.entities[row], &mut missing[r])?;
        }
        version.metrics.features.observe(t1.elapsed().as_secs_f64());

        let t2 = Instant::now();
        let mut input = Vec::with_capacity(frames.len() * view.width());
        for frame in &mut frames {
            view.compute(frame);
            view.push_input(frame, &mut input);
        }
        version.metrics.transform.observe((validate + t2.elapsed()).as_secs_f64());

        let t3 = Instant::now();
        let rows = frames.len();
        let shadow = routed.shadow.as_ref().map(|shadow| {
            let input = if shadow.same_input {
                ShadowInput::Vector { input: input.clone(), rows }
            } else {
                ShadowInput::Request(Box::new(request.clone()))
            };
            (shadow, input)
        });
        // Drift only for versions with a training reference to compare with.
        let tap = tap.filter(|t| t.wanted.log || (t.wanted.drift && version.manifest.reference.is_some()));
        let observed_input = tap.map(|_| input.clone());
        let tensors = run_model(version, input, rows, deadline).await?;
        if let Some(figures) = &routed.figures
            && tensors.iter().any(crate::backend::Tensor::has_non_finite)
        {
            figures.record_non_finite(routed.arm);
        }
        version.metrics.inference.observe(t3.elapsed().as_secs_f64());

        version.metrics.rows.inc_by(rows as u64);
        let defaulted: usize = missing.iter().map(Vec::len).sum();
        if defaulted > 0 {
            version.metrics.missing_features.inc_by(defaulted as u64);
        }
        let predictions: Vec<RowPrediction> = frames
            .iter()
            .zip(missing)
            .enumerate()
            .map(|(r, (frame, missing_features))| RowPrediction {
                outputs: version.outputs.iter().map(|o| (o.name.clone(), extract(o, &tensors, r))).collect(),
                missing_features,
                features: request
                    .return_features
                    .then(|| view.input_values(frame).map(|(n, v)| (n.to_string(), v)).collect()),
                groups: request.return_features.then(|| {
                    let reads = &fetched.values[r * groups..(r + 1) * groups];
                    view.groups.iter().zip(reads).map(|(plan, read)| report(plan, read)).collect()
                }),
            })
            .collect();
        if let Some((served, input)) = shadow {
            let primary = predictions.iter().map(|p: &RowPrediction| p.outputs.clone()).collect();
            let job = ShadowJob { shadow: served.clone(), figures: routed.figures.clone(), input, primary };
            self.0.shadows.offer(job, &self.0.metrics);
        }
        if let (Some(tap), Some(input)) = (tap, observed_input) {
            let missing = predictions.iter().map(|p| p.missing_features.clone()).collect();
            let (entities, values) = request.rows.into_iter().map(|r| (r.entities, r.features)).unzip();
            // Drift alone reads the vectors and outputs, not the record's names.
            let log = tap.wanted.log;
            self.0.observer.offer(Observation {
                request_id: if log { tap.request_id.to_string() } else { String::new() },
                time: SystemTime::now(),
                version: Arc::clone(version),
                alias: match tap.target {
                    Target::Alias(alias) if log => Some(alias.clone()),
                    _ => None,
                },
                arm: routed.arm,
                entities,
                request: values,
                input,
                missing,
                tensors,
                latency: deadline.started().elapsed(),
                log,
            });
        }
        Ok(PredictResponse {
            model: version.model.clone(),
            version: version.version,
            request_id: String::new(),
            rows: predictions,
        })
    }
}

/// What the prediction log and drift windows need of a request beyond the pipeline's own
/// pieces (shadow runs have none: they are not observed).
pub(super) struct Tap<'a> {
    request_id: &'a str,
    target: &'a Target,
    wanted: Wanted,
}

/// What a sticky canary hashes: the first row's value of its key (default: the row's
/// first entity).
fn sticky_entity<'r>(request: &'r PredictRequest, key: Option<&str>) -> Option<&'r str> {
    let entities = &request.rows.first()?.entities;
    let (_, value) = match key {
        Some(key) => entities.iter().find(|(name, _)| name == key)?,
        None => entities.first()?,
    };
    Some(value)
}

fn report(plan: &GroupPlan, read: &GroupRead) -> GroupReport {
    let stored = read.stored();
    let values = plan
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), f.dtype, stored.and_then(|s| s.values[i].clone())))
        .collect();
    GroupReport {
        group: plan.name.clone(),
        status: read.status(),
        event_time: stored.and_then(|s| s.event_time),
        values,
    }
}
