//! Feast's Redis online store layout, byte for byte, so that a feature group can be read
//! straight from what `feast materialize` wrote (and `fti-serve materialize` can write it):
//!
//! - **key**: the entity key serialized as Feast's version 3 does (the join keys sorted by
//!   name; little-endian `u32` counts, type tags and lengths), then the project's name;
//! - **field** of a feature: the 4 little-endian bytes of MurmurHash3 (x86, 32-bit, seed
//!   0) of `"<view>:<feature>"`;
//! - **value**: a serialized `feast.types.Value` (empty bytes = null);
//! - **event time** of a view's row: field `_ts:<view>`, a serialized
//!   `google.protobuf.Timestamp`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::features::event_time::EventTime;
use crate::features::value::{DType, Value};

/// The entity key serialization this module speaks (Feast's default since 0.38).
pub const KEY_VERSION: u32 = 3;

/// What a Feast group declares (`[feature_view.groups.feast]` in a manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastSpec {
    /// The Feast project: the suffix of every key.
    pub project: String,
    /// The Feast feature view the group reads.
    pub view: String,
    /// The Feast value type of each join key (the group's entities, by name).
    pub key_types: std::collections::BTreeMap<String, KeyType>,
    /// Feast's entity key serialization version; only 3 is read.
    #[serde(default = "default_key_version")]
    pub key_version: u32,
}

fn default_key_version() -> u32 {
    KEY_VERSION
}

/// A join key's Feast value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    String,
    Int64,
    Int32,
}

/// A join key value as the request sent it, typed as its key declares.
enum KeyValue<'a> {
    String(&'a str),
    Int64(i64),
    Int32(i32),
}

impl KeyType {
    /// Whether `value` (text, as a request sends it) is a value of this join key; the error
    /// says what was expected. Requests are checked with it before any lookup.
    pub fn check(self, value: &str) -> Result<(), String> {
        self.parse(value).map(drop)
    }

    fn parse(self, value: &str) -> Result<KeyValue<'_>, String> {
        match self {
            KeyType::String => Ok(KeyValue::String(value)),
            KeyType::Int64 => value
                .trim()
                .parse()
                .map(KeyValue::Int64)
                .map_err(|_| format!("a Feast int64 join key: expected an integer, got {value:?}")),
            KeyType::Int32 => value
                .trim()
                .parse()
                .map(KeyValue::Int32)
                .map_err(|_| format!("a Feast int32 join key: expected a 32-bit integer, got {value:?}")),
        }
    }

    /// Appends a join key value as Feast serializes it: type tag, length, bytes.
    fn encode(self, value: &str, out: &mut Vec<u8>) -> Result<(), String> {
        match self.parse(value)? {
            KeyValue::String(s) => {
                push_u32(out, TAG_STRING);
                push_u32(out, s.len() as u32);
                out.extend_from_slice(s.as_bytes());
            }
            KeyValue::Int64(n) => {
                push_u32(out, TAG_INT64);
                push_u32(out, 8);
                out.extend_from_slice(&n.to_le_bytes());
            }
            KeyValue::Int32(n) => {
                push_u32(out, TAG_INT32);
                push_u32(out, 4);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        Ok(())
    }
}

/// A feature's Feast value type: how `fti-serve materialize` writes it. On read, either
/// width of a number is accepted for a `float` or `int` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeastType {
    Float64,
    Float32,
    Int64,
    Int32,
    Bool,
    String,
}

impl FeastType {
    /// The type a feature of `dtype` has in Feast unless it declares one.
    pub fn default_for(dtype: DType) -> FeastType {
        match dtype {
            DType::Float => FeastType::Float64,
            DType::Int => FeastType::Int64,
            DType::Bool => FeastType::Bool,
            DType::String => FeastType::String,
        }
    }

    /// Whether values of this Feast type are values of `dtype`.
    pub fn fits(self, dtype: DType) -> bool {
        matches!(
            (self, dtype),
            (FeastType::Float64 | FeastType::Float32, DType::Float)
                | (FeastType::Int64 | FeastType::Int32, DType::Int)
                | (FeastType::Bool, DType::Bool)
                | (FeastType::String, DType::String)
        )
    }
}

impl fmt::Display for FeastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeastType::Float64 => "float64",
            FeastType::Float32 => "float32",
            FeastType::Int64 => "int64",
            FeastType::Int32 => "int32",
            FeastType::Bool => "bool",
            FeastType::String => "string",
        })
    }
}

/// `ValueType` tags of the entity key serialization.
const TAG_STRING: u32 = 2;
const TAG_INT32: u32 = 3;
const TAG_INT64: u32 = 4;

