//! `fti-serve log export`: prediction records from the log files or a Redis Stream,
//! filtered by model, version and time, to Parquet with one column per feature
//! (docs/prediction-log.md, "Reading it back").

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::files::log_files;
use super::parquet_out::{Column, ColumnData};
use super::stream::MODEL_PLACEHOLDER;
use crate::features::event_time::parse_time;
use crate::features::redis::{RedisOptions, client};

/// Which records to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub model: Option<String>,
    pub version: Option<u64>,
    /// Microseconds since the epoch, inclusive.
    pub since_us: Option<i64>,
    /// Microseconds since the epoch, exclusive.
    pub until_us: Option<i64>,
}

/// A record as read back, with its time.
pub struct Record {
    pub time_us: i64,
    pub fields: Map<String, Value>,
}

impl Filter {
    fn keeps(&self, r: &Record) -> bool {
        let model_ok =
            self.model.as_ref().is_none_or(|m| r.fields.get("model").and_then(Value::as_str) == Some(m));
        let version_ok =
            self.version.is_none_or(|v| r.fields.get("version").and_then(Value::as_u64) == Some(v));
        model_ok
            && version_ok
            && self.since_us.is_none_or(|t| r.time_us >= t)
            && self.until_us.is_none_or(|t| r.time_us < t)
    }
}

/// A time bound as the CLI takes it: RFC 3339, or seconds since the epoch.
pub fn parse_bound(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.trim().parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1e6).round() as i64);
    }
    parse_time(text).map(|t| t.micros())
}

fn parse_record(text: &[u8], at: &dyn Fn() -> String) -> Result<Record, String> {
    let fields: Map<String, Value> = serde_json::from_slice(text).map_err(|e| format!("{}: {e}", at()))?;
    let time = fields.get("time").and_then(Value::as_str).ok_or_else(|| format!("{}: no `time`", at()))?;
    let time_us = parse_time(time).map_err(|e| format!("{}: {e}", at()))?.micros();
    Ok(Record { time_us, fields })
}

/// Every record in the log files of `dir`, oldest file first. A last line without its
/// newline (the file being written) is skipped; a line that is not a record is an error
/// naming the file and line.
pub fn read_files(dir: &Path, filter: &Filter) -> Result<Vec<Record>, String> {
    let files = log_files(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for path in files {
        read_file(&path, filter, &mut out)?;
    }
    Ok(out)
}

fn read_file(path: &PathBuf, filter: &Filter, out: &mut Vec<Record>) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n =
            reader.read_until(b'\n', &mut line).map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        number += 1;
        let record = parse_record(&line, &|| format!("{} line {number}", path.display()))?;
        if filter.keeps(&record) {
            out.push(record);
        }
    }
}

/// Entries per XRANGE call.
const PAGE: usize = 1000;

/// Every record in the stream `key` (with `{model}` replaced by the filter's model) within
/// the filter's time range, read in pages.
pub async fn read_stream(redis: &RedisOptions, key: &str, filter: &Filter) -> Result<Vec<Record>, String> {
    let key = if key.contains(MODEL_PLACEHOLDER) {
        let model = filter.model.as_ref().ok_or_else(|| format!("the stream key {key:?} needs --model"))?;
        key.replace(MODEL_PLACEHOLDER, model)
    } else {
        key.to_string()
    };
    let client = client(redis).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(redis.timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "no connection to Redis within the timeout".to_string())?
        .map_err(|e| e.to_string())?;
    // Stream ids start with milliseconds since the epoch.
    let mut start = filter.since_us.map_or("-".to_string(), |us| (us.div_euclid(1000)).to_string());
    let end = filter.until_us.map_or("+".to_string(), |us| (us.div_euclid(1000) + 1).to_string());
    let mut out = Vec::new();
    loop {
        let page: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg(&end)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("XRANGE {key}: {e}"))?;
        let full = page.len() == PAGE;
        for (id, entry) in &page {
            let text = entry.get("record").ok_or_else(|| format!("{key} entry {id}: no `record` field"))?;
            let record = parse_record(text, &|| format!("{key} entry {id}"))?;
            if filter.keeps(&record) {
                out.push(record);
            }
        }
        match page.last() {
            Some((id, _)) if full => start = format!("({id}"),
            _ => return Ok(out),
        }
    }
}

