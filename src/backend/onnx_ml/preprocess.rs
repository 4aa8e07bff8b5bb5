//! The ai.onnx.ml preprocessing operators tract lacks: Scaler, Imputer, Binarizer,
//! OneHotEncoder and LabelEncoder (numeric or string categories, see [`super::categories`]),
//! and ZipMap. They are small per-element maps, so they share one typed op; semantics
//! follow onnxruntime.
//!
//! ZipMap turns class probabilities into a sequence of maps. The backend's outputs are
//! tensors, so here it passes the probabilities tensor through unchanged, and the
//! manifest's `map = true` output option renders a row as `{class: probability}`.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{Attrs, parse_node};
use super::categories::{self, Keys, Values};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", |ctx, node| build(ctx, node, scaler));
    reg.insert("Imputer", |ctx, node| build(ctx, node, imputer));
    reg.insert("Binarizer", |ctx, node| build(ctx, node, binarizer));
    reg.insert("OneHotEncoder", |ctx, node| build(ctx, node, one_hot));
    reg.insert("LabelEncoder", |ctx, node| build(ctx, node, label_encoder));
    reg.insert("ZipMap", |_, _| Ok((expand(ZipMap), vec![])));
}

#[derive(Debug, Clone, PartialEq)]
enum Map {
    /// `(x - offset) * scale`, per column (or one value for all).
    Scale { offset: Vec<f32>, scale: Vec<f32> },
    /// Values equal to `replaced` (or NaN when it is NaN) take the column's value.
    Impute { values: Vec<f32>, replaced: f32 },
    /// 1 when `x > threshold`, else 0.
    Binarize { threshold: f32 },
    /// A new last axis of `cats.len()`; an unknown category is all zeros or an error.
    OneHot { cats: Keys, zeros: bool },
    /// `keys[i] -> values[i]`, anything else -> the values' default.
    Encode { keys: Keys, values: Values },
}

fn build(
    ctx: &ParsingContext,
    node: &NodeProto,
    parse: fn(&Attrs) -> Result<Map, String>,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let map = parse_node(ctx, node, parse)?;
    let name = match &map {
        Map::Scale { .. } => "Scaler",
        Map::Impute { .. } => "Imputer",
        Map::Binarize { .. } => "Binarizer",
        Map::OneHot { .. } => "OneHotEncoder",
        Map::Encode { .. } => "LabelEncoder",
    };
    Ok((expand(Preprocess { name, map }), vec![]))
}

fn scaler(a: &Attrs) -> Result<Map, String> {
    let offset = a.floats("offset").map(<[f32]>::to_vec).unwrap_or_else(|| vec![0.0]);
    let scale = a.floats("scale").map(<[f32]>::to_vec).unwrap_or_else(|| vec![1.0]);
    Ok(Map::Scale { offset, scale })
}

fn imputer(a: &Attrs) -> Result<Map, String> {
    if a.ints("imputed_value_int64s").is_some_and(|v| !v.is_empty()) {
        return Err("integer imputation (`imputed_value_int64s`) is not supported".into());
    }
    let values = a.floats("imputed_value_floats").map(<[f32]>::to_vec).unwrap_or_default();
    if values.is_empty() {
        return Err("`imputed_value_floats` is empty".into());
    }
    Ok(Map::Impute { values, replaced: a.float("replaced_value_float").unwrap_or(0.0) })
}

fn binarizer(a: &Attrs) -> Result<Map, String> {
    Ok(Map::Binarize { threshold: a.float("threshold").unwrap_or(0.0) })
}

fn one_hot(a: &Attrs) -> Result<Map, String> {
    Ok(Map::OneHot { cats: categories::one_hot_cats(a)?, zeros: a.int("zeros").unwrap_or(1) != 0 })
}

fn label_encoder(a: &Attrs) -> Result<Map, String> {
    let (keys, values) = (categories::label_keys(a)?, categories::label_values(a)?);
    if keys.len() != values.len() {
        return Err(format!("{} keys for {} values", keys.len(), values.len()));
    }
    Ok(Map::Encode { keys, values })
}

#[derive(Debug, Clone, PartialEq)]
struct Preprocess {
    name: &'static str,
    map: Map,
}

// tract compares ops to merge duplicates; NaN parameters merely make two ops unequal.
impl Eq for Preprocess {}

