//! The fast path of the v1 predict body ([`super::dto::parse_predict`]): the usual body
//! decoded straight into the core's types, with no `serde_json::Value` tree in between (a
//! map, a string and a number allocated per field, then thrown away). It never reports an
//! error: on anything it does not take as it is, it answers `None` and the checked path
//! decides, so the rules and the messages stay in one place.
//!
//! It gives up on: any syntax or kind error, an unknown field, `rows` beside
//! `entities`/`features`, a key twice in one object, an object of more than
//! [`MAX_FAST_KEYS`] keys (checking duplicates stays cheap), an array or object as a
//! feature value.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::features::RequestValue;
use crate::predict::{PredictRequest, PredictRow};

/// Larger objects go to the checked path.
const MAX_FAST_KEYS: usize = 32;

/// The body as a [`PredictRequest`], or `None`: the checked path decides.
pub fn parse_predict_fast(body: &[u8]) -> Option<PredictRequest> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request = de.deserialize_map(BodyVisitor).ok()?;
    de.end().ok()?;
    Some(request)
}

/// Any error: the value is not one the fast path takes.
fn give_up<E: de::Error>() -> E {
    E::custom("left to the checked path")
}

/// A field name of the body or of a row.
enum Field {
    Entities,
    Features,
    Rows,
    ReturnFeatures,
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        match v {
            "entities" => Ok(Field::Entities),
            "features" => Ok(Field::Features),
            "rows" => Ok(Field::Rows),
            "return_features" => Ok(Field::ReturnFeatures),
            _ => Err(give_up()),
        }
    }
}

/// Sets a field once; a second time gives up (the checked path keeps the last).
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(give_up());
    }
    *slot = Some(value);
    Ok(())
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = PredictRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a predict body")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PredictRequest, A::Error> {
        let (mut entities, mut features, mut rows, mut return_features) = (None, None, None, None);
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            match field {
                Field::Entities => once(&mut entities, map.next_value_seed(Pairs(EntityValue))?)?,
                Field::Features => once(&mut features, map.next_value_seed(Pairs(FeatureValue))?)?,
                Field::Rows => once(&mut rows, map.next_value_seed(Rows)?)?,
                Field::ReturnFeatures => once(&mut return_features, map.next_value::<Option<bool>>()?)?,
            }
        }
        let return_features = return_features.flatten().unwrap_or(false);
        let request =
            |rows, batch| PredictRequest { rows, batch, return_features, timeout: None, request_id: None };
        match rows {
            Some(_) if entities.is_some() || features.is_some() => Err(give_up()),
            Some(rows) => Ok(request(rows, true)),
            None => {
                let row = PredictRow {
                    entities: entities.unwrap_or_default(),
                    features: features.unwrap_or_default(),
                };
                Ok(request(vec![row], false))
            }
        }
    }
}

/// `rows`: an array of row objects.
struct Rows;

impl<'de> DeserializeSeed<'de> for Rows {
    type Value = Vec<PredictRow>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows {
    type Value = Vec<PredictRow>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(row) = seq.next_element_seed(Row)? {
            rows.push(row);
        }
        Ok(rows)
    }
}

/// One element of `rows`: an object of `entities` and `features`.
struct Row;

impl<'de> DeserializeSeed<'de> for Row {
    type Value = PredictRow;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row {
    type Value = PredictRow;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PredictRow, A::Error> {
        let (mut entities, mut features) = (None, None);
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            match field {
                Field::Entities => once(&mut entities, map.next_value_seed(Pairs(EntityValue))?)?,
                Field::Features => once(&mut features, map.next_value_seed(Pairs(FeatureValue))?)?,
                Field::Rows | Field::ReturnFeatures => return Err(give_up()),
            }
        }
        Ok(PredictRow { entities: entities.unwrap_or_default(), features: features.unwrap_or_default() })
    }
}

/// An object of `name: value` in its written order (null: none), each value read by `V`.
struct Pairs<V>(V);

