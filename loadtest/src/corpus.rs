//! The request corpus (JSONL) and the entity IDs drawn into it.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::cli::{Plan, TargetKind};

/// How entity IDs are chosen for each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keys {
    /// As written in the corpus.
    Corpus,
    Uniform,
    /// Zipf with exponent `s`: the k-th ID of the list is drawn in proportion to 1/k^s.
    Zipf(f64),
}

impl FromStr for Keys {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "corpus" => Ok(Self::Corpus),
            "uniform" => Ok(Self::Uniform),
            "zipf" => Ok(Self::Zipf(1.0)),
            _ => {
                let s = text
                    .strip_prefix("zipf:")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0)
                    .ok_or_else(|| {
                        anyhow!("expected corpus, uniform, zipf or zipf:S with 0 < S <= 10, got {text:?}")
                    })?;
                Ok(Self::Zipf(s))
            }
        }
    }
}

impl std::fmt::Display for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Corpus => f.write_str("corpus"),
            Self::Uniform => f.write_str("uniform"),
            Self::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// Draws entity IDs, uniformly or by a Zipf law over the list's order.
pub struct Draw {
    ids: Vec<String>,
    /// Cumulative probabilities (Zipf); `None` draws uniformly.
    cdf: Option<Vec<f64>>,
}

impl Draw {
    pub fn new(ids: Vec<String>, keys: Keys) -> Result<Self> {
        if ids.is_empty() {
            bail!("no entity IDs to draw from");
        }
        let cdf = match keys {
            Keys::Zipf(s) => {
                let mut total = 0.0;
                let mut cdf: Vec<f64> = (1..=ids.len())
                    .map(|k| {
                        total += (k as f64).powf(-s);
                        total
                    })
                    .collect();
                cdf.iter_mut().for_each(|c| *c /= total);
                Some(cdf)
            }
            Keys::Uniform | Keys::Corpus => None,
        };
        Ok(Self { ids, cdf })
    }

    pub fn sample(&self, rng: &mut fastrand::Rng) -> &str {
        let index = match &self.cdf {
            Some(cdf) => {
                let u = rng.f64();
                cdf.partition_point(|c| *c < u).min(self.ids.len() - 1)
            }
            None => rng.usize(..self.ids.len()),
        };
        &self.ids[index]
    }
}

/// Reads the corpus and returns the JSON bodies to send, in order: predict bodies for the
/// `http`/`grpc` targets, OIP infer bodies for `oip`/`oip-grpc`. With `--keys uniform|zipf`
/// the corpus rows are cycled through `--ring` times with a drawn entity ID each.
pub fn bodies(plan: &Plan) -> Result<Vec<Value>> {
    if plan.target == TargetKind::Get {
        return Ok(vec![Value::Null]);
    }
    let text = std::fs::read_to_string(&plan.corpus)
        .with_context(|| format!("--corpus: cannot read {}", plan.corpus.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("--corpus {}: line {}: not JSON", plan.corpus.display(), n + 1))?;
        let row = if plan.target == TargetKind::Post {
            Ok(value)
        } else if plan.target.takes_tensors() {
            infer_body(value, &plan.input_name)
        } else {
            predict_body(value)
        }
        .with_context(|| format!("--corpus {}: line {}", plan.corpus.display(), n + 1))?;
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("--corpus {}: no requests in the file", plan.corpus.display());
    }
    if plan.keys == Keys::Corpus {
        return Ok(rows);
    }
    if plan.target.takes_tensors() {
        bail!("--keys: OIP targets send input tensors; entity draws apply to the http and grpc targets");
    }
    let key = entity_key(&rows[0], plan.entity_key.as_deref())?;
    let ids = match &plan.entities {
        Some(path) => read_ids(path, &key)?,
        None => corpus_ids(&rows, &key),
    };
    let draw = Draw::new(ids, plan.keys).context("--entities")?;
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    Ok((0..plan.ring.max(rows.len()))
        .map(|i| {
            let mut row = rows[i % rows.len()].clone();
            let slot = &mut row["entities"][key.as_str()];
            *slot = shaped_like(slot, draw.sample(&mut rng));
            row
        })
        .collect())
}

/// A drawn ID in the shape of the corpus value it replaces: a string stays a string, a
/// number a number (when the ID is one), a one-element list (Feast's `get-online-features`
/// entities) a one-element list.
fn shaped_like(old: &Value, id: &str) -> Value {
    match old {
        Value::Array(items) => Value::Array(vec![shaped_like(items.first().unwrap_or(&Value::Null), id)]),
        Value::Number(_) => {
            id.parse::<serde_json::Number>().map_or_else(|_| Value::String(id.to_owned()), Value::Number)
        }
        _ => Value::String(id.to_owned()),
    }
}

