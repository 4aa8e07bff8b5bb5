//! One prediction record: a JSON object per predicted row (docs/prediction-log.md, "One
//! record"), the same text in a log file's line and a stream entry's `record` field.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::observation::Observation;
use crate::features::RequestValue;
use crate::features::feast::EventTime;
use crate::registry::named_outputs::{OutputValue, extract};
use crate::registry::rollout::Arm;

#[derive(Serialize)]
struct Record<'a> {
    request_id: &'a str,
    row: usize,
    time: &'a str,
    model: &'a str,
    version: u64,
    alias: Option<&'a str>,
    arm: &'static str,
    entities: Pairs<'a, String>,
    request: Pairs<'a, RequestValue>,
    features: Features<'a>,
    missing: &'a [Arc<str>],
    outputs: Outputs,
    latency_ms: f64,
}

/// 2^53: whole numbers below it are exact in an f64.
const WHOLE_LIMIT: f64 = 9_007_199_254_740_992.0;

/// A list of (name, value) written as a JSON object.
struct Pairs<'a, V>(&'a [(String, V)]);

impl Serialize for Pairs<'_, String> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl Serialize for Pairs<'_, RequestValue> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match value {
                RequestValue::Null | RequestValue::Other(_) => map.serialize_entry(name, &())?,
                RequestValue::Bool(b) => map.serialize_entry(name, b)?,
                // Whole numbers as the client most likely sent them (1764000000, not
                // 1764000000.0); exact up to 2^53, as every number here.
                RequestValue::Num(n) if n.fract() == 0.0 && n.abs() < WHOLE_LIMIT => {
                    map.serialize_entry(name, &(*n as i64))?;
                }
                RequestValue::Num(n) => map.serialize_entry(name, n)?,
                RequestValue::Str(text) => map.serialize_entry(name, text)?,
            }
        }
        map.end()
    }
}

/// The input vector by feature name; f32 values in their shortest form, NaN as null.
struct Features<'a> {
    names: &'a [String],
    values: &'a [f32],
}

impl Serialize for Features<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.names.iter().zip(self.values))
    }
}

/// The named outputs as the answer gave them (a map output as an object).
struct Outputs(Vec<(String, OutputValue)>);

impl Serialize for Outputs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            match value {
                OutputValue::Map(entries) => map.serialize_entry(name, &Pairs(entries))?,
                other => map.serialize_entry(name, other)?,
            }
        }
        map.end()
    }
}

impl Serialize for Pairs<'_, f64> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

pub fn arm_name(arm: Arm) -> &'static str {
    match arm {
        Arm::Stable => "stable",
        Arm::Canary => "canary",
    }
}

/// The observation's time as the records print it.
pub fn time_text(obs: &Observation) -> String {
    let since = obs.time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    EventTime { seconds, nanos: since.subsec_micros() as i32 * 1000 }.rfc3339()
}

/// Appends row `row` of `obs` as one JSON line (with its newline) to `out`.
pub fn write_line(out: &mut Vec<u8>, obs: &Observation, row: usize, time: &str) {
    let version = &obs.version;
    let outputs = version.outputs.iter().map(|o| (o.name.clone(), extract(o, &obs.tensors, row))).collect();
    let empty_entities: &[(String, String)] = &[];
    let empty_request: &[(String, RequestValue)] = &[];
    let record = Record {
        request_id: &obs.request_id,
        row,
        time,
        model: &version.model,
        version: version.version,
        alias: obs.alias.as_deref(),
        arm: arm_name(obs.arm),
        entities: Pairs(obs.entities.get(row).map_or(empty_entities, Vec::as_slice)),
        request: Pairs(obs.request.get(row).map_or(empty_request, Vec::as_slice)),
        features: Features { names: version.view.input_names(), values: obs.input_row(row) },
        missing: obs.missing.get(row).map_or(&[], Vec::as_slice),
        outputs: Outputs(outputs),
        latency_ms: obs.latency.as_secs_f64() * 1e3,
    };
    // Serialising into a Vec fails only for a map key that is not a string (none here);
    // a failed record leaves nothing behind.
    let start = out.len();
    match serde_json::to_writer(&mut *out, &record) {
        Ok(()) => out.push(b'\n'),
        Err(_) => out.truncate(start),
    }
}