/// Column names in first-seen order, and whether each holds text.
#[derive(Default)]
struct Names {
    order: Vec<String>,
    index: HashMap<String, usize>,
    text: Vec<bool>,
}

impl Names {
    fn see(&mut self, name: String, is_text: bool) {
        match self.index.get(&name) {
            Some(&i) => self.text[i] |= is_text,
            None => {
                self.index.insert(name.clone(), self.order.len());
                self.order.push(name);
                self.text.push(is_text);
            }
        }
    }
}

/// A record's values under their column names: `entity.*`, `request.*`, `feature.*`,
/// `output.*` (a map's entries `output.<name>.<key>`, a list's `output.<name>.<i>`).
fn spread(r: &Record) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (section, prefix) in [("entities", "entity"), ("request", "request"), ("features", "feature")] {
        if let Some(Value::Object(m)) = r.fields.get(section) {
            out.extend(m.iter().map(|(k, v)| (format!("{prefix}.{k}"), v)));
        }
    }
    if let Some(Value::Object(m)) = r.fields.get("outputs") {
        for (name, v) in m {
            match v {
                Value::Object(entries) => {
                    out.extend(entries.iter().map(|(k, v)| (format!("output.{name}.{k}"), v)));
                }
                Value::Array(items) => {
                    out.extend(items.iter().enumerate().map(|(i, v)| (format!("output.{name}.{i}"), v)));
                }
                other => out.push((format!("output.{name}"), other)),
            }
        }
    }
    out
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The records as columns (docs/prediction-log.md lists them).
pub fn columns(records: &[Record]) -> Vec<Column> {
    let str_of = |key: &str| -> Vec<Option<String>> {
        records.iter().map(|r| r.fields.get(key).and_then(|v| v.as_str().map(str::to_string))).collect()
    };
    let mut columns = vec![
        Column { name: "request_id".into(), data: ColumnData::Str(str_of("request_id")) },
        Column {
            name: "row".into(),
            data: ColumnData::I32(
                records
                    .iter()
                    .map(|r| r.fields.get("row").and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok()))
                    .collect(),
            ),
        },
        Column {
            name: "time".into(),
            data: ColumnData::Timestamp(records.iter().map(|r| Some(r.time_us)).collect()),
        },
        Column { name: "model".into(), data: ColumnData::Str(str_of("model")) },
        Column {
            name: "version".into(),
            data: ColumnData::I64(
                records.iter().map(|r| r.fields.get("version").and_then(Value::as_i64)).collect(),
            ),
        },
        Column { name: "alias".into(), data: ColumnData::Str(str_of("alias")) },
        Column { name: "arm".into(), data: ColumnData::Str(str_of("arm")) },
    ];
    let mut names = Names::default();
    let spread: Vec<Vec<(String, &Value)>> = records.iter().map(spread).collect();
    for row in &spread {
        for (name, v) in row {
            names.see(name.clone(), v.is_string());
        }
    }
    let mut text_cols: Vec<Vec<Option<String>>> = Vec::new();
    let mut num_cols: Vec<Vec<Option<f64>>> = Vec::new();
    let slots: Vec<(bool, usize)> = names
        .text
        .iter()
        .map(|&is_text| {
            if is_text {
                text_cols.push(vec![None; records.len()]);
                (true, text_cols.len() - 1)
            } else {
                num_cols.push(vec![None; records.len()]);
                (false, num_cols.len() - 1)
            }
        })
        .collect();
    for (r, row) in spread.iter().enumerate() {
        for (name, v) in row {
            let Some(&i) = names.index.get(name) else { continue };
            match slots[i] {
                (true, k) => text_cols[k][r] = text(v),
                (false, k) => num_cols[k][r] = number(v),
            }
        }
    }
    let mut text_cols = text_cols.into_iter();
    let mut num_cols = num_cols.into_iter();
    for (name, (is_text, _)) in names.order.into_iter().zip(slots) {
        let data = if is_text {
            ColumnData::Str(text_cols.next().unwrap_or_default())
        } else {
            ColumnData::F64(num_cols.next().unwrap_or_default())
        };
        columns.push(Column { name, data });
    }
    columns.push(Column {
        name: "missing_features".into(),
        data: ColumnData::Str(
            records
                .iter()
                .map(|r| {
                    r.fields
                        .get("missing")
                        .and_then(Value::as_array)
                        .map(|names| names.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                })
                .collect(),
        ),
    });
    columns.push(Column {
        name: "latency_ms".into(),
        data: ColumnData::F64(
            records.iter().map(|r| r.fields.get("latency_ms").and_then(Value::as_f64)).collect(),
        ),
    });
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        parse_record(json.as_bytes(), &|| "test".into()).expect("record")
    }

    #[test]
    fn columns_union_versions_and_flatten_outputs() {
        let a = record(
            r#"{"request_id":"a","row":0,"time":"2026-11-30T11:00:00Z","model":"m","version":1,"alias":"production","arm":"stable","entities":{"card":"1"},"request":{"amount":2.5,"cat":"food"},"features":{"x":1.5,"y":null},"missing":["y","z"],"outputs":{"p":{"no":0.25,"yes":0.75},"label":1},"latency_ms":0.5}"#,
        );
        let b = record(
            r#"{"request_id":"b","row":1,"time":"2026-11-30T11:00:01Z","model":"m","version":2,"alias":null,"arm":"canary","entities":{"card":"2"},"request":{"amount":3},"features":{"x":2.0,"w":4.0},"missing":[],"outputs":{"p":{"no":0.5,"yes":0.5},"label":"fraud"},"latency_ms":0.25}"#,
        );
        let cols = columns(&[a, b]);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "request_id",
                "row",
                "time",
                "model",
                "version",
                "alias",
                "arm",
                "entity.card",
                "request.amount",
                "request.cat",
                "feature.x",
                "feature.y",
                "output.p.no",
                "output.p.yes",
                "output.label",
                "feature.w",
                "missing_features",
                "latency_ms"
            ]
        );
        let by = |n: &str| &cols.iter().find(|c| c.name == n).expect("column").data;
        assert_eq!(by("feature.w"), &ColumnData::F64(vec![None, Some(4.0)]));
        assert_eq!(by("feature.y"), &ColumnData::F64(vec![None, None]));
        assert_eq!(by("request.cat"), &ColumnData::Str(vec![Some("food".into()), None]));
        // A label that is a number in one version and text in another is text.
        assert_eq!(by("output.label"), &ColumnData::Str(vec![Some("1".into()), Some("fraud".into())]));
        assert_eq!(by("alias"), &ColumnData::Str(vec![Some("production".into()), None]));
        assert_eq!(by("missing_features"), &ColumnData::Str(vec![Some("y,z".into()), Some(String::new())]));
        assert_eq!(
            by("time"),
            &ColumnData::Timestamp(vec![Some(1_796_036_400_000_000), Some(1_796_036_401_000_000)])
        );
    }

    #[test]
    fn filters_by_model_version_and_time() {
        let r = record(r#"{"time":"2026-11-30T11:00:00Z","model":"m","version":2}"#);
        let t = 1_796_036_400_000_000;
        assert!(Filter::default().keeps(&r));
        assert!(
            Filter { model: Some("m".into()), version: Some(2), since_us: Some(t), until_us: Some(t + 1) }
                .keeps(&r)
        );
        assert!(!Filter { until_us: Some(t), ..Filter::default() }.keeps(&r));
        assert!(!Filter { version: Some(1), ..Filter::default() }.keeps(&r));
        assert!(!Filter { model: Some("n".into()), ..Filter::default() }.keeps(&r));
        assert_eq!(parse_bound("1796036400").expect("seconds"), t);
        assert_eq!(parse_bound("2026-11-30T11:00:00Z").expect("rfc 3339"), t);
    }
}
