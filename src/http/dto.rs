//! JSON bodies of the v1 predict API and their conversion to and from the core's types.
//! Bodies are parsed from bytes by hand so every problem names its field.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::error::ApiError;
pub use super::fast_decode::parse_predict_fast;
use crate::Error;
use crate::features::{DType, Value as FeatureValue};
use crate::predict::{
    GroupReport, OutputValue, PredictRequest, PredictResponse, PredictRow, RequestValue, RowPrediction,
};

const TOP_LEVEL: &str = "entities, features, rows, return_features";

/// Parses `{"entities", "features"}` or `{"rows": [...]}` (+ `return_features`).
///
/// Two paths give one answer. [`parse_predict_fast`] decodes the usual body straight into
/// the core's types; on anything else (an error to report, a duplicate key, a value of the
/// wrong kind, a large object) it gives up and [`parse_predict_checked`], which reads the
/// body as a `serde_json::Value`, decides and names the field. Both accept the same bodies
/// with the same result (a fuzz test holds them to it).
pub fn parse_predict(body: &[u8]) -> Result<PredictRequest, ApiError> {
    match parse_predict_fast(body) {
        Some(request) => Ok(request),
        None => parse_predict_checked(body),
    }
}

/// The checked path of [`parse_predict`]: every body, every error named.
pub fn parse_predict_checked(body: &[u8]) -> Result<PredictRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {e}"))
    })?;
    let Value::Object(mut object) = value else {
        return Err(Error::invalid("body", format!("expected a JSON object, got {}", kind(&value))).into());
    };
    if let Some(key) = object.keys().find(|k| !TOP_LEVEL.split(", ").any(|t| t == k.as_str())) {
        return Err(
            Error::invalid(key.clone(), format!("unknown field (expected one of: {TOP_LEVEL})")).into()
        );
    }
    let return_features = match object.remove("return_features") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(
                Error::invalid("return_features", format!("expected a bool, got {}", kind(&other))).into()
            );
        }
    };
    match object.remove("rows") {
        Some(rows) => {
            if object.contains_key("entities") || object.contains_key("features") {
                return Err(
                    Error::invalid("rows", "send either `rows` or `entities`/`features`, not both").into()
                );
            }
            let Value::Array(rows) = rows else {
                return Err(Error::invalid("rows", format!("expected an array, got {}", kind(&rows))).into());
            };
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(i, row)| match row {
                    Value::Object(mut row) => {
                        let path = format!("rows[{i}].");
                        if let Some(key) = row.keys().find(|k| *k != "entities" && *k != "features") {
                            let message = "unknown field (expected entities, features)";
                            return Err(Error::invalid(format!("{path}{key}"), message));
                        }
                        parse_row(row.remove("entities"), row.remove("features"), &path)
                    }
                    other => Err(Error::invalid(
                        format!("rows[{i}]"),
                        format!("expected an object, got {}", kind(&other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PredictRequest { rows, batch: true, return_features, timeout: None, request_id: None })
        }
        None => {
            let row = parse_row(object.remove("entities"), object.remove("features"), "")?;
            Ok(PredictRequest {
                rows: vec![row],
                batch: false,
                return_features,
                timeout: None,
                request_id: None,
            })
        }
    }
}

fn parse_row(entities: Option<Value>, features: Option<Value>, path: &str) -> Result<PredictRow, Error> {
    let entities = match entities {
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s,
                    // Integral IDs are accepted as numbers, as most clients send them.
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    other => {
                        let message = format!("expected a string or an integer, got {}", kind(&other));
                        return Err(Error::invalid(format!("{path}entities.{k}"), message));
                    }
                };
                Ok((k, value))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(Error::invalid(
                format!("{path}entities"),
                format!("expected an object, got {}", kind(&other)),
            ));
        }
    };
    let features = match features {
        Some(Value::Object(map)) => map.into_iter().map(|(k, v)| (k, RequestValue::from(v))).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(Error::invalid(
                format!("{path}features"),
                format!("expected an object, got {}", kind(&other)),
            ));
        }
    };
    Ok(PredictRow { entities, features })
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// NaN and infinities are not JSON: they go out as null.
#[derive(Serialize)]
#[serde(untagged)]
enum Number {
    Finite(f64),
    Null(Option<()>),
}

fn number(v: f64) -> Number {
    if v.is_finite() { Number::Finite(v) } else { Number::Null(None) }
}

/// `{"<group>": {"status", "event_timestamp", "values": {...}}}`: stored values typed as
/// declared (bools as booleans, ints as integers), null where nothing valid is stored.
fn groups_json(groups: &[GroupReport]) -> Map<String, Value> {
    let value = |dtype: DType, v: &Option<FeatureValue>| match (dtype, v) {
        (_, None) => Value::Null,
        (DType::Bool, Some(FeatureValue::Num(n))) => Value::Bool(*n != 0.0),
        (DType::Int, Some(FeatureValue::Num(n))) => Value::from(*n as i64),
        (_, Some(FeatureValue::Num(n))) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        (_, Some(FeatureValue::Str(s))) => Value::String(s.clone()),
    };
    groups
        .iter()
        .map(|g| {
            let values: Map<String, Value> =
                g.values.iter().map(|(name, dtype, v)| (name.to_string(), value(*dtype, v))).collect();
            let mut body = Map::new();
            body.insert("status".into(), Value::String(g.status.into()));
            body.insert(
                "event_timestamp".into(),
                g.event_time.map_or(Value::Null, |t| Value::String(t.rfc3339())),
            );
            body.insert("values".into(), Value::Object(values));
            (g.group.to_string(), Value::Object(body))
        })
        .collect()
}

/// One output value as JSON.
struct Output<'a>(&'a OutputValue);