fn predict_body(line: Value) -> Result<Value> {
    let body = match line {
        Value::Object(mut map) if map.contains_key("request") => map.remove("request").unwrap_or_default(),
        other => other,
    };
    match &body {
        Value::Object(map) if map.contains_key("entities") || map.contains_key("features") => Ok(body),
        _ => Err(anyhow!(
            "expected a predict body with \"entities\" and/or \"features\" (or a golden record with \"request\")"
        )),
    }
}

fn infer_body(line: Value, input_name: &str) -> Result<Value> {
    if line.get("inputs").is_some() {
        return Ok(line);
    }
    let input = line.get("input").and_then(Value::as_array).ok_or_else(|| {
        anyhow!("expected an OIP infer body with \"inputs\" (or a golden record with \"input\")")
    })?;
    if input.iter().any(|v| !(v.is_number() || v.is_null())) {
        bail!("\"input\": expected numbers (or null for missing)");
    }
    Ok(json!({
        "inputs": [{"name": input_name, "shape": [1, input.len()], "datatype": "FP32", "data": input}]
    }))
}

fn entity_key(row: &Value, chosen: Option<&str>) -> Result<String> {
    let entities = row.get("entities").and_then(Value::as_object).map(Map::keys);
    match (chosen, entities) {
        (Some(key), _) => Ok(key.to_owned()),
        (None, Some(mut keys)) => match (keys.next(), keys.next()) {
            (Some(key), None) => Ok(key.clone()),
            (Some(_), Some(_)) => {
                bail!("--entity-key: the corpus rows have several entity keys; name the one to vary")
            }
            (None, _) => bail!("--keys: the corpus rows have no entity to vary"),
        },
        (None, None) => bail!("--keys: the corpus rows have no \"entities\" to vary"),
    }
}

fn corpus_ids(rows: &[Value], key: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for row in rows {
        if let Some(id) = row["entities"][key].as_str()
            && !ids.iter().any(|seen| seen == id)
        {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// One ID per line, or the column named `key` of a CSV file.
fn read_ids(path: &Path, key: &str) -> Result<Vec<String>> {
    let shown = path.display();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("--entities: cannot read {shown}"))?;
        let column = reader
            .headers()
            .with_context(|| format!("--entities {shown}"))?
            .iter()
            .position(|h| h == key)
            .ok_or_else(|| anyhow!("--entities {shown}: no column named {key:?}"))?;
        let mut ids = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("--entities {shown}: row {}", n + 2))?;
            if let Some(id) = record.get(column).filter(|id| !id.is_empty()) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--entities: cannot read {shown}"))?;
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_draws_favour_the_head_of_the_list_as_the_law_says() {
        let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let draw = Draw::new(ids, Keys::Zipf(1.0)).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 100];
        for _ in 0..200_000 {
            counts[draw.sample(&mut rng).parse::<usize>().unwrap()] += 1;
        }
        let harmonic: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        for k in [0usize, 1, 9] {
            let expected = 200_000.0 / ((k + 1) as f64 * harmonic);
            let got = f64::from(counts[k]);
            assert!((got - expected).abs() < 0.05 * expected, "rank {}: {got} vs {expected}", k + 1);
        }
    }

    #[test]
    fn uniform_draws_cover_the_list_evenly() {
        let ids: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let draw = Draw::new(ids, Keys::Uniform).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[draw.sample(&mut rng).parse::<usize>().unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| (9_000..11_000).contains(c)), "{counts:?}");
    }

    #[test]
    fn drawn_ids_keep_the_shape_of_the_corpus_value() {
        assert_eq!(shaped_like(&json!("4111"), "42"), json!("42"));
        assert_eq!(shaped_like(&json!(4111), "42"), json!(42));
        assert_eq!(shaped_like(&json!(4111), "card-7"), json!("card-7"));
        assert_eq!(shaped_like(&json!([4111]), "42"), json!([42]));
        assert_eq!(shaped_like(&json!(["a", "b"]), "c"), json!(["c"]));
    }

    #[test]
    fn keys_parse() {
        assert_eq!("zipf:1.2".parse::<Keys>().unwrap(), Keys::Zipf(1.2));
        assert_eq!("zipf".parse::<Keys>().unwrap(), Keys::Zipf(1.0));
        assert!("zipf:-1".parse::<Keys>().is_err());
        assert!("random".parse::<Keys>().is_err());
    }

    #[test]
    fn golden_records_become_bodies_for_either_kind_of_target() {
        let golden =
            json!({"request": {"entities": {"cc_num": "1"}, "features": {"amount": 3}}, "input": [1.5, 2]});
        assert_eq!(predict_body(golden.clone()).unwrap()["entities"]["cc_num"], "1");
        let infer = infer_body(golden, "input").unwrap();
        assert_eq!(infer["inputs"][0]["shape"], json!([1, 2]));
        assert!(predict_body(json!({"inputs": []})).is_err());
    }
}
