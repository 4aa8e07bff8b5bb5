//! Category lookups for OneHotEncoder and LabelEncoder: numeric or string keys, and the
//! values a LabelEncoder maps them to (float, integer or string), with the default for
//! an unknown key. String keys need a string input tensor: tract carries them through a
//! graph, though the server itself only feeds float32 (string models run at the tract
//! level, see tests/onnx_ml.rs).

use std::collections::HashMap;

use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;

#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    /// Compared as f64 (LabelEncoder's float keys; NaN never matches).
    Floats(Vec<f64>),
    /// Compared with the input cast to i64.
    Ints(Vec<i64>),
    /// The input must be a string tensor. `len` counts duplicates, which never match.
    Strings { index: HashMap<String, usize>, len: usize },
}

impl Keys {
    pub fn strings(list: Vec<String>) -> Keys {
        let len = list.len();
        let mut index = HashMap::with_capacity(len);
        for (i, s) in list.into_iter().enumerate() {
            // The first of duplicate keys wins, as in onnxruntime's map.
            index.entry(s).or_insert(i);
        }
        Keys::Strings { index, len }
    }

    pub fn len(&self) -> usize {
        match self {
            Keys::Floats(k) => k.len(),
            Keys::Ints(k) => k.len(),
            Keys::Strings { len, .. } => *len,
        }
    }

    /// The input type these keys need, when only one will do.
    pub fn input_type(&self) -> Option<DatumType> {
        matches!(self, Keys::Strings { .. }).then_some(DatumType::String)
    }

    /// The position of each input element among the keys (the first match).
    pub fn find(&self, x: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match self {
            Keys::Floats(keys) => {
                let x = x.cast_to::<f64>()?;
                let x = x.try_as_plain_ram()?;
                x.as_slice::<f64>()?.iter().map(|v| keys.iter().position(|k| k == v)).collect()
            }
            Keys::Ints(keys) => {
                let x = x.cast_to::<i64>()?;
                let x = x.try_as_plain_ram()?;
                x.as_slice::<i64>()?.iter().map(|v| keys.iter().position(|k| k == v)).collect()
            }
            Keys::Strings { index, .. } => {
                ensure!(
                    x.datum_type() == DatumType::String,
                    "string keys need a string input, got {:?}",
                    x.datum_type()
                );
                let x = x.try_as_plain_ram()?;
                x.as_slice::<String>()?.iter().map(|v| index.get(v).copied()).collect()
            }
        })
    }
}

/// What a LabelEncoder answers, key by key, and for an unknown key.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Floats { values: Vec<f32>, default: f32 },
    Ints { values: Vec<i64>, default: i64 },
    Strings { values: Vec<String>, default: String },
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Floats { values, .. } => values.len(),
            Values::Ints { values, .. } => values.len(),
            Values::Strings { values, .. } => values.len(),
        }
    }

    pub fn datum_type(&self) -> DatumType {
        match self {
            Values::Floats { .. } => DatumType::F32,
            Values::Ints { .. } => DatumType::I64,
            Values::Strings { .. } => DatumType::String,
        }
    }

    /// The tensor of `shape` holding the value of each found key, or the default.
    pub fn gather(&self, found: &[Option<usize>], shape: &[usize]) -> TractResult<Tensor> {
        fn pick<T: Clone>(values: &[T], default: &T, found: &[Option<usize>]) -> Vec<T> {
            found.iter().map(|f| f.map_or_else(|| default.clone(), |i| values[i].clone())).collect()
        }
        Ok(match self {
            Values::Floats { values, default } => Tensor::from_shape(shape, &pick(values, default, found))?,
            Values::Ints { values, default } => Tensor::from_shape(shape, &pick(values, default, found))?,
            Values::Strings { values, default } => {
                tract_ndarray::ArrayD::from_shape_vec(shape, pick(values, default, found))?.into()
            }
        })
    }
}

