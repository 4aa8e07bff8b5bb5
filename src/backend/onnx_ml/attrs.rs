//! Reading ONNX node attributes, including the `*_as_tensor` / `*_tensor` forms of
//! ai.onnx.ml opsets 3–5. Errors name the attribute.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::prelude::{DatumType, Tensor};

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

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f)
    }

    pub fn floats(&self, name: &str) -> Option<&'a [f32]> {
        self.get(name).map(|a| a.floats.as_slice())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
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

    /// `name_as_tensor` when present, else the float list `name`.
    pub fn floats_or_tensor(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        if let Some(v) = self.tensor_f64(&format!("{name}_as_tensor"))? {
            return Ok(Some(v));
        }
        Ok(self.floats(name).map(|v| v.iter().map(|&x| f64::from(x)).collect()))
    }
}

fn to_vec<T: tract_onnx::prelude::Datum + Copy>(t: &Tensor, dt: DatumType) -> Result<Vec<T>, String> {
    let cast = t.cast_to_dt(dt).map_err(|e| e.to_string())?;
    let view = cast.try_as_plain_ram().map_err(|e| e.to_string())?;
    Ok(view.as_slice::<T>().map_err(|e| e.to_string())?.to_vec())
}
