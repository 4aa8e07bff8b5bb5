//! `fti-serve transform` computes exactly what the server computes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{Redis, Server, golden, materialize_example, redis_config};
use serde_json::{Value, json};

/// The example's feature-file rows by card, as named cells.
fn feature_rows(group: &str) -> HashMap<String, Vec<(String, String)>> {
    let mut reader = csv::Reader::from_path(common::feature_file(group, "csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), header.iter().cloned().zip(r.iter().map(str::to_string)).skip(1).collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_cli_equals_server_side_features() {
    let redis = Redis::start();
    materialize_example(&redis).await;
    let server = Server::start(&redis_config(&redis)).await;
    let groups: Vec<_> = common::GROUPS.iter().map(|g| feature_rows(g)).collect();
    let dir = tempfile::tempdir().unwrap();

    for version in [1u64, 2] {
        // One JSONL row per golden request: its card's stored features + request values.
        let goldens = golden("fraud", version);
        let input = dir.path().join(format!("rows_v{version}.jsonl"));
        let mut lines = String::new();
        for g in &goldens {
            let card = g.request["entities"]["cc_num"].as_str().unwrap();
            let mut row = serde_json::Map::new();
            row.insert("cc_num".into(), json!(card));
            for group in &groups {
                for (name, cell) in group.get(card).into_iter().flatten() {
                    row.insert(name.clone(), if cell.is_empty() { Value::Null } else { json!(cell) });
                }
            }
            for (name, value) in g.request["features"].as_object().unwrap() {
                row.insert(name.clone(), value.clone());
            }
            lines.push_str(&Value::Object(row).to_string());
            lines.push('\n');
        }
        std::fs::write(&input, lines).unwrap();
        let output = dir.path().join(format!("out_v{version}.csv"));
        let manifest = common::repo().join(format!("models/fraud/{version}/manifest.toml"));
        let status = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
            .args(["transform", "--model-input", "--keep", "cc_num", "--feature-view"])
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .status()
            .unwrap();
        assert!(status.success());

        let mut reader = csv::Reader::from_path(&output).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), goldens.len());
        for (i, (record, g)) in records.iter().zip(&goldens).enumerate() {
            let mut request = g.request.clone();
            request["return_features"] = json!(true);
            let (status, body) =
                server.post(&format!("/v1/models/fraud/versions/{version}/predict"), &request).await;
            assert_eq!(status, 200, "{body}");
            let served = body["features"].as_object().unwrap();
            assert_eq!(served.len(), header.len() - 1);
            for (name, cell) in header.iter().zip(record.iter()).skip(1) {
                let cli: f64 = if cell.is_empty() { f64::NAN } else { cell.parse().unwrap() };
                let server_value = served[name].as_f64().unwrap_or(f64::NAN);
                let same = (cli.is_nan() && server_value.is_nan()) || cli == server_value;
                assert!(same, "v{version} row {i} {name}: cli {cell:?}, server {server_value}");
            }
        }
    }
}

#[test]
fn transform_cli_names_the_bad_cell() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    std::fs::write(
        &input,
        "cc_num,amount,lat,lon,ts\n1,10,59.3,18.0,1764000000\n2,abc,59.3,18.0,1764000000\n",
    )
    .unwrap();
    let manifest = common::repo().join("models/fraud/1/manifest.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .args(["transform", "--model-input", "--feature-view"])
        .arg(&manifest)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv row 2, column `amount`: expected a number"), "{stderr}");
}

