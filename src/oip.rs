//! Open Inference Protocol tensor codecs shared by the HTTP and gRPC transports:
//! datatype names and raw little-endian tensor bytes.

use crate::predict::{Tensor, TensorData};

/// Bytes per element of an input datatype fti-serve accepts (converted to f32).
pub fn input_width(datatype: &str) -> Result<usize, String> {
    match datatype {
        "FP32" | "INT32" => Ok(4),
        "FP64" | "INT64" => Ok(8),
        other => Err(format!("{other} is not supported (use FP32, FP64, INT32 or INT64)")),
    }
}

/// The number of elements a shape declares, with checked arithmetic: a client's shape
/// must never size an allocation or overflow.
pub fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} declares more elements than can be addressed"))
}

/// Raw little-endian elements of `datatype` to f32 (the models' input type).
pub fn decode_raw(datatype: &str, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let width = input_width(datatype)?;
    if !bytes.len().is_multiple_of(width) {
        return Err(format!("{} bytes is not a whole number of {datatype} values", bytes.len()));
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|c| match (datatype, c) {
            ("FP32", &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
            ("INT32", &[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]) as f32,
            ("FP64", &[a, b, c, d, e, f, g, h]) => f64::from_le_bytes([a, b, c, d, e, f, g, h]) as f32,
            (_, &[a, b, c, d, e, f, g, h]) => i64::from_le_bytes([a, b, c, d, e, f, g, h]) as f32,
            _ => f32::NAN,
        })
        .collect())
}

/// Appends a tensor's elements as raw little-endian bytes.
pub fn append_raw(t: &Tensor, out: &mut Vec<u8>) {
    match &t.data {
        TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips() {
        let t = Tensor { shape: vec![2], data: TensorData::F32(vec![1.5, -2.0]) };
        let mut raw = Vec::new();
        append_raw(&t, &mut raw);
        assert_eq!(decode_raw("FP32", &raw), Ok(vec![1.5, -2.0]));
        assert_eq!(decode_raw("INT64", &7i64.to_le_bytes()), Ok(vec![7.0]));
        assert!(decode_raw("FP32", &[0, 0, 0]).is_err());
        assert!(decode_raw("BYTES", &[]).is_err());
        assert_eq!(element_count(&[3, 4]), Ok(12));
        assert!(element_count(&[usize::MAX, 2]).is_err());
    }
}
