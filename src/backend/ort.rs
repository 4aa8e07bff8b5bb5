//! ONNX Runtime backend through `ort`, with the runtime loaded at run time
//! (`load-dynamic`): nothing is downloaded at build time, a build without the library
//! works, and a version that asks for ort on a host without it is refused with the path
//! that was tried, without touching the others.
//!
//! `Session::run` takes `&mut self`, so a version holds a small pool of sessions (one per
//! core by default) and a request takes whichever is free.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{Backend, BackendError, BackendKind, Tensor, TensorData};

/// ONNX Runtime session settings, tuned for low latency on a small CPU box.
#[derive(Debug, Clone)]
pub struct OrtOptions {
    /// Path to libonnxruntime; `None`: the `ORT_DYLIB_PATH` environment variable.
    pub library: Option<PathBuf>,
    /// Threads inside one operator. 1 is fastest for single rows on few cores.
    pub intra_op_threads: usize,
    /// Threads across independent operators.
    pub inter_op_threads: usize,
    pub optimization: Optimization,
    /// ONNX Runtime's CPU memory arena.
    pub memory_arena: bool,
    /// Sessions per model version (`Session::run` takes one session exclusively).
    pub sessions: usize,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            library: None,
            intra_op_threads: 1,
            inter_op_threads: 1,
            optimization: Optimization::All,
            memory_arena: true,
            sessions: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    All,
}

/// The process's one ONNX Runtime environment and the library it came from. A failed load
/// is not remembered, so fixing the path and reloading a version works without a restart.
static ENVIRONMENT: Mutex<Option<(PathBuf, Arc<Environment>)>> = Mutex::new(None);

/// Where to find libonnxruntime: `ort.library`, else `ORT_DYLIB_PATH`.
pub fn library_path(config: &OrtOptions) -> Result<PathBuf, BackendError> {
    config.library.clone().or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from)).ok_or_else(
        || {
            BackendError::Load(
                "the ort backend needs the ONNX Runtime library: set ort.library (FTI__ORT__LIBRARY) or \
             ORT_DYLIB_PATH to a libonnxruntime.so (pip install onnxruntime==1.32.0 ships \
             onnxruntime/capi/libonnxruntime.so.1.32.0)"
                    .into(),
            )
        },
    )
}

fn environment(library: &Path) -> Result<Arc<Environment>, BackendError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((loaded, env)) = slot.as_ref() {
        if loaded == library {
            return Ok(Arc::clone(env));
        }
        return Err(BackendError::Load(format!(
            "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
            loaded.display(),
            library.display()
        )));
    }
    if !library.is_file() {
        return Err(BackendError::Load(format!("ONNX Runtime library not found at {}", library.display())));
    }
    let fail = |e: &dyn std::fmt::Display| {
        BackendError::Load(format!("cannot load ONNX Runtime from {}: {e}", library.display()))
    };
    let env = ort::init_from(library)
        .map_err(|e| fail(&e))?
        .with_name("fti-serve")
        .build()
        .map_err(|e| fail(&e))?;
    let env = Arc::new(env);
    *slot = Some((library.to_path_buf(), Arc::clone(&env)));
    Ok(env)
}

pub struct OrtBackend {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    input: String,
    width: usize,
    outputs: Vec<String>,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("sessions", &self.sessions.len())
            .field("width", &self.width)
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl OrtBackend {
    /// Loads an ONNX graph whose input `input_name` takes `[batch, width]` float32.
    pub fn load(
        onnx: &[u8],
        input_name: &str,
        width: usize,
        config: &OrtOptions,
    ) -> Result<OrtBackend, BackendError> {
        let env = environment(&library_path(config)?)?;
        let load = |e: &dyn std::fmt::Display| BackendError::Load(e.to_string());
        let level = match config.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        };
        let mut sessions = Vec::with_capacity(config.sessions.max(1));
        for _ in 0..config.sessions.max(1) {
            // Builder errors hold the builder, which is not Send: render them at once.
            let session = Session::builder(&env)
                .map_err(|e| load(&e))?
                .with_intra_threads(config.intra_op_threads)
                .map_err(|e| load(&e))?
                .with_inter_threads(config.inter_op_threads)
                .map_err(|e| load(&e))?
                .with_optimization_level(level)
                .map_err(|e| load(&e))?
                .with_execution_providers([ort::ep::CPU::default()
                    .with_arena_allocator(config.memory_arena)
                    .build()])
                .map_err(|e| load(&e))?
                .commit_from_memory(onnx)
                .map_err(|e| load(&e))?;
            sessions.push(Mutex::new(session));
        }
        let first = sessions[0].lock().unwrap_or_else(PoisonError::into_inner);
        let inputs: Vec<&str> = first.inputs().iter().map(|i| i.name()).collect();
        super::check_single_input(&inputs, input_name)?;
        let mut outputs = Vec::new();
        for o in first.outputs() {
            if !matches!(o.dtype(), ValueType::Tensor { .. }) {
                return Err(BackendError::Load(format!(
                    "output `{}` is not a tensor ({}); export classifiers with ZipMap disabled",
                    o.name(),
                    o.dtype()
                )));
            }
            outputs.push(o.name().to_string());
        }
        drop(first);
        Ok(OrtBackend { sessions, next: AtomicUsize::new(0), input: input_name.to_string(), width, outputs })
    }

    /// A free session if there is one, else wait for the next in turn.
    fn session(&self) -> MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        for i in 0..n {
            if let Ok(guard) = self.sessions[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.sessions[start % n].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn output_names(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, input: &[f32], rows: usize) -> Result<Vec<Tensor>, BackendError> {
        let run = |e: &dyn std::fmt::Display| BackendError::Run(e.to_string());
        if input.len() != rows * self.width {
            return Err(BackendError::Run(format!(
                "input holds {} values, expected {rows} x {}",
                input.len(),
                self.width
            )));
        }
        let tensor = TensorRef::from_array_view(([rows, self.width], input)).map_err(|e| run(&e))?;
        let mut session = self.session();
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(|e| run(&e))?;
        self.outputs
            .iter()
            .map(|name| {
                let value =
                    outputs.get(name).ok_or_else(|| BackendError::Run(format!("no output `{name}`")))?;
                let ValueType::Tensor { ty, .. } = value.dtype() else {
                    return Err(BackendError::Run(format!("output `{name}` is not a tensor")));
                };
                let shape =
                    |s: &ort::value::Shape| s.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
                let tensor = match ty {
                    TensorElementType::Float32 => {
                        let (s, data) = value.try_extract_tensor::<f32>().map_err(|e| run(&e))?;
                        Tensor { shape: shape(s), data: TensorData::F32(data.to_vec()) }
                    }
                    TensorElementType::Float64 => {
                        let (s, data) = value.try_extract_tensor::<f64>().map_err(|e| run(&e))?;
                        Tensor { shape: shape(s), data: TensorData::F64(data.to_vec()) }
                    }
                    TensorElementType::Int64 => {
                        let (s, data) = value.try_extract_tensor::<i64>().map_err(|e| run(&e))?;
                        Tensor { shape: shape(s), data: TensorData::I64(data.to_vec()) }
                    }
                    TensorElementType::Int32 => {
                        let (s, data) = value.try_extract_tensor::<i32>().map_err(|e| run(&e))?;
                        Tensor {
                            shape: shape(s),
                            data: TensorData::I64(data.iter().map(|&v| i64::from(v)).collect()),
                        }
                    }
                    other => {
                        return Err(BackendError::Run(format!(
                            "output `{name}` has unsupported type {other:?}"
                        )));
                    }
                };
                Ok(tensor)
            })
            .collect()
    }
}
