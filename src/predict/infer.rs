//! `infer`: the model's input tensor straight from the client (Open Inference Protocol),
//! checked against the version's input, run as one batch.

use std::time::Instant;

use super::messages::{InferResponse, NamedTensor, TensorInput};
use super::predictor::{Predictor, run_model};
use crate::Error;
use crate::registry::Target;

impl Predictor {
    /// Runs the model on a client-supplied input tensor `[batch, width]`.
    pub async fn infer(
        &self,
        model: &str,
        target: &Target,
        input: TensorInput,
    ) -> Result<InferResponse, Error> {
        let timeout = input.timeout;
        // A raw tensor names no entity: a sticky canary assigns it at random.
        let no_entity: for<'r> fn(&'r TensorInput, Option<&str>) -> Option<&'r str> = |_, _| None;
        self.on_version(model, target, input, no_entity, timeout, |routed, deadline, input| async move {
            let version = routed.version;
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
            let max = self.0.limits.max_batch_rows;
            if rows > max {
                return Err(Error::TooManyRows { got: rows, max });
            }
            // rows <= max_batch_rows, so this cannot overflow for any sane limit; checked anyway.
            let needed = rows.checked_mul(width);
            if needed != Some(input.data.len()) {
                let message = format!(
                    "shape {:?} needs {} values, got {}",
                    input.shape,
                    needed.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                    input.data.len()
                );
                return Err(Error::invalid("inputs[0].data", message));
            }
            let t = Instant::now();
            let tensors = run_model(&version, input.data, rows, deadline).await?;
            version.metrics.inference.observe(t.elapsed().as_secs_f64());
            let outputs = version
                .backend
                .output_names()
                .iter()
                .zip(tensors)
                .map(|(name, tensor)| NamedTensor { name: name.clone(), tensor })
                .collect();
            Ok(InferResponse { model: version.model.clone(), version: version.version, outputs })
        })
        .await
    }
}
