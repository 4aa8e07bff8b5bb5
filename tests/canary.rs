//! Canaries: an alias's second version taking a share of its traffic, at random or sticky
//! by entity; the operator's steps through the admin API and the CLI; every answer names
//! the version that served it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::{ADMIN_TOKEN, Server};
use fti_serve::app::App;
use fti_serve::predict::manage::{Assignment, MoveRequest, RolloutStep};
use fti_serve::predict::{PredictRequest, PredictRow, RequestValue};
use fti_serve::registry::Target;
use serde_json::{Value, json};

fn config(registry: &Path) -> fti_serve::config::Config {
    let mut config = common::example_config();
    config.registry.path = registry.to_path_buf();
    config.registry.watch = false;
    config.registry.keep_latest = 0;
    config.admin.token = Some(fti_serve::secret::Secret::new(ADMIN_TOKEN));
    config
}

fn request(card: &str) -> PredictRequest {
    PredictRequest {
        rows: vec![PredictRow {
            entities: vec![("cc_num".into(), card.into())],
            features: vec![
                ("amount".into(), RequestValue::Num(12.5)),
                ("lat".into(), RequestValue::Num(59.3)),
                ("lon".into(), RequestValue::Num(18.0)),
                ("ts".into(), RequestValue::Num(1_764_000_000.0)),
                ("merchant_category".into(), RequestValue::Str("online".into())),
            ],
        }],
        ..PredictRequest::default()
    }
}

fn card(i: usize) -> String {
    format!("4111{:012}", 1 + i % 500)
}

