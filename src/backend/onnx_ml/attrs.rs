//! Reading ONNX node attributes, including the `*_as_tensor` / `*_tensor` forms of
//! ai.onnx.ml opsets 3–5, for every operator of [`super`]. Errors name the attribute;
//! [`parse_node`] adds the operator and the node.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::prelude::{DatumType, Tensor, TractResult};
use tract_onnx::tract_hir::internal::format_err;

use crate::backend::post_transform::PostTransform;

/// Builds something from a node's attributes; an error names the operator and the node.
pub fn parse_node<T>(
    ctx: &ParsingContext,
    node: &NodeProto,
    parse: impl FnOnce(&Attrs) -> Result<T, String>,
) -> TractResult<T> {
    parse(&Attrs::new(ctx, node)).map_err(|e| format_err!("{} `{}`: {e}", node.op_type, node.name))
}

/// `value`, or the error that attribute `name` is missing.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("attribute `{name}` is missing"))
}

/// Parallel attributes must have the same length.
pub fn same_len(name: &str, len: usize, expected: usize) -> Result<(), String> {
    if len == expected {
        Ok(())
    } else {
        Err(format!("attribute `{name}` has {len} values, expected {expected}"))
    }
}

pub struct Attrs<'a> {
    ctx: &'a ParsingContext<'a>,
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(ctx: &'a ParsingContext<'a>, node: &'a NodeProto) -> Attrs<'a> {
        Attrs { ctx, node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    pub fn need_ints(&self, name: &str) -> Result<&'a [i64], String> {
        required(self.ints(name), name)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    /// A count (`n_targets`, `n_supports`, ...): an integer ≥ 0, `default` when absent.
    pub fn count_or(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.int(name) {
            None => Ok(default),
            Some(n) => usize::try_from(n).map_err(|_| format!("attribute `{name}` is {n}, not a count")),
        }
    }

    /// A list of counts (`vectors_per_class`), empty when absent.
    pub fn counts(&self, name: &str) -> Result<Vec<usize>, String> {
        let ints = self.ints(name).unwrap_or_default();
        ints.iter()
            .map(|&n| usize::try_from(n).map_err(|_| format!("attribute `{name}` holds {n}, not a count")))
            .collect()
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f)
    }

    pub fn floats(&self, name: &str) -> Option<&'a [f32]> {
        self.get(name).map(|a| a.floats.as_slice())
    }

    /// A float list as f64, empty when absent.
    pub fn floats_f64(&self, name: &str) -> Vec<f64> {
        self.floats(name).map(|v| v.iter().map(|&x| f64::from(x)).collect()).unwrap_or_default()
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_string())
    }

    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }

    pub fn need_strings(&self, name: &str) -> Result<Vec<String>, String> {
        required(self.strings(name), name)
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, String> {
        let Some(proto) = self.get(name).and_then(|a| a.t.as_ref()) else { return Ok(None) };
        self.ctx.load_tensor(proto).map(Some).map_err(|e| format!("attribute `{name}`: {e}"))
    }

    /// A tensor attribute as f64 values (float, double or integer tensors).
    pub fn tensor_f64(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        let Some(t) = self.tensor(name)? else { return Ok(None) };
        to_vec::<f64>(&t, DatumType::F64).map(Some).map_err(|e| format!("attribute `{name}`: {e}"))
    }

    pub fn tensor_i64(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        let Some(t) = self.tensor(name)? else { return Ok(None) };
        to_vec::<i64>(&t, DatumType::I64).map(Some).map_err(|e| format!("attribute `{name}`: {e}"))
    }

    /// A string tensor attribute.
    pub fn tensor_strings(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        let Some(t) = self.tensor(name)? else { return Ok(None) };
        let view = t.try_as_plain_ram().map_err(|e| format!("attribute `{name}`: {e}"))?;
        let strings = view.as_slice::<String>().map_err(|e| format!("attribute `{name}`: {e}"))?;
        Ok(Some(strings.to_vec()))
    }

    /// `name_as_tensor` when present, else the float list `name`.
    pub fn floats_or_tensor(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        if let Some(v) = self.tensor_f64(&format!("{name}_as_tensor"))? {
            return Ok(Some(v));
        }
        Ok(self.floats(name).map(|v| v.iter().map(|&x| f64::from(x)).collect()))
    }

    /// A classifier's labels: the integers of `ints_name`, or indices into
    /// `classlabels_strings` (the label output then holds the index).
    pub fn class_labels(&self, ints_name: &str) -> Result<Vec<i64>, String> {
        match (self.ints(ints_name), self.strings("classlabels_strings")) {
            (Some(ints), _) if !ints.is_empty() => Ok(ints.to_vec()),
            (_, Some(strings)) if !strings.is_empty() => Ok((0..strings.len() as i64).collect()),
            _ => Err(format!("no `{ints_name}` / `classlabels_strings`")),
        }
    }

    /// `post_transform` as ai.onnx.ml opsets 1–3 spell it (a name, NONE when absent).
    pub fn post_transform(&self) -> Result<PostTransform, String> {
        PostTransform::parse(&self.string_or("post_transform", "NONE"))
    }
}

fn to_vec<T: tract_onnx::prelude::Datum + Copy>(t: &Tensor, dt: DatumType) -> Result<Vec<T>, String> {
    let cast = t.cast_to_dt(dt).map_err(|e| e.to_string())?;
    let view = cast.try_as_plain_ram().map_err(|e| e.to_string())?;
    Ok(view.as_slice::<T>().map_err(|e| e.to_string())?.to_vec())
}