impl<'de, V: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Pairs<V> {
    type Value = Vec<(String, V::Value)>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, V: DeserializeSeed<'de> + Copy> Visitor<'de> for Pairs<V> {
    type Value = Vec<(String, V::Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(String, V::Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if pairs.len() == MAX_FAST_KEYS || pairs.iter().any(|(k, _)| *k == key) {
                return Err(give_up());
            }
            let value = map.next_value_seed(self.0)?;
            pairs.push((key, value));
        }
        Ok(pairs)
    }
}

/// An entity ID: a string, or an integer written as one.
#[derive(Clone, Copy)]
struct EntityValue;

impl<'de> DeserializeSeed<'de> for EntityValue {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for EntityValue {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A request-time value: null, a bool, a number or a string.
#[derive(Clone, Copy)]
struct FeatureValue;

impl<'de> DeserializeSeed<'de> for FeatureValue {
    type Value = RequestValue;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<RequestValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for FeatureValue {
    type Value = RequestValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, a bool, a number or a string")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RequestValue, E> {
        Ok(RequestValue::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RequestValue, E> {
        Ok(RequestValue::Bool(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RequestValue, E> {
        Ok(RequestValue::Num(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RequestValue, E> {
        Ok(RequestValue::Num(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RequestValue, E> {
        Ok(RequestValue::Num(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RequestValue, E> {
        Ok(RequestValue::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RequestValue, E> {
        Ok(RequestValue::Str(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::dto::parse_predict_checked;

    /// Every body the fast path takes, it takes as the checked path does; the others it
    /// leaves to it.
    #[test]
    fn the_fast_path_agrees_with_the_checked_one_or_steps_aside() {
        let taken = [
            r#"{"entities": {"cc_num": 42}, "features": {"amount": 1.5, "c": "x", "b": true, "n": null}}"#,
            r#"{"entities": {"cc_num": "4111"}, "return_features": true}"#,
            r#"{"features": {"amount": -3, "big": 18446744073709551615, "e": 1e300}, "return_features": null}"#,
            r#"{"rows": [{"entities": {"cc_num": "1"}}, {"features": {"x": 2}}, {}], "return_features": false}"#,
            r#"{"entities": null, "features": null}"#,
            r#"{"rows": []}"#,
            r#"{}"#,
            r#" {"entities": {"k\u00e9y": "v\"q"}} "#,
            r#"{"entities": {"cc_num": -7}}"#,
        ];
        for body in taken {
            let fast = parse_predict_fast(body.as_bytes());
            let checked = parse_predict_checked(body.as_bytes()).expect("valid");
            assert_eq!(fast.as_ref(), Some(&checked), "{body}");
        }
        let many: String = (0..40).map(|i| format!("\"f{i}\": {i}")).collect::<Vec<_>>().join(", ");
        let many = format!("{{\"features\": {{{many}}}}}");
        let left = [
            r#"{"entities": {"cc_num": 1.5}}"#,
            r#"{"entities": {"a": "1", "a": "2"}}"#,
            r#"{"features": {"x": [1]}}"#,
            r#"{"features": {"x": {"y": 1}}}"#,
            r#"{"rows": [1]}"#,
            r#"{"rows": [{"entities": {}}], "entities": {}}"#,
            r#"{"entity": {}}"#,
            r#"{"return_features": 1}"#,
            r#"{"return_features": true, "return_features": false}"#,
            r#"{"rows": [{"rows": []}]}"#,
            r#"{"entities": {}} x"#,
            r#"[1]"#,
            r#"{"#,
            many.as_str(),
        ];
        for body in left {
            assert_eq!(parse_predict_fast(body.as_bytes()), None, "{body}");
        }
        // A large object the fast path leaves is still taken by the checked one.
        assert_eq!(parse_predict_checked(many.as_bytes()).expect("valid").rows[0].features.len(), 40);
    }
}