fn step_request(by: &str) -> MoveRequest {
    MoveRequest { alias: "production".into(), by: by.into(), reason: String::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_percent_canary_takes_five_percent_of_100k_requests() {
    let registry = common::registry_copy();
    let app = App::build(&config(registry.path())).await.unwrap();
    let p = &app.predictor;
    let start =
        RolloutStep::Canary { version: 1, weight: 0.05, assignment: Assignment::Random, sticky_key: None };
    p.rollout_step("fraud", start, step_request("test")).await.unwrap();
    let mut by_version: HashMap<u64, usize> = HashMap::new();
    const N: usize = 100_000;
    for i in 0..N {
        let response = p.predict("fraud", &Target::production(), request(&card(i))).await.unwrap();
        *by_version.entry(response.version).or_default() += 1;
    }
    let canary = by_version.get(&1).copied().unwrap_or(0) as f64 / N as f64;
    assert_eq!(by_version.values().sum::<usize>(), N);
    assert!((canary - 0.05).abs() <= 0.005, "canary share {canary:.4} ({by_version:?})");
    // A request for a version, not the alias, is never re-routed.
    for i in 0..200 {
        let response = p.predict("fraud", &Target::Version(2), request(&card(i))).await.unwrap();
        assert_eq!(response.version, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_assignment_gives_each_entity_one_version_on_every_replica() {
    let registry = common::registry_copy();
    let first = App::build(&config(registry.path())).await.unwrap();
    let start = RolloutStep::Canary {
        version: 1,
        weight: 0.3,
        assignment: Assignment::Sticky,
        sticky_key: Some("cc_num".into()),
    };
    first.predictor.rollout_step("fraud", start, step_request("test")).await.unwrap();
    // A second replica of the same registry, started after the canary.
    let second = App::build(&config(registry.path())).await.unwrap();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for round in 0..4 {
        for i in 0..500 {
            let card = card(i);
            let app = if (i + round) % 2 == 0 { &first } else { &second };
            let version =
                app.predictor.predict("fraud", &Target::production(), request(&card)).await.unwrap().version;
            let before = *seen.entry(card.clone()).or_insert(version);
            assert_eq!(before, version, "card {card} moved between versions");
        }
    }
    let canary = seen.values().filter(|&&v| v == 1).count() as f64 / seen.len() as f64;
    assert!((0.2..0.4).contains(&canary), "sticky share {canary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_start_reweight_promote_and_abort_a_canary() {
    let registry = common::registry_copy();
    common::add_broken_version(registry.path(), 1, 3);
    let server = Server::start(&config(registry.path())).await;
    let golden = &common::golden("fraud", 1)[0].request;

    // A version that does not validate never takes traffic.
    let (status, body) =
        server.admin("/v1/admin/models/fraud/rollout/canary", &json!({"version": 3, "weight": 0.05})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "version_refused");
    let (status, body) =
        server.admin("/v1/admin/models/fraud/rollout/canary", &json!({"weight": 0.05})).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("version")), "{body}");
    let (status, body) =
        server.admin("/v1/admin/models/fraud/rollout/canary", &json!({"version": 1, "weight": 1.0})).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("weight")), "{body}");

    let (status, body) = server
        .admin(
            "/v1/admin/models/fraud/rollout/canary",
            &json!({"version": 1, "weight": 0.05, "assignment": "sticky", "sticky_key": "cc_num"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rollout"]["canary"], 1);
    let (_, info) = server.get("/v1/models/fraud").await;
    assert_eq!(info["rollouts"]["production"]["canary"]["weight"], 0.05, "{info}");
    assert_eq!(info["rollouts"]["production"]["canary"]["assignment"], "sticky");

    let (status, body) =
        server.admin("/v1/admin/models/fraud/rollout/weight", &json!({"weight": 0.999})).await;
    assert_eq!(status, 200, "{body}");
    // Every answer names its version in the body and in a header.
    let mut versions = HashMap::new();
    for _ in 0..50 {
        let response =
            server.http.post(server.url("/v1/models/fraud/predict")).json(golden).send().await.unwrap();
        let header: u64 = response.headers()["x-model-version"].to_str().unwrap().parse().unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["version"], header);
        *versions.entry(header).or_insert(0) += 1;
    }
    assert_eq!(versions.len(), 1, "the golden's one card sticks to one version: {versions:?}");

    let (status, body) = server.admin("/v1/admin/models/fraud/rollout/promote", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["stable"].as_u64(), &body["rollout"]), (Some(1), &Value::Null));
    let (_, info) = server.get("/v1/models/fraud").await;
    assert_eq!(info["aliases"]["production"], 1);
    assert_eq!(info["rollouts"], json!({}));

    let (status, _) =
        server.admin("/v1/admin/models/fraud/rollout/canary", &json!({"version": 2, "weight": 0.5})).await;
    assert_eq!(status, 200);
    let (status, body) =
        server.admin("/v1/admin/models/fraud/rollout/abort", &json!({"reason": "p99"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.admin("/v1/admin/models/fraud/rollout/abort", &json!({})).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("canary")), "{body}");
    let (_, info) = server.get("/v1/models/fraud").await;
    assert_eq!((info["aliases"]["production"].as_u64(), &info["rollouts"]), (Some(1), &json!({})));

    let response = server
        .http
        .get(server.url("/v1/admin/models/fraud/history"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let history: Value = response.json().await.unwrap();
    let steps: Vec<(String, u64)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|m| m["action"] != "canary")
        .map(|m| (m["action"].as_str().unwrap().to_string(), m["to"].as_u64().unwrap()))
        .collect();
    let want = [("canary", 1), ("canary", 1), ("promote", 1), ("canary", 2), ("abort", 2)];
    assert_eq!(steps, want.map(|(a, v)| (a.to_string(), v)), "{history}");
}

#[test]
fn the_cli_starts_and_shows_a_canary() {
    let registry = common::registry_copy();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
            .arg("models")
            .args(args)
            .arg("--registry")
            .arg(registry.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) =
        cli(&["canary", "start", "fraud", "1", "--weight", "0.1", "--sticky", "--sticky-key", "cc_num"]);
    assert!(ok, "{err}");
    assert!(out.contains("canary version 1 at 10%"), "{out}");
    let (ok, out, _) = cli(&["show", "fraud"]);
    assert!(ok);
    assert!(out.contains("canary -> 1 at 10% (sticky by cc_num)"), "{out}");
    let (ok, _, err) = cli(&["canary", "weight", "fraud", "0"]);
    assert!(!ok && err.contains("weight"), "{err}");
    let (ok, out, err) = cli(&["canary", "promote", "fraud"]);
    assert!(ok, "{err}");
    assert!(out.contains("serves version 1, nothing in rollout (promote)"), "{out}");
}