impl Preprocess {
    fn out_type(&self) -> DatumType {
        match &self.map {
            Map::Encode { values, .. } => values.datum_type(),
            _ => DatumType::F32,
        }
    }

    fn in_type(&self) -> Option<DatumType> {
        match &self.map {
            Map::Encode { keys, .. } | Map::OneHot { cats: keys, .. } => keys.input_type(),
            _ => None,
        }
    }

    fn check_columns(&self, columns: usize) -> TractResult<()> {
        let per_column = match &self.map {
            Map::Scale { offset, scale } => [offset.len(), scale.len()].into_iter().max().unwrap_or(1),
            Map::Impute { values, .. } => values.len(),
            _ => 1,
        };
        if per_column > 1 && per_column != columns {
            bail!("{}: {per_column} per-column values for {columns} columns", self.name);
        }
        Ok(())
    }

    fn apply(&self, x: &Tensor) -> TractResult<Tensor> {
        let shape = x.shape().to_vec();
        let columns = shape.last().copied().unwrap_or(1).max(1);
        self.check_columns(columns)?;
        let pick = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i % columns] };
        match &self.map {
            Map::Scale { offset, scale } => {
                let x = x.cast_to::<f32>()?;
                let x = x.try_as_plain_ram()?;
                let y: Vec<f32> = x
                    .as_slice::<f32>()?
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (v - pick(offset, i)) * pick(scale, i))
                    .collect();
                Tensor::from_shape(&shape, &y)
            }
            Map::Impute { values, replaced } => {
                let x = x.cast_to::<f32>()?;
                let x = x.try_as_plain_ram()?;
                let hit = |v: f32| if replaced.is_nan() { v.is_nan() } else { v == *replaced };
                let y: Vec<f32> = x
                    .as_slice::<f32>()?
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| if hit(v) { pick(values, i) } else { v })
                    .collect();
                Tensor::from_shape(&shape, &y)
            }
            Map::Binarize { threshold } => {
                let x = x.cast_to::<f32>()?;
                let x = x.try_as_plain_ram()?;
                let y: Vec<f32> =
                    x.as_slice::<f32>()?.iter().map(|&v| f32::from(u8::from(v > *threshold))).collect();
                Tensor::from_shape(&shape, &y)
            }
            Map::OneHot { cats, zeros } => {
                let found = cats.find(x)?;
                let k = cats.len();
                let mut y = vec![0.0f32; found.len() * k];
                for (i, f) in found.iter().enumerate() {
                    match f {
                        Some(j) => y[i * k + j] = 1.0,
                        None if *zeros => {}
                        None => bail!("OneHotEncoder: unknown category in element {i}"),
                    }
                }
                let mut out_shape = shape;
                out_shape.push(k);
                Tensor::from_shape(&out_shape, &y)
            }
            Map::Encode { keys, values } => values.gather(&keys.find(x)?, &shape),
        }
    }
}

impl Expansion for Preprocess {
    fn name(&self) -> StaticName {
        self.name.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, self.out_type())?;
        if let Some(dt) = self.in_type() {
            s.equals(&inputs[0].datum_type, dt)?;
        }
        if let Map::OneHot { cats, .. } = &self.map {
            let k = cats.len();
            s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
            s.given(&inputs[0].rank, move |s, rank| {
                let rank = rank as usize;
                for axis in 0..rank {
                    s.equals(&outputs[0].shape[axis], &inputs[0].shape[axis])?;
                }
                s.equals(&outputs[0].shape[rank], k.to_dim())
            })
        } else {
            s.equals(&outputs[0].shape, &inputs[0].shape)
        }
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for Preprocess {
    fn name(&self) -> StaticName {
        self.name.into()
    }

    op_as_typed_op!();
}

impl EvalOp for Preprocess {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(tvec!(self.apply(&input)?.into_tvalue()))
    }
}

impl TypedOp for Preprocess {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        if let Map::OneHot { cats, .. } = &self.map {
            shape.push(cats.len().to_dim());
        }
        Ok(tvec!(self.out_type().fact(&*shape)))
    }

    as_op!();
}

/// ZipMap passes the probabilities through (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ZipMap;

impl Expansion for ZipMap {
    fn name(&self) -> StaticName {
        "ZipMap".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)
    }

    fn wire(
        &self,
        _prefix: &str,
        _model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        Ok(inputs.into())
    }
}
