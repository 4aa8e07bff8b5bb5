//! Model lifecycle: aliases, promote and rollback through the admin API and the CLI,
//! refused versions, replicas following the registry, crash-safe state.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Server, add_broken_version, add_version_copy, golden, registry_copy};
use fti_serve::config::Config;
use fti_serve::registry::ModelState;
use fti_serve::secret::Secret;
use serde_json::{Value, json};

fn config_for(registry: &Path) -> Config {
    let mut config = common::example_config();
    config.registry.path = registry.to_path_buf();
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    config
}

fn production(registry: &Path) -> u64 {
    ModelState::read(&registry.join("fraud/state.toml")).unwrap().aliases["production"]
}

fn cli(registry: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .arg("models")
        .args(args)
        .arg("--registry")
        .arg(registry)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_its_token() {
    let registry = registry_copy();
    let mut config = config_for(registry.path());
    config.admin.token = None;
    let server = Server::start(&config).await;
    let (status, body) = server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("admin_disabled")), "{body}");
    drop(server);

    let server = Server::start(&config_for(registry.path())).await;
    let response = server
        .http
        .post(server.url("/v1/admin/models/fraud/promote"))
        .bearer_auth("wrong-token-wrong-token")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = server
        .http
        .post(server.url("/v1/admin/models/fraud/promote"))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(production(registry.path()), 2, "nothing moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_rollback_canary_and_history() {
    let registry = registry_copy();
    add_broken_version(registry.path(), 1, 3);
    let server = Server::start(&config_for(registry.path())).await;
    let request = golden("fraud", 1)[0].request.clone();

    let (status, body) =
        server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1, "reason": "test"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["from"].as_u64(), body["to"].as_u64()), (Some(2), Some(1)));
    // The swap happened before the answer.
    let (_, p) = server.post("/v1/models/fraud/predict", &request).await;
    assert_eq!(p["version"], 1);

    let (status, body) = server.admin("/v1/admin/models/fraud/promote", &json!({"version": 1})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("alias_unchanged")), "{body}");
    let (status, body) = server.admin("/v1/admin/models/fraud/promote", &json!({"version": 9})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("version_not_found")), "{body}");
    let (status, body) = server.admin("/v1/admin/models/fraud/promote", &json!({"version": 3})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("version_refused")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("checksum mismatch"), "{body}");
    let (status, body) = server.admin("/v1/admin/models/fraud/promote", &json!({"version": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_input")), "{body}");

    let (status, body) =
        server.admin("/v1/admin/models/fraud/promote", &json!({"version": 2, "alias": "canary"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, p) = server.post("/v1/models/fraud/aliases/canary/predict", &request).await;
    assert_eq!(p["version"], 2);

    let (status, body) = server.admin("/v1/admin/models/fraud/rollback", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["from"].as_u64(), body["to"].as_u64()), (Some(1), Some(2)));
    let (status, body) = server.admin("/v1/admin/models/fraud/rollback", &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("nothing_to_roll_back")), "{body}");
    let (_, p) = server.post("/v1/models/fraud/predict", &request).await;
    assert_eq!(p["version"], 2);

    let response = server
        .http
        .get(server.url("/v1/admin/models/fraud/history"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let history: Value = response.json().await.unwrap();
    let moves = history["history"].as_array().unwrap();
    let actions: Vec<(&str, &str, u64)> = moves
        .iter()
        .map(|m| (m["alias"].as_str().unwrap(), m["action"].as_str().unwrap(), m["to"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [("production", "promote", 1), ("canary", "promote", 2), ("production", "rollback", 2)]
    );
    assert_eq!(moves[0]["reason"], "test");
    assert_eq!(moves[0]["by"], "admin-api");

    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("fti_alias_version{alias=\"canary\",model=\"fraud\"} 2"), "{metrics}");
    assert!(
        metrics.contains("fti_alias_moves_total{action=\"rollback\",alias=\"production\",model=\"fraud\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_target_in_state_keeps_the_old_version_serving() {
    let registry = registry_copy();
    add_broken_version(registry.path(), 1, 3);
    let mut config = config_for(registry.path());
    config.registry.poll_interval_ms = 50;
    let server = Server::start(&config).await;
    // Someone edits state.toml by hand to point at the broken version.
    let state = registry.path().join("fraud/state.toml");
    let before = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, before.replace("production = 2", "production = 3")).unwrap();
    let seen = common::eventually(Duration::from_secs(30), async || {
        let (_, m) = server.get("/v1/models/fraud").await;
        m["alias_errors"]["production"].as_str().is_some()
    })
    .await;
    assert!(seen.is_some(), "the replica must notice the edit");
    let (_, m) = server.get("/v1/models/fraud").await;
    let message = m["alias_errors"]["production"].as_str().unwrap();
    assert!(
        message.contains("checksum mismatch") && message.contains("still serving version 2"),
        "{message}"
    );
    assert_eq!(m["aliases"]["production"], 2);
    let (status, p) = server.post("/v1/models/fraud/predict", &golden("fraud", 2)[0].request).await;
    assert_eq!((status, p["version"].as_u64()), (200, Some(2)));
    let (status, _) = server.get("/health/ready").await;
    assert_eq!(status, 200);
}

#[test]
fn cli_promotes_rolls_back_and_refuses_broken_versions() {
    let registry = registry_copy();
    add_broken_version(registry.path(), 1, 3);
    let dir = registry.path();

    let out = cli(dir, &["promote", "fraud", "1", "--reason", "cli test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("moved from version 2 to version 1"));
    assert_eq!(production(dir), 1);

    let state_before = std::fs::read(dir.join("fraud/state.toml")).unwrap();
    let out = cli(dir, &["promote", "fraud", "3"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be promoted") && stderr.contains("checksum mismatch"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("fraud/state.toml")).unwrap(), state_before, "state unchanged");

    let out = cli(dir, &["rollback", "fraud"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(production(dir), 2);

    let list = String::from_utf8_lossy(&cli(dir, &["list"]).stdout).into_owned();
    assert!(
        list.lines().any(|l| l.contains("fraud") && l.contains(" 2 ") && l.contains("production")),
        "{list}"
    );
    let history = String::from_utf8_lossy(&cli(dir, &["history", "fraud"]).stdout).into_owned();
    assert!(history.contains("cli test") && history.contains("rollback"), "{history}");
    let show = String::from_utf8_lossy(&cli(dir, &["show", "fraud"]).stdout).into_owned();
    assert!(show.contains("alias production -> 2") && show.contains("feature view fraud_v1"), "{show}");
    let out = cli(dir, &["promote", "nope", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("model `nope`"));
}

#[test]
fn killed_writers_never_leave_an_unreadable_state() {
    let registry = registry_copy();
    let dir = registry.path();
    let state_path = dir.join("fraud/state.toml");
    // Pad the history (an alias of its own, so production's moves are unaffected) to make
    // state.toml ~2 MB: writing it then takes milliseconds rather than microseconds, a
    // window a kill can land in.
    let mut padded = std::fs::read_to_string(&state_path).unwrap();
    let reason = "x".repeat(2000);
    for _ in 0..1000 {
        padded.push_str(&format!(
            "\n[[history]]\nat = \"2025-01-01T00:00:00Z\"\nalias = \"padding\"\nto = 2\nby = \"test\"\nreason = \"{reason}\"\n"
        ));
    }
    std::fs::write(&state_path, padded).unwrap();
    let mut production = ModelState::read(&state_path).unwrap().aliases["production"];

    let mut rng = 0x9e37_79b9_u64;
    let (mut kills, mut mid_write) = (0u32, 0u32);
    // Even iterations kill at a random moment, odd ones the moment the writer's temp file
    // appears. At least 40 kills, and on until 5 are known to have landed mid-write (or
    // 400 kills, after which the assertion at the end fails).
    while kills < 40 || (mid_write < 5 && kills < 400) {
        let i = kills;
        kills += 1;
        // Always the other version, so every writer that lives long enough writes.
        let target: u64 = if production == 1 { 2 } else { 1 };
        let before = std::fs::read(&state_path).unwrap();
        let mut child: Child = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
            .args(["models", "promote", "fraud", &target.to_string(), "--registry"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // StateLock::write writes `.state.toml.<pid>.tmp`, then renames it over state.toml.
        let temp = dir.join(format!("fraud/.state.toml.{}.tmp", child.id()));
        if i % 2 == 0 {
            // xorshift: kill anywhere from immediately to after the write.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            std::thread::sleep(Duration::from_micros(rng % 30_000));
        } else {
            // Aimed: kill as soon as the write has begun (or when the writer is done).
            let give_up = Instant::now() + Duration::from_secs(60);
            while !temp.exists() && child.try_wait().unwrap().is_none() && Instant::now() < give_up {
                std::hint::spin_loop();
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let after = std::fs::read(&state_path).unwrap();
        let state = ModelState::read(&state_path).unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        let v = state.aliases["production"];
        if temp.exists() {
            // The writer stopped after creating its temp file and before the rename:
            // state.toml must be the old one, byte for byte.
            assert!(after == before, "iteration {i}: the write was cut short, yet state.toml changed");
            // Killed by the signal (no exit code), not exiting on an error: killed mid-write.
            if status.code().is_none() {
                mid_write += 1;
            }
            // Cleared so hundreds of MB of leftovers do not pile up (readers ignoring a
            // leftover temp file is a unit test in src/registry/state.rs).
            std::fs::remove_file(&temp).unwrap();
        } else if status.success() {
            assert_eq!(v, target, "iteration {i}: the promotion finished but state.toml does not show it");
        } else {
            assert!(
                v == production || v == target,
                "iteration {i}: production = {v}, was {production}, promoting to {target}"
            );
        }
        production = v;
    }
    println!("{kills} kills, {mid_write} of them while state.toml was being written");
    assert!(mid_write >= 5, "only {mid_write} of {kills} kills landed while state.toml was being written");
}

/// One load-generating task: golden requests in a loop until `stop`, recording every
/// answer with its send and receive times.
struct Answer {
    sent: Instant,
    received: Instant,
    status: u16,
    version: u64,
    golden: usize,
    outputs: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_under_load_fail_no_request() {
    let registry = registry_copy();
    add_version_copy(registry.path(), 1, 4);
    add_broken_version(registry.path(), 2, 3);
    let mut config = config_for(registry.path());
    config.registry.keep_latest = 0; // only aliased versions resident: every promotion loads
    let server = Arc::new(Server::start(&config).await);
    let requests: Vec<Value> = golden("fraud", 1).iter().map(|g| g.request.clone()).collect();
    let expected = [(1u64, golden("fraud", 1)), (2, golden("fraud", 2)), (4, golden("fraud", 1))];

    // Timeline of production: (admin call sent, admin call answered, version). The swap
    // happens somewhere between the two instants.
    let start = Instant::now();
    let timeline = Arc::new(Mutex::new(vec![(start, start, 2u64)]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A safety net only (the clients end on `stop`), generous for a busy machine.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut clients = Vec::new();
    for c in 0..4 {
        let (server, requests, stop, answered) =
            (Arc::clone(&server), requests.clone(), Arc::clone(&stop), Arc::clone(&answered));
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut i = c;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let golden = i % requests.len();
                let sent = Instant::now();
                let (status, body) = server.post("/v1/models/fraud/predict", &requests[golden]).await;
                let received = Instant::now();
                let version = body["version"].as_u64().unwrap_or(0);
                answers.push(Answer {
                    sent,
                    received,
                    status,
                    version,
                    golden,
                    outputs: body["outputs"].clone(),
                });
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                i += 1;
            }
            answers
        }));
    }

    let mut moves = 0;
    let mut refused = 0;
    let plan = [4u64, 1, 3, 2, 4, 2, 1, 3, 4, 1];
    for step in 0..80 {
        let sent = Instant::now();
        let (status, body) = if step % 7 == 6 {
            server.admin("/v1/admin/models/fraud/rollback", &json!({"reason": "load test"})).await
        } else {
            let target = plan[step % plan.len()];
            server
                .admin("/v1/admin/models/fraud/promote", &json!({"version": target, "reason": "load test"}))
                .await
        };
        match status {
            200 => {
                moves += 1;
                let to = body["to"].as_u64().unwrap();
                timeline.lock().unwrap().push((sent, Instant::now(), to));
            }
            422 => {
                assert_eq!(body["code"], "version_refused", "{body}");
                refused += 1;
            }
            409 => {
                assert!(
                    body["code"] == "alias_unchanged" || body["code"] == "nothing_to_roll_back",
                    "{body}"
                );
            }
            other => panic!("admin call failed with {other}: {body}"),
        }
        // Let traffic run on this alias before the next move: wait for answers, not for a
        // fixed time. At most one request per client was unanswered or uncounted when the
        // move was answered, so of 8 more answers at least 4 were sent after it.
        let before = answered.load(std::sync::atomic::Ordering::SeqCst);
        let flowed = common::eventually(Duration::from_secs(60), async || {
            answered.load(std::sync::atomic::Ordering::SeqCst) >= before + 8
        })
        .await;
        assert!(flowed.is_some(), "step {step}: fewer than 8 requests answered in 60 s");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    assert!(moves >= 50, "only {moves} alias moves");
    assert!(refused >= 5, "broken version attempts: {refused}");

    let timeline = timeline.lock().unwrap().clone();
    for a in &answers {
        assert_eq!(a.status, 200, "a request failed during promotions");
        // A version may have served from when the call moving to it was sent until the
        // next move was answered; the answer must come from one whose window overlaps
        // the request's.
        let allowed: Vec<u64> = timeline
            .iter()
            .enumerate()
            .filter(|(k, (sent, _, _))| {
                let end = timeline.get(k + 1).map(|(_, acked, _)| *acked);
                *sent <= a.received && end.is_none_or(|end| end >= a.sent)
            })
            .map(|(_, (_, _, v))| *v)
            .collect();
        assert!(allowed.contains(&a.version), "answered by {} but production was {allowed:?}", a.version);
        let reference = &expected.iter().find(|(v, _)| *v == a.version).unwrap().1[a.golden];
        common::assert_outputs(
            &a.outputs,
            &reference.outputs,
            &format!("v{} golden {}", a.version, a.golden),
        );
    }
    // Every version production moved to answered requests sent after the move (the waits
    // above), so the moves took effect under load; the broken version 3 answered none.
    let served: std::collections::BTreeSet<u64> = answers.iter().map(|a| a.version).collect();
    assert_eq!(
        served,
        std::collections::BTreeSet::from([1u64, 2, 4]),
        "versions that answered {} requests",
        answers.len()
    );
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(!metrics.contains("outcome=\"version_unavailable\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_extension_indexes_loads_and_unloads() {
    let registry = registry_copy();
    let server = Server::start(&config_for(registry.path())).await;
    let request = golden("fraud", 2)[0].request.clone();

    let response = server.http.post(server.url("/v2/repository/index")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "the repository extension is admin-only");
    let (status, index) = server.admin("/v2/repository/index", &json!({})).await;
    assert_eq!(status, 200, "{index}");
    let states: Vec<(&str, &str)> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["version"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("1", "READY"), ("2", "READY")]);

    let (status, body) = server.admin("/v2/repository/models/fraud/unload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post("/v1/models/fraud/predict", &request).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("model_not_found")), "{body}");
    let (_, index) = server.admin("/v2/repository/index", &json!({})).await;
    assert!(
        index
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "UNAVAILABLE" && e["reason"] == "model not loaded"),
        "{index}"
    );

    let (status, body) = server.admin("/v2/repository/models/fraud/load", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post("/v1/models/fraud/predict", &request).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.admin("/v2/repository/models/nope/load", &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("model_not_found")), "{body}");
}
