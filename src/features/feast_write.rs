//! Feature-file rows as Feast's Redis online store holds them, for `fti-serve materialize`
//! and the embedded store: the same key, fields and value bytes `feast materialize` writes.

use std::collections::HashMap;

use super::event_time::{EventTime, parse_time};
use super::feast::{self, FeastType};
use super::files::{FeastSchema, FeatureRow, GroupSchema};
use super::value::Value;

/// The column of a feature file that holds each row's event time (Feast's default name).
pub const TIMESTAMP_COLUMN: &str = "event_timestamp";

/// One Redis hash write: `HSET key field value ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeastHash {
    pub key: Vec<u8>,
    pub time: EventTime,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The hash write of one row: the view's event timestamp and every declared feature (an
/// empty cell is Feast's null, empty bytes). Fails naming the column that is missing or
/// does not hold its type.
pub fn feast_hash(
    schema: &GroupSchema,
    feast_schema: &FeastSchema,
    row: &FeatureRow,
    timestamp_column: &str,
) -> Result<FeastHash, String> {
    let spec = &feast_schema.spec;
    let mut join = Vec::with_capacity(schema.keys.len());
    for (name, value) in schema.keys.iter().zip(&row.keys) {
        let ty = spec
            .key_types
            .get(name)
            .copied()
            .ok_or_else(|| format!("join key `{name}` has no Feast type"))?;
        join.push((name.as_str(), ty, value.as_str()));
    }
    let key = feast::redis_key(&join, &spec.project).map_err(|(name, m)| format!("column `{name}`: {m}"))?;
    let cell = |name: &str| -> Option<Option<&str>> {
        if let Some((_, v)) = row.set.iter().find(|(k, _)| k == name) {
            return Some(Some(v.as_str()));
        }
        row.unset.iter().any(|k| k == name).then_some(None)
    };
    let time = match cell(timestamp_column) {
        Some(Some(text)) => parse_time(text).map_err(|m| format!("column `{timestamp_column}`: {m}"))?,
        Some(None) => return Err(format!("column `{timestamp_column}`: the event time is empty")),
        None => {
            return Err(format!(
                "column `{timestamp_column}` (the event time Feast keys rows by) is missing"
            ));
        }
    };
    let mut fields = Vec::with_capacity(feast_schema.types.len() + 1);
    fields.push((feast::timestamp_field(&spec.view), feast::encode_timestamp(time)));
    for (name, &ty) in &feast_schema.types {
        let dtype =
            schema.dtypes.get(name).copied().ok_or_else(|| format!("feature `{name}` has no dtype"))?;
        let bytes = match cell(name) {
            None => {
                return Err(format!("column `{name}` (feature of Feast view `{}`) is missing", spec.view));
            }
            Some(None) if ty == FeastType::String && row.empty_strings.iter().any(|k| k == name) => {
                feast::encode_value(ty, Some(&Value::Str(String::new())))
            }
            Some(None) => feast::encode_value(ty, None),
            // Integers from their text: an f64 on the way would round those beyond 2^53.
            Some(Some(text)) => match (ty, text.trim().parse::<i64>()) {
                (FeastType::Int64 | FeastType::Int32, Ok(n)) => feast::encode_int(ty, n),
                _ => dtype.parse_stored(text).and_then(|value| feast::encode_value(ty, Some(&value))),
            },
        }
        .map_err(|m| format!("column `{name}`: {m}"))?;
        fields.push((feast::feature_field(&spec.view, name), bytes));
    }
    Ok(FeastHash { key, time, fields })
}

/// Keeps the newest row of each entity, as Feast does: a row no newer than one already
/// written for the same key is skipped.
#[derive(Debug, Default)]
pub struct Newest(HashMap<Vec<u8>, EventTime>);

impl Newest {
    /// Whether a row for `key` at `time` is to be written.
    pub fn admit(&mut self, key: &[u8], time: EventTime) -> bool {
        match self.0.get_mut(key) {
            Some(seen) if *seen >= time => false,
            Some(seen) => {
                *seen = time;
                true
            }
            None => {
                self.0.insert(key.to_vec(), time);
                true
            }
        }
    }
}
