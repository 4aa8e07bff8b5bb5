//! One tract operator for the ai.onnx.ml models that run on our engines (tree ensembles,
//! SVMs): `[rows, features]` (or one row as `[features]`) in; a classifier answers a label
//! per row (i64) and `rows x n_scores` f32 scores, a regressor the scores alone.

use std::fmt::Debug;
use std::sync::Arc;

use tract_onnx::tract_hir::internal::*;

/// A compiled model behind [`ScorerOp`].
pub trait Scorer: Debug + Send + Sync + 'static {
    /// The ONNX operator it implements.
    fn op_name(&self) -> &'static str;
    fn is_classifier(&self) -> bool;
    fn n_scores(&self) -> usize;
    /// The number of input columns when the model reads exactly that many (checked when
    /// the graph is typed, so a wrong width fails at load).
    fn width(&self) -> Option<usize> {
        None
    }
    /// One line for tract's model dumps.
    fn info(&self) -> String;
    /// `input` is `rows x width`, row-major. Refuses a width the model cannot read.
    fn score(&self, input: &[f32], rows: usize, width: usize) -> Result<Scored, String>;
}

pub struct Scored {
    /// Classifiers only.
    pub labels: Option<Vec<i64>>,
    pub scores: Vec<f32>,
}

/// The operator, in both of tract's worlds: as an inference-time expansion (shape rules)
/// and as the typed op it wires, which evaluates the model.
#[derive(Debug, Clone)]
pub struct ScorerOp(Arc<dyn Scorer>);

impl ScorerOp {
    pub fn new(scorer: impl Scorer) -> ScorerOp {
        ScorerOp(Arc::new(scorer))
    }

    fn n_outputs(&self) -> usize {
        if self.0.is_classifier() { 2 } else { 1 }
    }
}

/// Two ops are the same when they share the compiled model (it holds floats).
impl PartialEq for ScorerOp {
    fn eq(&self, other: &ScorerOp) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ScorerOp {}

impl Expansion for ScorerOp {
    fn name(&self) -> StaticName {
        self.0.op_name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.n_outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.n_outputs())?;
        let scores = &outputs[outputs.len() - 1];
        s.equals(&scores.datum_type, DatumType::F32)?;
        s.equals(&scores.rank, 2)?;
        s.equals(&scores.shape[1], self.0.n_scores().to_dim())?;
        if self.0.is_classifier() {
            s.equals(&outputs[0].datum_type, DatumType::I64)?;
            s.equals(&outputs[0].rank, 1)?;
            s.equals(&outputs[0].shape[0], &scores.shape[0])?;
        }
        let width = self.0.width();
        s.given(&inputs[0].rank, move |s, rank| {
            if let (Some(w), Some(last)) = (width, (rank as usize).checked_sub(1)) {
                s.equals(&inputs[0].shape[last], w.to_dim())?;
            }
            if rank == 2 {
                s.equals(&scores.shape[0], &inputs[0].shape[0])?;
            } else {
                s.equals(&scores.shape[0], 1.to_dim())?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for ScorerOp {
    fn name(&self) -> StaticName {
        self.0.op_name().into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![self.0.info()])
    }

    op_as_typed_op!();
}

impl EvalOp for ScorerOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let x = input.cast_to::<f32>()?;
        let (rows, width) = match x.shape() {
            [w] => (1, *w),
            [r, w] => (*r, *w),
            other => bail!("{} takes [rows, features], got shape {other:?}", self.0.op_name()),
        };
        let data = x.try_as_plain_ram()?;
        let scored = self
            .0
            .score(data.as_slice::<f32>()?, rows, width)
            .map_err(|e| format_err!("{}: {e}", self.0.op_name()))?;
        let scores = Tensor::from_shape(&[rows, self.0.n_scores()], &scored.scores)?.into_tvalue();
        Ok(match scored.labels {
            Some(labels) => tvec!(Tensor::from_shape(&[rows], &labels)?.into_tvalue(), scores),
            None => tvec!(scores),
        })
    }
}

impl TypedOp for ScorerOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = if inputs[0].rank() == 2 { inputs[0].shape[0].clone() } else { 1.to_dim() };
        let scores = f32::fact(&[rows.clone(), self.0.n_scores().to_dim()]);
        Ok(if self.0.is_classifier() { tvec!(i64::fact(&[rows]), scores) } else { tvec!(scores) })
    }

    as_op!();
}
