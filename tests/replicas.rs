//! Two server processes on one registry directory converge after a CLI promotion.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `poll_only`: no file-system events, only the periodic re-read (as on a network file
/// system that delivers none).
fn spawn_replica(config: &Path, poll_only: bool) -> Replica {
    // `fti-serve serve` logs the address it was configured with, not the one it bound, so
    // it cannot be given port 0 and read back: probe free ports. Both probes are held until
    // both are chosen, so the two numbers differ.
    let probes = [TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("127.0.0.1:0").unwrap()];
    let [port, grpc] = probes.map(|probe| probe.local_addr().unwrap().port());
    let child = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--http-addr", &format!("127.0.0.1:{port}"), "--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .env("FTI__LOG__LEVEL", "warn")
        .env("FTI__REGISTRY__WATCH", (!poll_only).to_string())
        .env("FTI__REGISTRY__POLL_INTERVAL_MS", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica { child, base: format!("http://127.0.0.1:{port}") }
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
    let http = reqwest::Client::new();
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
