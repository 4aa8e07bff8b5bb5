//! The load tool, run as its binary against fti-serve in-process on loopback (embedded
//! store, a copy of the example registry), and against a deliberately stalling server to
//! show that the open loop does not hide queueing.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fti_serve::app::App;
use fti_serve::config::Config;
use fti_serve::secret::Secret;
use serde_json::Value;

const ADMIN_TOKEN: &str = "loadtest-admin-token-0123";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

struct Server {
    http: SocketAddr,
    grpc: SocketAddr,
    _registry: tempfile::TempDir,
    _app: std::sync::Arc<App>,
}

async fn serve() -> Server {
    let registry = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("models"), registry.path());
    let mut config = Config::load(Some(&repo().join("config/example.toml"))).unwrap();
    config.registry.path = registry.path().to_path_buf();
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    config.log.level = "warn".into();
    let app = std::sync::Arc::new(App::build(&config).await.unwrap());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    app.spawn_http(http, std::future::pending());
    app.spawn_grpc(grpc, std::future::pending());
    Server { http: http_addr, grpc: grpc_addr, _registry: registry, _app: app }
}

/// Runs the tool to completion (its own duration bounds it) off the async runtime.
async fn loadtest(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fti-loadtest")).args(&args).current_dir(repo()).output().unwrap()
    })
    .await
    .unwrap()
}

