//! ArrayFeatureExtractor with onnxruntime's shapes: the indices are flattened, so the
//! last axis is always kept (`[N, C]` with a scalar index gives `[N, 1]`) and a rank-1
//! input answers one row. tract's own op follows Gather's shape rule and drops the axis
//! for a scalar index, which breaks the graph skl2onnx appends to a multi-class SVC
//! (`Concat` along axis 1 of those columns).

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_hir::internal::*;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("ArrayFeatureExtractor", |_, _| Ok((expand(ArrayFeatureExtractor), vec![])));
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ArrayFeatureExtractor;

impl Expansion for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, i64::datum_type())?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, indices| {
            let mut shape: TVec<TDim> = if x.len() < 2 { tvec![1.to_dim()] } else { x[..x.len() - 1].into() };
            shape.push(indices.iter().product());
            s.equals(&outputs[0].shape, shape)
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.rank() < 2 {
            x = model.wire_node(format!("{prefix}.as_row"), AxisOp::Add(0), &[x])?[0];
        }
        let shape = model.outlet_fact(inputs[1])?.shape.to_tvec();
        let flat = match shape.len() {
            0 => AxisOp::Add(0),
            1 => return model.wire_node(prefix, gather(model, x)?, &[x, inputs[1]]),
            _ => AxisOp::Reshape(0, shape.clone(), tvec![shape.iter().product()]),
        };
        let indices = model.wire_node(format!("{prefix}.flat_indices"), flat, &[inputs[1]])?[0];
        model.wire_node(prefix, gather(model, x)?, &[x, indices])
    }
}

fn gather(model: &TypedModel, x: OutletId) -> TractResult<Gather> {
    Ok(Gather { axis: model.outlet_fact(x)?.rank() - 1, output_type: None })
}
