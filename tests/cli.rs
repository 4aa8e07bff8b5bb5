//! The binary's start-up errors: config mistakes name the key, whichever layer made them.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn serve_stderr(envs: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fti-serve"));
    cmd.arg("serve").args(args).current_dir(common::repo());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "serve must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn environment_overrides_are_validated_by_key() {
    let err = serve_stderr(&[("FTI__SERVER__MAX_BATCH_ROWS", "0")], &["--config", "config/example.toml"]);
    assert!(err.contains("server.max_batch_rows"), "{err}");
    let err = serve_stderr(
        &[("FTI__STORE__KIND", "redis"), ("FTI__STORE__REDIS__URL", "http://x")],
        &["--config", "config/example.toml"],
    );
    assert!(err.contains("store.redis.url"), "{err}");
}

#[test]
fn config_file_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nhttp_adr = \"127.0.0.1:1\"\n").unwrap();
    let err = serve_stderr(&[], &["--config", file.to_str().unwrap()]);
    assert!(err.contains("http_adr"), "{err}");
    let err = serve_stderr(&[], &["--config", "config/nope.toml"]);
    assert!(err.contains("nope.toml") && err.contains("not found"), "{err}");
    std::fs::write(&file, "[registry]\npath = \"missing\"\n").unwrap();
    let err = serve_stderr(&[], &["--config", file.to_str().unwrap()]);
    assert!(err.contains("registry.path"), "{err}");
    std::fs::write(&file, "[store.redis]\nclient = \"pooled\"\n").unwrap();
    let err = serve_stderr(&[], &["--config", file.to_str().unwrap()]);
    assert!(err.contains("store.redis.client") && err.contains("redis-rs"), "{err}");
}

#[test]
fn secrets_stay_out_of_logs() {
    // A Redis URL with a password, pointing at a closed port: the server starts, logs
    // the store, and must never print the password. It stops right after building the
    // store because its listen address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = serve_stderr(
        &[("FTI__STORE__REDIS__TIMEOUT_MS", "20")],
        &[
            "--config",
            "config/example.toml",
            "--redis-url",
            "redis://:hunter2@127.0.0.1:1",
            "--http-addr",
            &addr,
        ],
    );
    assert!(err.contains("redis://:***@127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
