//! JSON bodies of the v1 predict API and their conversion to and from the core's types.
//! Bodies are parsed from bytes by hand so every problem names its field.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::Error;
use crate::features::{DType, Value as FeatureValue};
use crate::predict::{
    GroupReport, OutputValue, PredictRequest, PredictResponse, PredictRow, RequestValue, RowPrediction,
};

const TOP_LEVEL: &str = "entities, features, rows, return_features";

/// Parses `{"entities", "features"}` or `{"rows": [...]}` (+ `return_features`).
pub fn parse_predict(body: &[u8]) -> Result<PredictRequest, ApiError> {
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

/// Serializes `[(name, value)]` as a JSON object, keeping the declared order.
struct Ordered<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for Ordered<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
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

#[derive(Serialize)]
struct RowBody<'a> {
    outputs: Map<String, Value>,
    missing_features: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<Ordered<'a, Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Map<String, Value>>,
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

fn row_body(row: &RowPrediction) -> (Map<String, Value>, Vec<&str>) {
    let outputs = row.outputs.iter().map(|(k, v)| (k.clone(), output_json(v))).collect();
    (outputs, row.missing_features.iter().map(|s| &**s).collect())
}

fn output_json(v: &OutputValue) -> Value {
    let num = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match v {
        OutputValue::Int(i) => Value::from(*i),
        OutputValue::Num(f) => num(*f),
        OutputValue::Str(s) => Value::String(s.clone()),
        OutputValue::List(l) => Value::Array(l.iter().map(|f| num(*f)).collect()),
        OutputValue::Map(m) => Value::Object(m.iter().map(|(k, f)| (k.clone(), num(*f))).collect()),
    }
}

/// The JSON answer: the fields of the one row for a single request, `predictions` for a
/// batch.
pub fn render_predict(response: &PredictResponse, batch: bool) -> Value {
    let rows: Vec<Value> = response
        .rows
        .iter()
        .map(|row| {
            let (outputs, missing_features) = row_body(row);
            let features: Option<Vec<(String, Number)>> =
                row.features.as_ref().map(|f| f.iter().map(|(k, v)| (k.clone(), number(*v))).collect());
            let groups = row.groups.as_deref().map(groups_json);
            let body =
                RowBody { outputs, missing_features, features: features.as_deref().map(Ordered), groups };
            serde_json::to_value(&body).unwrap_or(Value::Null)
        })
        .collect();
    let mut out = Map::new();
    out.insert("model".into(), Value::String(response.model.clone()));
    out.insert("version".into(), Value::from(response.version));
    if batch {
        out.insert("predictions".into(), Value::Array(rows));
    } else if let Some(Value::Object(row)) = rows.into_iter().next() {
        out.extend(row);
    }
    Value::Object(out)
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
}