impl Serialize for Output<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            OutputValue::Int(i) => serializer.serialize_i64(*i),
            OutputValue::Num(f) => number(*f).serialize(serializer),
            OutputValue::Str(s) => serializer.serialize_str(s),
            OutputValue::List(l) => serializer.collect_seq(l.iter().map(|f| number(*f))),
            // Through a JSON object, as before: class labels written twice keep one key.
            OutputValue::Map(m) => {
                let object: Map<String, Value> = m
                    .iter()
                    .map(|(k, f)| {
                        (k.clone(), serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number))
                    })
                    .collect();
                object.serialize(serializer)
            }
        }
    }
}

/// `(name, value)` pairs as a JSON object in their order, each value written as the
/// function makes it.
struct Pairs<'a, V, T>(&'a [(String, V)], fn(&'a V) -> T);

impl<V, T: Serialize> Serialize for Pairs<'_, V, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &(self.1)(v))?;
        }
        map.end()
    }
}

/// One row's fields, written into the map that holds them (the answer itself for a single
/// request, an element of `predictions` for a batch).
fn row_fields<M: SerializeMap>(map: &mut M, row: &RowPrediction) -> Result<(), M::Error> {
    map.serialize_entry("outputs", &Pairs(&row.outputs, Output))?;
    let missing: Vec<&str> = row.missing_features.iter().map(|s| &**s).collect();
    map.serialize_entry("missing_features", &missing)?;
    if let Some(features) = &row.features {
        map.serialize_entry("features", &Pairs(features, |v: &f64| number(*v)))?;
    }
    if let Some(groups) = &row.groups {
        map.serialize_entry("groups", &groups_json(groups))?;
    }
    Ok(())
}

struct RowBody<'a>(&'a RowPrediction);

impl Serialize for RowBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        row_fields(&mut map, self.0)?;
        map.end()
    }
}

/// The JSON answer ([`render_predict`]), written straight from the core's response.
pub struct Rendered<'a> {
    response: &'a PredictResponse,
    batch: bool,
}

impl Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.response;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", &response.model)?;
        map.serialize_entry("version", &response.version)?;
        if self.batch {
            map.serialize_entry("predictions", &response.rows.iter().map(RowBody).collect::<Vec<_>>())?;
        } else if let Some(row) = response.rows.first() {
            row_fields(&mut map, row)?;
        }
        map.end()
    }
}

