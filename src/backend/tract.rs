//! tract-onnx backend: the graph is typed and optimised at load twice: with a symbolic
//! batch dimension, so one plan serves every batch size, and for one row, the most common
//! request, whose plan tract can specialise (fixed shapes, no symbolic arithmetic). tract's ONNX register is extended with
//! our ai.onnx.ml operators ([`super::onnx_ml`]); a graph with an operator neither has is
//! refused at load, naming it.

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTensor, Tensor as TractTensor,
    ToDim, TypedRunnableModel, tvec,
};

use super::{Backend, BackendError, BackendKind, Tensor, TensorData};

pub struct TractBackend {
    plan: std::sync::Arc<TypedRunnableModel>,
    /// The same graph for exactly one row.
    single: std::sync::Arc<TypedRunnableModel>,
    width: usize,
    outputs: Vec<String>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend").field("width", &self.width).field("outputs", &self.outputs).finish()
    }
}

impl TractBackend {
    /// Loads an ONNX graph whose input `input_name` takes `[batch, width]` float32.
    pub fn load(onnx: &[u8], input_name: &str, width: usize) -> Result<TractBackend, BackendError> {
        let load = |e: tract_onnx::prelude::TractError| BackendError::Load(format!("{e:#}"));
        let framework = super::onnx_ml::onnx();
        let proto = framework.proto_model_for_read(&mut &onnx[..]).map_err(load)?;
        let unsupported = super::onnx_ml::unsupported_ops(&framework, &proto);
        if !unsupported.is_empty() {
            let (noun, verb) = if unsupported.len() == 1 { ("operator", "is") } else { ("operators", "are") };
            return Err(BackendError::Load(format!(
                "{noun} {} {verb} not supported by the tract backend",
                unsupported.join(", ")
            )));
        }
        let model = framework.model_for_proto_model(&proto).map_err(load)?;

        let inputs = model.input_outlets().map_err(load)?.to_vec();
        let names: Vec<&str> = inputs.iter().map(|o| model.node(o.node).name.as_str()).collect();
        super::check_single_input(&names, input_name)?;

        let outputs: Vec<String> = model
            .output_outlets()
            .map_err(load)?
            .iter()
            .map(|&o| model.outlet_label(o).unwrap_or(&model.node(o.node).name).to_string())
            .collect();
        let plan_for = |mut model: tract_onnx::prelude::InferenceModel, batch: Option<usize>| {
            let rows = match batch {
                Some(rows) => rows.to_dim(),
                None => model.sym("batch").to_dim(),
            };
            let fact = InferenceFact::dt_shape(DatumType::F32, tvec![rows, width.to_dim()]);
            model
                .set_input_fact(0, fact)
                .and_then(|()| model.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(|e| BackendError::Load(explain_load_error(&format!("{e:#}"), width)))
        };
        let single = plan_for(model.clone(), Some(1))?;
        let plan = plan_for(model, None)?;
        Ok(TractBackend { plan, single, width, outputs })
    }
}

/// tract's messages are accurate but terse; name the usual cause when we recognise it.
fn explain_load_error(message: &str, width: usize) -> String {
    if message.contains("Clashing") || message.contains("Impossible to unify") {
        format!("{message} (does the graph's input take {width} columns, as the feature view builds?)")
    } else if message.contains("Unimplemented") || message.contains("unsupported") {
        format!("{message} (an operator this backend does not implement)")
    } else {
        message.to_string()
    }
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn output_names(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, input: &[f32], rows: usize) -> Result<Vec<Tensor>, BackendError> {
        let run = |e: tract_onnx::prelude::TractError| BackendError::Run(format!("{e:#}"));
        if input.len() != rows * self.width {
            return Err(BackendError::Run(format!(
                "input holds {} values, expected {rows} x {}",
                input.len(),
                self.width
            )));
        }
        let tensor = TractTensor::from_shape(&[rows, self.width], input).map_err(run)?;
        let plan = if rows == 1 { &self.single } else { &self.plan };
        let outputs = plan.run(tvec![tensor.into()]);
        clear_upper_vector_state();
        outputs.map_err(run)?.into_iter().map(|value| convert(&value.into_tensor())).collect()
    }
}

/// tract's linear-algebra kernels use AVX and return with the upper halves of the vector
/// registers dirty. Until a `VZEROUPPER`, every SSE instruction the thread runs pays a
/// transition penalty: measured with `cargo bench --bench layers`, the on-demand
/// transform took 1.8 µs instead of 0.25 µs after one tract call on the same thread, and
/// JSON, hashing and the cache slowed alike. Clearing the state after each run restores
/// full speed for the rest of the request.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn clear_upper_vector_state() {
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above). VZEROUPPER only zeroes the
        // upper halves of the YMM/ZMM registers; this function is compiled without AVX, so
        // no value of ours lives there across the call.
        unsafe { std::arch::x86_64::_mm256_zeroupper() }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn clear_upper_vector_state() {}

fn convert(t: &TractTensor) -> Result<Tensor, BackendError> {
    let run = |e: tract_onnx::prelude::TractError| BackendError::Run(format!("{e:#}"));
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        DatumType::F32 => {
            TensorData::F32(t.to_plain_array_view::<f32>().map_err(run)?.iter().copied().collect())
        }
        DatumType::F64 => {
            TensorData::F64(t.to_plain_array_view::<f64>().map_err(run)?.iter().copied().collect())
        }
        // Integer outputs (class labels) arrive as i64, or as TDim from some graphs.
        _ => {
            let cast = t.cast_to::<i64>().map_err(run)?;
            TensorData::I64(cast.to_plain_array_view::<i64>().map_err(run)?.iter().copied().collect())
        }
    };
    Ok(Tensor { shape, data })
}
