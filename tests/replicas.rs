//! Two server processes on one registry directory converge after a CLI promotion.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ChildServer;

use serde_json::Value;

struct Replica {
    // Killed when the replica is dropped.
    _server: ChildServer,
    base: String,
}

/// `poll_only`: no file-system events, only the periodic re-read (as on a network file
/// system that delivers none). Each replica binds port 0 and reports the port it took.
fn spawn_replica(config: &Path, poll_only: bool) -> Replica {
    let watch = (!poll_only).to_string();
    let server = ChildServer::start(
        config,
        &[("FTI__REGISTRY__WATCH", watch.as_str()), ("FTI__REGISTRY__POLL_INTERVAL_MS", "500")],
    );
    let base = server.url("");
    Replica { _server: server, base }
}

async fn production(http: &reqwest::Client, replica: &Replica) -> Option<u64> {
    let response = http.get(format!("{}/v1/models/fraud", replica.base)).send().await.ok()?;
    let body: Value = response.json().await.ok()?;
    body["aliases"]["production"].as_u64()
}

fn cli(registry: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .arg("models")
        .args(args)
        .arg("--registry")
        .arg(registry)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_a_cli_promotion() {
    let registry = common::registry_copy();
    let config = registry.path().join("replica.toml");
    let features = common::repo().join("examples/fraud/data/features");
    std::fs::write(
        &config,
        format!(
            "[registry]\npath = {:?}\nmodels = [\"fraud\"]\n\
             [[store.memory.files]]\ngroup = \"card_profile\"\npath = {:?}\n\
             [[store.memory.files]]\ngroup = \"card_activity\"\npath = {:?}\n",
            registry.path().to_str().unwrap(),
            features.join("card_profile.parquet").to_str().unwrap(),
            features.join("card_activity.parquet").to_str().unwrap(),
        ),
    )
    .unwrap();
    let replicas = [spawn_replica(&config, false), spawn_replica(&config, true)];
    let http = common::http_client();
    for r in &replicas {
        let up =
            common::eventually(Duration::from_secs(60), async || production(&http, r).await == Some(2)).await;
        assert!(up.is_some(), "replica {} did not start", r.base);
    }

    for (args, want) in [(&["promote", "fraud", "1"][..], 1), (&["rollback", "fraud"][..], 2)] {
        cli(registry.path(), args);
        for r in &replicas {
            // Converging is the event under test, not its speed (a busy machine may take a
            // while): wait for it generously, then check what it serves.
            let took = common::eventually(Duration::from_secs(60), async || {
                production(&http, r).await == Some(want)
            })
            .await
            .unwrap_or_else(|| panic!("replica {} did not converge to {want} within 60 s", r.base));
            println!("replica {} converged to version {want} in {took:?}", r.base);
            let request = &common::golden("fraud", want)[0].request;
            let body: Value = http
                .post(format!("{}/v1/models/fraud/predict", r.base))
                .json(request)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(body["version"], want, "{body}");
        }
    }
}