/// The JSON answer: the fields of the one row for a single request, `predictions` for a
/// batch.
pub fn render_predict(response: &PredictResponse, batch: bool) -> Rendered<'_> {
    Rendered { response, batch }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_batch_forms() {
        let single = parse_predict(br#"{"entities": {"cc_num": 42}, "features": {"amount": 1.5, "c": "x"}}"#)
            .expect("valid");
        assert!(!single.batch);
        assert_eq!(single.rows[0].entities, vec![("cc_num".to_string(), "42".to_string())]);
        assert_eq!(single.rows[0].features[0], ("amount".to_string(), RequestValue::Num(1.5)));

        let batch =
            parse_predict(br#"{"rows": [{"entities": {"cc_num": "1"}}, {"entities": {"cc_num": "2"}}]}"#)
                .expect("valid");
        assert!(batch.batch);
        assert_eq!(batch.rows.len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        let err = |body: &str| parse_predict(body.as_bytes()).expect_err("invalid").body;
        assert_eq!(err("{").code, "malformed_json");
        assert_eq!(err(r#"{"entity": {}}"#).field.as_deref(), Some("entity"));
        assert_eq!(err(r#"{"entities": {"cc_num": 1.5}}"#).field.as_deref(), Some("entities.cc_num"));
        assert_eq!(err(r#"{"rows": [{"entities": []}]}"#).field.as_deref(), Some("rows[0].entities"));
        assert_eq!(err(r#"{"rows": [1]}"#).field.as_deref(), Some("rows[0]"));
        assert_eq!(err(r#"[1]"#).field.as_deref(), Some("body"));
        assert_eq!(err(r#"{"return_features": 1}"#).field.as_deref(), Some("return_features"));
    }

    /// The answer's bytes: field order, numbers, non-finite values as null, every output
    /// kind, the input vector and the group reports.
    #[test]
    fn answers_are_written_field_by_field() {
        let row = |missing: &[&str], features| RowPrediction {
            outputs: vec![
                ("label".into(), OutputValue::Int(-3)),
                ("p".into(), OutputValue::Num(0.25)),
                ("nan".into(), OutputValue::Num(f64::NAN)),
                ("s".into(), OutputValue::Str("a\"b".into())),
                ("l".into(), OutputValue::List(vec![1.0, f64::INFINITY, 1e-7])),
                (
                    "m".into(),
                    OutputValue::Map(vec![("0".into(), 0.5), ("1".into(), 0.25), ("0".into(), 0.75)]),
                ),
            ],
            missing_features: missing.iter().map(|m| std::sync::Arc::from(*m)).collect(),
            features,
            groups: None,
        };
        let response = PredictResponse {
            model: "fraud".into(),
            version: 7,
            request_id: "r".into(),
            rows: vec![
                row(&["x", "y"], Some(vec![("a".into(), 1.5), ("b".into(), f64::NAN)])),
                row(&[], None),
            ],
        };
        let outputs = r#""outputs":{"label":-3,"p":0.25,"nan":null,"s":"a\"b","l":[1.0,null,1e-7],"m":{"0":0.75,"1":0.25}}"#;
        let single = serde_json::to_string(&render_predict(&response, false)).expect("json");
        assert_eq!(
            single,
            format!(
                r#"{{"model":"fraud","version":7,{outputs},"missing_features":["x","y"],"features":{{"a":1.5,"b":null}}}}"#
            )
        );
        let batch = serde_json::to_string(&render_predict(&response, true)).expect("json");
        assert_eq!(
            batch,
            format!(
                r#"{{"model":"fraud","version":7,"predictions":[{{{outputs},"missing_features":["x","y"],"features":{{"a":1.5,"b":null}}}},{{{outputs},"missing_features":[]}}]}}"#
            )
        );
        let mut grouped = response;
        grouped.rows[1].groups = Some(vec![GroupReport {
            group: "g".into(),
            status: "found",
            event_time: None,
            values: vec![
                ("n".into(), DType::Int, Some(FeatureValue::Num(3.0))),
                ("z".into(), DType::Float, None),
            ],
        }]);
        let batch = serde_json::to_string(&render_predict(&grouped, true)).expect("json");
        assert!(
            batch.ends_with(
                r#""missing_features":[],"groups":{"g":{"status":"found","event_timestamp":null,"values":{"n":3,"z":null}}}}]}"#
            ),
            "{batch}"
        );
    }
}
