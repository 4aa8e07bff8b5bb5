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
