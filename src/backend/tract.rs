//! tract-onnx backend: the graph is typed and optimised at load twice: with a symbolic
//! batch dimension, so one plan serves every batch size, and for one row, the most common
//! request, whose plan tract can specialise (fixed shapes, no symbolic arithmetic). tract's ONNX register is extended with
//! our ai.onnx.ml operators ([`super::onnx_ml`]); a graph with an operator neither has is
//! refused at load, naming it.

use std::sync::{Arc, Mutex, PoisonError};

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTensor, TValue, TVec,
    Tensor as TractTensor, ToDim, TractResult, TypedRunnableModel, TypedSimpleState, tvec,
};

use super::{Backend, BackendError, BackendKind, Tensor, TensorData};

pub struct TractBackend {
    plan: Plan,
    /// The same graph for exactly one row.
    single: Plan,
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
        let single = Plan::new(plan_for(model.clone(), Some(1))?);
        let plan = Plan::new(plan_for(model, None)?);
        Ok(TractBackend { plan, single, width, outputs })
    }
}

/// A plan and the run states it has finished with. A run state holds a value slot per node
/// and each operator's state; tract's `SimplePlan::run` builds (and frees) a new one per
/// run: reusing them took a one-row run of the example's tree model from 2.65 to 2.49 µs
/// (`cargo bench --bench layers -- backend`). tract resets a state's values at the end of every successful run, so it
/// is reused; one whose run failed is dropped. A graph with an operator that keeps state
/// between runs would carry it from one request to the next: its plan never reuses.
struct Plan {
    plan: Arc<TypedRunnableModel>,
    /// `None`: a state per run.
    idle: Option<Mutex<Vec<TypedSimpleState>>>,
}

/// Run states kept per plan: more than the threads that run models at once are dropped.
const IDLE_STATES: usize = 64;

impl Plan {
    fn new(plan: Arc<TypedRunnableModel>) -> Plan {
        let stateless = plan.spawn().is_ok_and(|state| state.op_states.iter().all(Option::is_none));
        Plan { plan, idle: stateless.then(|| Mutex::new(Vec::new())) }
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(idle) = &self.idle else { return self.plan.run(inputs) };
        let lock = || idle.lock().unwrap_or_else(PoisonError::into_inner);
        let reused = lock().pop();
        let mut state = match reused {
            Some(state) => state,
            None => self.plan.spawn()?,
        };
        let outputs = state.run(inputs)?;
        let mut idle = lock();
        if idle.len() < IDLE_STATES {
            idle.push(state);
        }
        Ok(outputs)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reused run states answer as fresh ones, whatever batch sizes came before.
    #[test]
    fn reused_states_answer_like_fresh_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(root.join("models/fraud/2/model.onnx")).expect("model");
        let width = 24;
        let backend = TractBackend::load(&bytes, "input", width).expect("load");
        assert!(backend.single.idle.is_some() && backend.plan.idle.is_some(), "the example's plans reuse");
        let input = |rows: usize, seed: usize| -> Vec<f32> {
            (0..rows * width).map(|i| ((i * 7 + seed * 13) % 29) as f32 * 0.37 - 3.0).collect()
        };
        let fresh = |rows: usize, seed: usize| {
            let plan = if rows == 1 { &backend.single.plan } else { &backend.plan.plan };
            let tensor = TractTensor::from_shape(&[rows, width], &input(rows, seed)).expect("tensor");
            let outputs = plan.run(tvec![tensor.into()]).expect("run");
            outputs.into_iter().map(|v| convert(&v.into_tensor()).expect("convert")).collect::<Vec<_>>()
        };
        for (round, rows) in [1, 5, 1, 64, 3, 1, 1, 64, 2].into_iter().enumerate() {
            let got = backend.run(&input(rows, round), rows).expect("run");
            assert_eq!(got, fresh(rows, round), "round {round}, {rows} rows");
        }
        assert!(!backend.single.idle.as_ref().expect("reuse").lock().expect("lock").is_empty());
    }
}