/// One fill path: the same edge-case rows (missing entity under each `on_missing`
/// policy, missing fields, an empty string, a stored NaN, stored values of the wrong
/// type, a request value of the wrong type) give bit-identical input vectors, or the same
/// error, served (Redis) and offline (`fti-serve transform` over JSON lines holding what
/// Redis holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_and_transform_fill_edge_cases_alike() {
    let registry = common::registry_copy();
    // card_profile refuses a missing entity; card_activity defaults it.
    let manifest = registry.path().join("fraud/1/manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut m: toml::Table = toml::from_str(&text).unwrap();
    let groups = m["feature_view"]["groups"].as_array_mut().unwrap();
    let profile = groups.iter_mut().find(|g| g["name"].as_str() == Some("card_profile")).unwrap();
    profile.as_table_mut().unwrap().insert("on_missing".into(), "error".into());
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();

    let redis = Redis::start();
    // (group, card, stored fields)
    type Hash = Vec<(&'static str, &'static str)>;
    let stored: Vec<(&str, &str, Hash)> = vec![
        (
            "card_profile",
            "edge-a",
            vec![
                ("home_lat", "59.3"),
                ("home_lon", "18.0"),
                ("card_created_ts", "1700000000"),
                ("credit_limit", "NaN"),
            ],
        ),
        // Fields missing, a NaN, a value of the wrong type and an empty string.
        (
            "card_activity",
            "edge-a",
            vec![
                ("txn_count_1h", "2"),
                ("amount_avg_30d", "NaN"),
                ("amount_std_30d", "abc"),
                ("last_txn_ts", ""),
            ],
        ),
        // No card_activity at all for edge-b: defaults.
        ("card_profile", "edge-b", vec![("home_lat", "1.5"), ("credit_limit", "7000")]),
        // edge-c has activity but no profile: entity not found.
        ("card_activity", "edge-c", vec![("txn_count_24h", "9")]),
    ];
    let mut conn = redis.conn();
    for (group, card, fields) in &stored {
        let _: () =
            redis::cmd("HSET").arg(format!("fti:{group}:{card}")).arg(fields).query(&mut conn).unwrap();
    }
    let mut config = redis_config(&redis);
    config.registry.path = registry.path().to_path_buf();
    let server = Server::start(&config).await;

    let base = json!({"amount": 42.5, "lat": 59.33, "lon": 18.06, "ts": 1764000000});
    let with = |card: &str, extra: Value| {
        let mut features = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            features[k] = v.clone();
        }
        json!({"entities": {"cc_num": card}, "features": features})
    };
    let cases = [
        with("edge-a", json!({"merchant_category": ""})),
        with("edge-a", json!({"merchant_category": "grocery"})),
        with("edge-b", json!({"merchant_category": null})),
        with("edge-c", json!({})),
        with("edge-a", json!({"amount": "abc"})),
        with("edge-b", json!({"lat": null})),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut served_ok = 0;
    for (i, case) in cases.iter().enumerate() {
        let mut request = case.clone();
        request["return_features"] = json!(true);
        let (status, body) = server.post("/v1/models/fraud/versions/1/predict", &request).await;

        // The offline row: the request's values plus exactly what Redis holds for the card.
        let card = case["entities"]["cc_num"].as_str().unwrap();
        let mut row = case["features"].as_object().unwrap().clone();
        row.insert("cc_num".into(), json!(card));
        for (_, _, fields) in stored.iter().filter(|(_, c, _)| *c == card) {
            for (name, value) in fields {
                row.insert((*name).to_string(), json!(value));
            }
        }
        let input = dir.path().join(format!("row{i}.jsonl"));
        let output = dir.path().join(format!("out{i}.jsonl"));
        std::fs::write(&input, format!("{}\n", Value::Object(row))).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
            .args(["transform", "--model-input", "--feature-view"])
            .arg(registry.path().join("fraud/1/manifest.toml"))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if status == 200 {
            assert!(out.status.success(), "case {i}: served, but transform failed: {stderr}");
            served_ok += 1;
            let offline: Value =
                serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
            let served = body["features"].as_object().unwrap();
            assert_eq!(served.len(), offline.as_object().unwrap().len(), "case {i}");
            for (name, value) in served {
                // NaN travels as null in both.
                let bits = |v: &Value| v.as_f64().map(f64::to_bits);
                assert_eq!(
                    bits(value),
                    bits(&offline[name]),
                    "case {i} {name}: served {value}, offline {}",
                    offline[name]
                );
            }
        } else {
            assert!(!out.status.success(), "case {i}: served {status} {body}, but transform succeeded");
            let message = body["error"].as_str().unwrap();
            let message = message
                .split_once(": ")
                .filter(|_| body["code"] == "invalid_input")
                .map_or(message, |(_, m)| m);
            assert!(stderr.contains(message), "case {i}: served {message:?}, transform said {stderr}");
        }
    }
    // Both kinds of outcome were exercised: three rows serve, three are refused.
    assert_eq!(served_ok, 3);
}