/// The Redis key of one entity: `keys` are (join key name, type, value as the request
/// sent it), in any order. Integer join keys must parse as integers of their width; the
/// error names the join key that did not, and says why.
pub fn redis_key(keys: &[(&str, KeyType, &str)], project: &str) -> Result<Vec<u8>, (String, String)> {
    let mut sorted: Vec<&(&str, KeyType, &str)> = keys.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(8 + keys.len() * 32 + project.len());
    push_u32(&mut out, keys.len() as u32);
    for (name, _, _) in &sorted {
        push_u32(&mut out, TAG_STRING);
        push_u32(&mut out, name.len() as u32);
        out.extend_from_slice(name.as_bytes());
    }
    for (name, ty, value) in &sorted {
        ty.encode(value, &mut out).map_err(|message| (name.to_string(), message))?;
    }
    out.extend_from_slice(project.as_bytes());
    Ok(out)
}

fn push_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// The hash field of a feature.
pub fn feature_field(view: &str, feature: &str) -> Vec<u8> {
    let name = format!("{view}:{feature}");
    murmur3_32(name.as_bytes()).to_le_bytes().to_vec()
}

/// The hash field holding a view's event timestamp.
pub fn timestamp_field(view: &str) -> Vec<u8> {
    format!("_ts:{view}").into_bytes()
}

/// MurmurHash3, x86 32-bit variant, seed 0.
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h: u32 = 0;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h = (h ^ mix(k)).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, &b| (k << 8) | u32::from(b));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// One decoded `feast.types.Value` of a kind a feature can have.
#[derive(Debug, Clone, PartialEq)]
pub enum FeastValue {
    Double(f64),
    Float(f32),
    Int64(i64),
    Int32(i32),
    Bool(bool),
    String(String),
    UnixTimestamp(i64),
    Bytes(Vec<u8>),
    /// Set, but of a kind features here cannot hold (a list, a map, ...): its field number.
    Other(u32),
}

impl FeastValue {
    /// The value as a feature of `dtype`, or why it is not one.
    pub fn to_value(&self, dtype: DType) -> Result<Value, String> {
        match (self, dtype) {
            (FeastValue::Double(x), DType::Float) => Ok(Value::Num(*x)),
            (FeastValue::Float(x), DType::Float) => Ok(Value::Num(f64::from(*x))),
            (FeastValue::Int64(n), DType::Int) => Ok(Value::Num(*n as f64)),
            (FeastValue::Int32(n), DType::Int) => Ok(Value::Num(f64::from(*n))),
            (FeastValue::Bool(b), DType::Bool) => Ok(Value::Num(f64::from(u8::from(*b)))),
            (FeastValue::String(s), DType::String) => Ok(Value::Str(s.clone())),
            (other, dtype) => Err(format!("a Feast {} where {dtype} was declared", other.kind())),
        }
    }

    fn kind(&self) -> String {
        match self {
            FeastValue::Double(_) => "double".into(),
            FeastValue::Float(_) => "float".into(),
            FeastValue::Int64(_) => "int64".into(),
            FeastValue::Int32(_) => "int32".into(),
            FeastValue::Bool(_) => "bool".into(),
            FeastValue::String(_) => "string".into(),
            FeastValue::UnixTimestamp(_) => "unix_timestamp".into(),
            FeastValue::Bytes(_) => "bytes".into(),
            FeastValue::Other(field) => format!("value of field {field}"),
        }
    }
}

/// Decodes a stored `feast.types.Value`: `None` for null (empty bytes, `null_val`, or
/// nothing set), the value otherwise. Fails on bytes that are not a protobuf message.
pub fn decode_value(bytes: &[u8]) -> Result<Option<FeastValue>, String> {
    let mut reader = Reader { bytes, at: 0 };
    let mut value = None;
    while !reader.done() {
        let (field, wire) = reader.tag()?;
        value = match (field, wire) {
            (1, WIRE_LEN) => Some(FeastValue::Bytes(reader.len_delimited()?.to_vec())),
            (2, WIRE_LEN) => Some(FeastValue::String(
                std::str::from_utf8(reader.len_delimited()?)
                    .map_err(|_| "string_val is not UTF-8".to_string())?
                    .to_string(),
            )),
            // int32 travels as a sign-extended varint: the low 32 bits are the value.
            (3, WIRE_VARINT) => Some(FeastValue::Int32(reader.varint()? as i32)),
            (4, WIRE_VARINT) => Some(FeastValue::Int64(reader.varint()? as i64)),
            (5, WIRE_I64) => Some(FeastValue::Double(f64::from_le_bytes(reader.fixed::<8>()?))),
            (6, WIRE_I32) => Some(FeastValue::Float(f32::from_le_bytes(reader.fixed::<4>()?))),
            (7, WIRE_VARINT) => Some(FeastValue::Bool(reader.varint()? != 0)),
            (8, WIRE_VARINT) => Some(FeastValue::UnixTimestamp(reader.varint()? as i64)),
            (19, WIRE_VARINT) => {
                reader.varint()?;
                None
            }
            (field, wire) => {
                reader.skip(wire)?;
                Some(FeastValue::Other(field))
            }
        };
    }
    Ok(value)
}

