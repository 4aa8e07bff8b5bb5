//! Feature dtypes and how values of each are read from requests and from stored strings.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Float,
    Int,
    Bool,
    String,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::Float => "float",
            DType::Int => "int",
            DType::Bool => "bool",
            DType::String => "string",
        })
    }
}

/// A typed feature value. Bools are numbers (1.0 / 0.0) from here on: that is how they
/// reach expressions and the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Str(String),
}

/// A value as a client sent it, before it meets the feature's dtype. Transports convert
/// their own representation (JSON, protobuf) into this.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestValue {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// An array or object: never a valid feature value; the name is for the message.
    Other(&'static str),
}

/// A JSON value as a request value: the one rule for every JSON reader (the `/v1` API and
/// JSON-lines files offline).
impl From<serde_json::Value> for RequestValue {
    fn from(v: serde_json::Value) -> RequestValue {
        use serde_json::Value as Json;
        match v {
            Json::Null => RequestValue::Null,
            Json::Bool(b) => RequestValue::Bool(b),
            Json::Number(n) => {
                n.as_f64().map_or(RequestValue::Other("a number out of range"), RequestValue::Num)
            }
            Json::String(s) => RequestValue::Str(s),
            Json::Array(_) => RequestValue::Other("an array"),
            Json::Object(_) => RequestValue::Other("an object"),
        }
    }
}

impl fmt::Display for RequestValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestValue::Null => f.write_str("null"),
            RequestValue::Bool(b) => write!(f, "{b}"),
            RequestValue::Num(n) => write!(f, "{n}"),
            RequestValue::Str(s) => write!(f, "{s:?}"),
            RequestValue::Other(kind) => f.write_str(kind),
        }
    }
}

/// Largest integer an f64 holds exactly; `int` features beyond it would silently round.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

impl DType {
    fn article(self) -> &'static str {
        match self {
            DType::Float => "a number",
            DType::Int => "an integer",
            DType::Bool => "a bool",
            DType::String => "a string",
        }
    }

    /// Checks a request value against the dtype. `Null` is handled by the caller (it
    /// means "missing").
    pub fn from_request(self, value: &RequestValue) -> Result<Value, String> {
        let mismatch = || format!("expected {}, got {value}", self.article());
        match (self, value) {
            (DType::Float, RequestValue::Num(n)) => Ok(Value::Num(*n)),
            (DType::Int, RequestValue::Num(n)) if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INT => {
                Ok(Value::Num(*n))
            }
            (DType::Bool, RequestValue::Bool(b)) => Ok(Value::Num(f64::from(u8::from(*b)))),
            (DType::String, RequestValue::Str(s)) => Ok(Value::Str(s.clone())),
            _ => Err(mismatch()),
        }
    }

    /// Parses a value as the online store and feature files hold it (decimal/UTF-8).
    pub fn parse_stored(self, raw: &str) -> Result<Value, String> {
        match self {
            DType::Float => match raw.trim().parse::<f64>() {
                Ok(n) => Ok(Value::Num(n)),
                Err(_) => Err(format!("expected a number, got {raw:?}")),
            },
            DType::Int => match raw.trim().parse::<i64>() {
                Ok(n) => Ok(Value::Num(n as f64)),
                // Writers such as pandas emit integral floats ("3.0") for int columns.
                Err(_) => match raw.trim().parse::<f64>() {
                    Ok(n) if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INT => Ok(Value::Num(n)),
                    _ => Err(format!("expected an integer, got {raw:?}")),
                },
            },
            DType::Bool => match raw.trim() {
                "true" | "True" | "TRUE" | "1" => Ok(Value::Num(1.0)),
                "false" | "False" | "FALSE" | "0" => Ok(Value::Num(0.0)),
                _ => Err(format!("expected a bool, got {raw:?}")),
            },
            DType::String => Ok(Value::Str(raw.to_string())),
        }
    }
}

/// A `default = ...` in a feature view: TOML gives us a bool, an integer, a float or a
/// string, checked against the dtype when the view compiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl DefaultValue {
    pub fn to_value(&self, dtype: DType) -> Result<Value, String> {
        let request = match self {
            DefaultValue::Bool(b) => RequestValue::Bool(*b),
            DefaultValue::Int(i) => RequestValue::Num(*i as f64),
            DefaultValue::Float(f) => RequestValue::Num(*f),
            DefaultValue::Str(s) => RequestValue::Str(s.clone()),
        };
        dtype.from_request(&request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_are_checked_against_dtype() {
        assert_eq!(DType::Float.from_request(&RequestValue::Num(1.5)), Ok(Value::Num(1.5)));
        assert_eq!(
            DType::Float.from_request(&RequestValue::Str("abc".into())),
            Err("expected a number, got \"abc\"".into())
        );
        assert_eq!(
            DType::Int.from_request(&RequestValue::Num(1.5)),
            Err("expected an integer, got 1.5".into())
        );
        assert_eq!(DType::Bool.from_request(&RequestValue::Bool(true)), Ok(Value::Num(1.0)));
        assert_eq!(
            DType::String.from_request(&RequestValue::Other("an array")),
            Err("expected a string, got an array".into())
        );
    }

    #[test]
    fn stored_values_parse() {
        assert_eq!(DType::Float.parse_stored(" 2.5"), Ok(Value::Num(2.5)));
        assert!(matches!(DType::Float.parse_stored("nan"), Ok(Value::Num(n)) if n.is_nan()));
        assert_eq!(DType::Int.parse_stored("3.0"), Ok(Value::Num(3.0)));
        assert!(DType::Int.parse_stored("3.5").is_err());
        assert_eq!(DType::Bool.parse_stored("0"), Ok(Value::Num(0.0)));
        assert!(DType::Bool.parse_stored("yes").is_err());
        assert_eq!(DType::String.parse_stored("x y"), Ok(Value::Str("x y".into())));
    }

    #[test]
    fn defaults_follow_dtype() {
        assert_eq!(DefaultValue::Int(0).to_value(DType::Float), Ok(Value::Num(0.0)));
        assert!(DefaultValue::Str("a".into()).to_value(DType::Float).is_err());
    }
}