/// A LabelEncoder's keys: `keys_tensor` (ai.onnx.ml opset 4) or `keys_strings` /
/// `keys_int64s` / `keys_floats` (opset 2).
pub fn label_keys(a: &Attrs) -> Result<Keys, String> {
    if let Some(t) = a.tensor("keys_tensor")? {
        return match t.datum_type() {
            DatumType::String => Ok(Keys::strings(a.tensor_strings("keys_tensor")?.unwrap_or_default())),
            dt if dt.is_integer() => Ok(Keys::Ints(a.tensor_i64("keys_tensor")?.unwrap_or_default())),
            _ => Ok(Keys::Floats(a.tensor_f64("keys_tensor")?.unwrap_or_default())),
        };
    }
    if a.strings("classes_strings").is_some_and(|c| !c.is_empty()) {
        return Err(
            "opset 1 `classes_strings` is not supported (exporters write opset 2 keys and values)".into()
        );
    }
    match (a.strings("keys_strings"), a.ints("keys_int64s"), a.floats("keys_floats")) {
        (Some(k), _, _) if !k.is_empty() => Ok(Keys::strings(k)),
        (_, Some(k), _) if !k.is_empty() => Ok(Keys::Ints(k.to_vec())),
        (_, _, Some(k)) => Ok(Keys::Floats(k.iter().map(|&v| f64::from(v)).collect())),
        _ => Err("no keys".into()),
    }
}

/// A LabelEncoder's values and default, in the same two spellings as its keys.
pub fn label_values(a: &Attrs) -> Result<Values, String> {
    if let Some(t) = a.tensor("values_tensor")? {
        return match t.datum_type() {
            DatumType::String => Ok(Values::Strings {
                values: a.tensor_strings("values_tensor")?.unwrap_or_default(),
                default: match a.tensor_strings("default_tensor")? {
                    Some(d) => d.into_iter().next().unwrap_or_default(),
                    None => default_string(a),
                },
            }),
            dt if dt.is_integer() => Ok(Values::Ints {
                values: a.tensor_i64("values_tensor")?.unwrap_or_default(),
                default: match a.tensor_i64("default_tensor")? {
                    Some(d) => d.first().copied().unwrap_or(-1),
                    None => a.int("default_int64").unwrap_or(-1),
                },
            }),
            _ => Ok(Values::Floats {
                values: a
                    .tensor_f64("values_tensor")?
                    .unwrap_or_default()
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
                default: match a.tensor_f64("default_tensor")? {
                    Some(d) => d.first().map_or(-0.0, |&v| v as f32),
                    None => a.float("default_float").unwrap_or(-0.0),
                },
            }),
        };
    }
    match (a.strings("values_strings"), a.ints("values_int64s"), a.floats("values_floats")) {
        (Some(v), _, _) if !v.is_empty() => Ok(Values::Strings { values: v, default: default_string(a) }),
        (_, Some(v), _) if !v.is_empty() => {
            Ok(Values::Ints { values: v.to_vec(), default: a.int("default_int64").unwrap_or(-1) })
        }
        (_, _, Some(v)) => {
            Ok(Values::Floats { values: v.to_vec(), default: a.float("default_float").unwrap_or(-0.0) })
        }
        _ => Err("no values".into()),
    }
}

/// ONNX's default for an unknown key mapped to strings.
fn default_string(a: &Attrs) -> String {
    a.string_or("default_string", "_Unused")
}

/// A OneHotEncoder's categories: `cats_int64s` or `cats_strings`.
pub fn one_hot_cats(a: &Attrs) -> Result<Keys, String> {
    match (a.ints("cats_int64s"), a.strings("cats_strings")) {
        (Some(c), _) if !c.is_empty() => Ok(Keys::Ints(c.to_vec())),
        (_, Some(c)) if !c.is_empty() => Ok(Keys::strings(c)),
        _ => Err("no `cats_int64s` / `cats_strings`".into()),
    }
}