/// Encodes a feature value as Feast writes it for `ty`; `None` (null) is empty bytes.
pub fn encode_value(ty: FeastType, value: Option<&Value>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let Some(value) = value else { return Ok(out) };
    match (ty, value) {
        (FeastType::Float64, Value::Num(x)) => {
            out.push(tag(5, WIRE_I64));
            out.extend_from_slice(&x.to_le_bytes());
        }
        (FeastType::Float32, Value::Num(x)) => {
            out.push(tag(6, WIRE_I32));
            out.extend_from_slice(&(*x as f32).to_le_bytes());
        }
        (FeastType::Int64 | FeastType::Int32, Value::Num(x)) => return encode_int(ty, *x as i64),
        (FeastType::Bool, Value::Num(x)) => {
            out.push(tag(7, WIRE_VARINT));
            out.push(u8::from(*x != 0.0));
        }
        (FeastType::String, Value::Str(s)) => {
            out.push(tag(2, WIRE_LEN));
            push_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        (ty, value) => return Err(format!("{value:?} is not a Feast {ty}")),
    }
    Ok(out)
}

/// Encodes an integer feature as Feast writes it for `ty` (int64 or int32).
pub fn encode_int(ty: FeastType, n: i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(11);
    match ty {
        FeastType::Int64 => out.push(tag(4, WIRE_VARINT)),
        FeastType::Int32 => {
            i32::try_from(n).map_err(|_| format!("{n} does not fit a Feast int32"))?;
            out.push(tag(3, WIRE_VARINT));
        }
        other => return Err(format!("{n} is not a Feast {other}")),
    }
    // Negative numbers travel sign-extended to 64 bits (protobuf's int32 and int64).
    push_varint(&mut out, n as u64);
    Ok(out)
}

/// Decodes a serialized `google.protobuf.Timestamp`.
pub fn decode_timestamp(bytes: &[u8]) -> Result<EventTime, String> {
    let mut reader = Reader { bytes, at: 0 };
    let mut time = EventTime { seconds: 0, nanos: 0 };
    while !reader.done() {
        match reader.tag()? {
            (1, WIRE_VARINT) => time.seconds = reader.varint()? as i64,
            (2, WIRE_VARINT) => time.nanos = reader.varint()? as i32,
            (_, wire) => reader.skip(wire)?,
        }
    }
    if !(0..1_000_000_000).contains(&time.nanos) {
        return Err(format!("timestamp nanos {} out of range", time.nanos));
    }
    Ok(time)
}

/// Encodes a `google.protobuf.Timestamp` as Feast writes it (nanos left out when 0).
pub fn encode_timestamp(time: EventTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    if time.seconds != 0 {
        out.push(tag(1, WIRE_VARINT));
        push_varint(&mut out, time.seconds as u64);
    }
    if time.nanos != 0 {
        out.push(tag(2, WIRE_VARINT));
        push_varint(&mut out, i64::from(time.nanos) as u64);
    }
    out
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A bounds-checked protobuf wire reader: every length is checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn tag(&mut self) -> Result<(u32, u8), String> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if field == 0 {
            return Err("field number 0".into());
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("truncated field")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
        self.take(len)
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_I32 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).expect("test vectors are hex")
    }

    // Test vectors: bytes Feast 0.67 wrote to a real Redis.
    #[test]
    fn keys_are_feasts_version_3_serialization_then_the_project() {
        let key = redis_key(&[("driver_id", KeyType::String, "d1")], "feastfacts").unwrap();
        assert_eq!(
            key,
            hex("01000000 02000000 09000000 6472697665725f6964 02000000 02000000 6431 66656173746661637473")
        );
        let key = redis_key(&[("region_code", KeyType::Int32, "-5")], "").unwrap();
        assert_eq!(key, hex("01000000 02000000 0b000000 726567696f6e5f636f6465 03000000 04000000 fbffffff"));
        // Composite: sorted by name (customer_id before zone_id), names first, then values.
        let key = redis_key(
            &[("zone_id", KeyType::Int64, "7"), ("customer_id", KeyType::String, "c1")],
            "feastfacts",
        )
        .unwrap();
        let want = "02000000 02000000 0b000000 637573746f6d65725f6964 02000000 07000000 7a6f6e655f6964 \
                    02000000 02000000 6331 04000000 08000000 0700000000000000 66656173746661637473";
        assert_eq!(key, hex(want));
        let (key, message) = redis_key(&[("zone_id", KeyType::Int64, "seven")], "p").unwrap_err();
        assert!(key == "zone_id" && message.contains("int64"), "{key}: {message}");
        assert!(redis_key(&[("r", KeyType::Int32, "3000000000")], "p").is_err());
    }

    #[test]
    fn fields_are_murmur3_of_view_and_feature() {
        assert_eq!(feature_field("driver_stats", "conv_rate"), hex("fa731014"));
        assert_eq!(feature_field("driver_stats", "acc_rate"), hex("5956e084"));
        assert_eq!(feature_field("zone_customer", "amount"), hex("2429230b"));
        assert_eq!(feature_field("vue", "é"), hex("9b2ad228"));
        assert_eq!(feature_field("fv", "f"), hex("3a27cb89"));
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog"), 0x2e4f_f723);
        assert_eq!(timestamp_field("driver_stats"), b"_ts:driver_stats".to_vec());
    }

    #[test]
    fn values_decode_as_feast_wrote_them_and_encode_back_byte_for_byte() {
        let cases: &[(&str, FeastType, FeastValue, Value)] = &[
            ("29000000000000e03f", FeastType::Float64, FeastValue::Double(0.5), Value::Num(0.5)),
            ("350000c03f", FeastType::Float32, FeastValue::Float(1.5), Value::Num(1.5)),
            ("35000000c0", FeastType::Float32, FeastValue::Float(-2.0), Value::Num(-2.0)),
            ("2080c8afa025", FeastType::Int64, FeastValue::Int64(10_000_000_000), Value::Num(1e10)),
            ("20f9ffffffffffffffff01", FeastType::Int64, FeastValue::Int64(-7), Value::Num(-7.0)),
            ("18fdffffffffffffffff01", FeastType::Int32, FeastValue::Int32(-3), Value::Num(-3.0)),
            ("18ffffffff07", FeastType::Int32, FeastValue::Int32(i32::MAX), Value::Num(f64::from(i32::MAX))),
            ("3800", FeastType::Bool, FeastValue::Bool(false), Value::Num(0.0)),
            ("3801", FeastType::Bool, FeastValue::Bool(true), Value::Num(1.0)),
            (
                "120668c3a96c6c6f",
                FeastType::String,
                FeastValue::String("héllo".into()),
                Value::Str("héllo".into()),
            ),
            ("1200", FeastType::String, FeastValue::String(String::new()), Value::Str(String::new())),
            ("2000", FeastType::Int64, FeastValue::Int64(0), Value::Num(0.0)),
        ];
        for (bytes, ty, feast, value) in cases {
            assert_eq!(decode_value(&hex(bytes)).unwrap().as_ref(), Some(feast), "{bytes}");
            let dtype = match ty {
                FeastType::Float64 | FeastType::Float32 => DType::Float,
                FeastType::Int64 | FeastType::Int32 => DType::Int,
                FeastType::Bool => DType::Bool,
                FeastType::String => DType::String,
            };
            assert_eq!(&feast.to_value(dtype).unwrap(), value, "{bytes}");
            assert_eq!(encode_value(*ty, Some(value)).unwrap(), hex(bytes), "{bytes}");
        }
        assert_eq!(decode_value(b"").unwrap(), None);
        assert_eq!(decode_value(&hex("980100")).unwrap(), None);
        assert_eq!(encode_value(FeastType::Float64, None).unwrap(), Vec::<u8>::new());
        // A list is a value features cannot hold; garbage is an error, never a panic.
        assert_eq!(decode_value(&hex("7204 0a020102")).unwrap(), Some(FeastValue::Other(14)));
        assert!(decode_value(&hex("29 0000")).is_err());
        assert!(decode_value(&hex("12ff")).is_err());
        assert!(decode_value(&hex("ffffffffffffffffffffff")).is_err());
        assert!(FeastValue::String("a".into()).to_value(DType::Float).is_err());
    }

    #[test]
    fn timestamps_round_trip_and_print_in_rfc_3339() {
        let t = decode_timestamp(&hex("08a0d2b3d806108094ef3a")).unwrap();
        assert_eq!(t, EventTime { seconds: 1_796_008_224, nanos: 123_456_000 });
        assert_eq!(t.rfc3339(), "2026-11-30T03:10:24.123456Z");
        assert_eq!(encode_timestamp(t), hex("08a0d2b3d806108094ef3a"));
        let t = decode_timestamp(&hex("08c0acffd706")).unwrap();
        assert_eq!(t.nanos, 0);
        assert_eq!(encode_timestamp(t), hex("08c0acffd706"));
        assert!(decode_timestamp(&hex("10ffffffff0f")).is_err());
    }
}