/// A command line written out as one string (no argument here contains a space).
fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_over_http_checks_the_sla_and_writes_summary_and_plot() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("run.json"), dir.path().join("run.svg"));
    let url = format!("http://{}", server.http);
    let out = loadtest(args(&format!(
        "--url {url} --corpus models/fraud/2/golden.jsonl --rate 200 --duration 2s --warmup 500ms \
         --entities examples/fraud/data/features/card_profile.csv --keys zipf:1.1 \
         --sla p99<=500ms --sla errors<=0% --summary {} --plot {} --quiet",
        json.display(),
        svg.display()
    )))
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SLA PASS: p99 "), "{stdout}");
    let s = summary(&json);
    let requests = s["requests"].as_u64().unwrap();
    assert!((380..=401).contains(&requests), "2 s at 200 req/s, got {requests}");
    assert_eq!(s["ok"], requests);
    assert_eq!(s["errors"], serde_json::json!({}));
    assert_eq!(s["versions"]["2"], requests, "production (v2) answered everything: {s}");
    assert!(s["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(s["latency_us"]["p99"].as_f64().unwrap() >= s["latency_us"]["p50"].as_f64().unwrap());
    assert_eq!(s["passed"], true);
    assert!(s["timeline"].as_array().unwrap().len() >= 2);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("p99"), "{}", &plot[..200.min(plot.len())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_sla_exits_2_with_a_one_line_verdict() {
    let server = serve().await;
    let url = format!("http://{}", server.http);
    let out = loadtest(args(&format!(
        "--url {url} --corpus models/fraud/2/golden.jsonl --rate 100 --duration 1s --warmup 0s \
         --sla p50<=1us --sla errors<=1% --quiet"
    )))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = stdout.lines().find(|l| l.starts_with("SLA FAIL")).unwrap_or_default();
    assert!(verdict.starts_with("SLA FAIL: p50 ") && verdict.contains("> 1us"), "{stdout}");
    assert!(!verdict.contains("errors"), "the error SLA held and is not listed as broken: {verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_kind() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let url = format!("http://{}", server.http);
    let out = loadtest(args(&format!(
        "--url {url} --model no-such-model --corpus models/fraud/2/golden.jsonl --rate 100 \
         --duration 1s --warmup 0s --sla errors<=0.1% --summary {} --quiet",
        json.display()
    )))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let s = summary(&json);
    assert_eq!(s["ok"], 0);
    assert_eq!(s["errors"]["http_404:model_not_found"], s["requests"], "{s}");
    assert_eq!(s["error_rate"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_oip_targets_answer_like_http() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("http://{}", server.http);
    let grpc = format!("http://{}", server.grpc);
    for (target, url, version) in [
        ("grpc", &grpc, "2"),
        ("oip", &http, "2"),
        ("oip-grpc", &grpc, "2"),
        ("grpc", &grpc, "1"),
        ("oip", &http, "1"),
    ] {
        let json = dir.path().join(format!("{target}-{version}.json"));
        let pin = if version == "1" { "--version 1" } else { "" };
        // A generous per-request deadline: an answer slowed by a busy machine is still an
        // answer (this test is about what each target answers, not how fast).
        let out = loadtest(args(&format!(
            "--url {url} --target {target} --corpus models/fraud/{version}/golden.jsonl {pin} \
             --rate 100 --duration 1s --warmup 0s --timeout 30s --summary {} --quiet",
            json.display()
        )))
        .await;
        assert!(out.status.success(), "{target} v{version}: {}", show(&out));
        let s = summary(&json);
        // The open loop's schedule, not the machine's speed, sets the count: one request
        // every 10 ms for 1 s is exactly 100, each answered or counted as an error.
        assert_eq!(s["requests"], 100, "{target} v{version}: {s}");
        assert_eq!(s["ok"], s["requests"], "{target} v{version}: {s}");
        assert_eq!(s["versions"][version], s["requests"], "{target} v{version}: {s}");
    }
}

/// The `get` target needs no corpus: it GETs one path, a 2xx being a success, so a trivial
/// endpoint measures the HTTP round trip alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_target_measures_a_plain_endpoint() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", server.http);
    for (path, ok) in [("/health/live", true), ("/no/such/route", false)] {
        let json = dir.path().join("get.json");
        let out = loadtest(args(&format!(
            "--url {url} --target get --path {path} --rate 100 --duration 1s --warmup 0s \
             --timeout 30s --summary {} --quiet",
            json.display()
        )))
        .await;
        assert!(out.status.success(), "{path}: {}", show(&out));
        let s = summary(&json);
        assert_eq!(s["requests"], 100, "{path}: {s}");
        if ok {
            assert_eq!(s["ok"], 100, "{path}: {s}");
        } else {
            assert_eq!(s["errors"]["http_404:no_route"], 100, "{path}: {s}");
        }
    }
    let out = loadtest(args(&format!("--url {url} --target get --rate 10 --duration 1s"))).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target get: give the --path"), "{}", show(&out));
    let out = loadtest(args(&format!("--url {url} --target http --rate 10 --duration 1s"))).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--corpus: required"), "{}", show(&out));
}

/// How many requests `version` of fraud has answered, from the server's own metrics.
async fn answered_by(http: &reqwest::Client, url: &str, version: &str) -> u64 {
    let series = format!(
        "fti_requests_total{{backend=\"tract\",model=\"fraud\",outcome=\"ok\",version=\"{version}\"}} "
    );
    let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_during_the_run_is_seen_and_marked_on_the_plot() {
    // Version 2 answers this many requests before the promotion (an event, where a fixed
    // sleep used to stand); one of them is the tool's first, untimed call.
    const BEFORE: u64 = 150;
    const RATE: f64 = 200.0;
    const SECONDS: f64 = 6.0;
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("run.json"), dir.path().join("run.svg"));
    let url = format!("http://{}", server.http);
    // The per-request deadline is generous: a busy machine may slow an answer, and "no
    // request failed" should mean no request failed.
    let run = tokio::spawn(loadtest(args(&format!(
        "--url {url} --corpus models/fraud/2/golden.jsonl --rate {RATE} --duration {SECONDS}s --warmup 0s \
         --interval 250ms --timeout 30s --summary {} --plot {} --quiet",
        json.display(),
        svg.display()
    ))));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered_by(&http, &url, "2").await < BEFORE {
        if run.is_finished() {
            let out = run.await.unwrap();
            panic!("the run ended before version 2 answered {BEFORE} requests: {}", show(&out));
        }
        assert!(Instant::now() < deadline, "version 2 answered fewer than {BEFORE} requests in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let promoted = http
        .post(format!("{url}/v1/admin/models/fraud/promote"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"version": 1, "reason": "load test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), 200, "{}", promoted.text().await.unwrap());
    let out = run.await.unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let s = summary(&json);
    assert_eq!(s["errors"], serde_json::json!({}), "no request failed across the promotion: {s}");
    let (v1, v2) = (s["versions"]["1"].as_u64().unwrap_or(0), s["versions"]["2"].as_u64().unwrap_or(0));
    // Every answer came from one of the two; version 2 gave at least those seen before the
    // promotion (less the untimed first call), version 1 the rest of the run.
    assert_eq!(s["requests"], v1 + v2, "{s}");
    assert!(v2 >= BEFORE - 1 && v1 > 50, "{s}");
    let changes = s["version_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{s}");
    assert_eq!((changes[0]["from"].as_str(), changes[0]["to"].as_str()), (Some("2"), Some("1")));
    // Request n is due at n / RATE s. Version 1 first answered after the promotion, which
    // came after the server had answered BEFORE - 1 timed requests, the latest due no earlier
    // than request BEFORE - 2; and the change is seen within the run.
    let at = changes[0]["t"].as_f64().unwrap();
    let earliest = (BEFORE - 2) as f64 / RATE;
    assert!(
        (earliest..SECONDS).contains(&at),
        "promotion seen at {at}s, expected in [{earliest}, {SECONDS})"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version change at"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("v2 → v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_mode_reports_the_highest_rate_that_held() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let url = format!("http://{}", server.http);
    let out = loadtest(args(&format!(
        "--url {url} --corpus models/fraud/2/golden.jsonl --step 50:50:100 --step-duration 1s \
         --warmup 200ms --sla p99<=500ms --summary {} --quiet",
        json.display()
    )))
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let s = summary(&json);
    assert_eq!(s["max_rate_within_sla"], 100.0, "{s}");
    let steps = s["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|step| step["passed"] == true));
    assert!(String::from_utf8_lossy(&out.stdout).contains("highest rate that held the SLA: 100 req/s"));
}

/// A one-connection HTTP server that answers at once, except for its request number
/// `STALL_AT` (counting from 0, the tool's first call), which it holds for 500 ms. Counted,
/// not timed: a second into the server's life may fall before a slow-starting run, where
/// the stall would go unmeasured. At 200 req/s the stall comes half a second into the run.
async fn stalling_server() -> SocketAddr {
    const STALL_AT: usize = 100;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/v1/models/{model}/predict",
        axum::routing::post(move || {
            let received = received.clone();
            async move {
                if received.fetch_add(1, Ordering::SeqCst) == STALL_AT {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                r#"{"model":"m","version":1,"outputs":{}}"#
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_loop_charges_a_stall_to_every_request_queued_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Vec::new();
    for mode in [["--rate", "200"], ["--concurrency", "1"]] {
        let url = format!("http://{}", stalling_server().await);
        let json = dir.path().join(format!("{}.json", &mode[0][2..]));
        let out = loadtest(args(&format!(
            "--url {url} --model m --corpus models/fraud/2/golden.jsonl {} {} --duration 3s \
             --warmup 0s --connections 1 --summary {} --quiet",
            mode[0],
            mode[1],
            json.display()
        )))
        .await;
        assert!(out.status.success(), "{}", show(&out));
        let s = summary(&json);
        assert!(s["latency_us"]["max"].as_f64().unwrap() >= 490_000.0, "the stall is seen: {s}");
        p.push((s["latency_us"]["p90"].as_f64().unwrap(), s["latency_us"]["p99"].as_f64().unwrap()));
    }
    let (open, closed) = (p[0], p[1]);
    // Open loop: ~100 requests were due during the 500 ms stall, 1 in 6 of the run; the
    // latest of them waited ~0 ms, the earliest ~500 ms, so the p90 is well into the stall.
    assert!(open.0 >= 100_000.0, "open-loop p90 {}us should show the queue", open.0);
    // Closed loop: one client waited once; hundreds of quick answers hide it below p99.
    assert!(closed.1 < 100_000.0, "closed-loop p99 {}us shows coordinated omission", closed.1);
}
