//! p99 latency while versions are promoted, against steady state, in one run.
//! `cargo bench --bench swap`. A closed loop of concurrent HTTP clients predicts against
//! an in-process server (embedded store, loopback); phases alternate between steady
//! state and a promotion every 100 ms between two identical copies of a model (only
//! aliased versions resident, so every promotion loads, validates and warms a version).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fti_serve::app::App;
use fti_serve::config::Config;
use fti_serve::secret::Secret;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token-0123456789";
const CLIENTS: usize = 4;
const PHASE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 2;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A registry with `base` as production and an identical copy of it as version 9.
fn registry(base: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(&repo("models"), dir.path());
    support::copy_dir(&dir.path().join(format!("fraud/{base}")), &dir.path().join("fraud/9"));
    let manifest = dir.path().join("fraud/9/manifest.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace(&format!("version = {base}\n"), "version = 9\n")).expect("write");
    std::fs::write(dir.path().join("fraud/state.toml"), format!("[aliases]\nproduction = {base}\n"))
        .expect("state");
    dir
}

/// Runs the clients for one phase; with `swaps`, promotes between `pair` every 100 ms,
/// tracking which of the pair serves in `current`.
async fn phase(
    base: &str,
    body: &Value,
    http: &reqwest::Client,
    swaps: bool,
    pair: (u64, u64),
    current: &mut u64,
) -> (Histogram<u64>, usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, body, stop) =
            (http.clone(), format!("{base}/v1/models/fraud/predict"), body.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                h.record(start.elapsed().as_micros() as u64).expect("record");
            }
            (h, errors)
        }));
    }
    let mut moves = 0;
    let end = Instant::now() + PHASE;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if swaps {
            let target = if *current == pair.0 { pair.1 } else { pair.0 };
            let r = http
                .post(format!("{base}/v1/admin/models/fraud/promote"))
                .bearer_auth(TOKEN)
                .json(&json!({"version": target}))
                .send()
                .await
                .expect("admin");
            assert!(r.status().is_success(), "promotion failed: {}", r.text().await.unwrap_or_default());
            moves += 1;
            *current = target;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.expect("client");
        all.add(h).expect("merge");
        errors += e;
    }
    (all, errors, moves)
}

fn line(name: &str, h: &Histogram<u64>, errors: usize, moves: usize) {
    println!(
        "{name:<22} n={:>6} p50={:>6}us p90={:>6}us p99={:>6}us p99.9={:>6}us max={:>6}us errors={errors} promotions={moves}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    // `cargo test --benches` runs bench targets once as smoke tests; only measure under
    // `cargo bench`, which passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        for base in [1u64, 2] {
            let dir = registry(base);
            let mut config = Config::load(Some(&repo("config/example.toml"))).expect("config");
            config.registry.path = dir.path().to_path_buf();
            config.registry.keep_latest = 0;
            config.admin.token = Some(Secret::new(TOKEN));
            config.log.level = "warn".into();
            let app = std::sync::Arc::new(App::build(&config).await.expect("app"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base_url = format!("http://{}", listener.local_addr().expect("addr"));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            app.spawn_http(listener, async {
                let _ = rx.await;
            });
            let golden =
                std::fs::read_to_string(repo(&format!("models/fraud/{base}/golden.jsonl"))).expect("golden");
            let body: Value = serde_json::from_str::<Value>(golden.lines().next().expect("line"))
                .expect("json")["request"]
                .clone();
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::new();
            println!(
                "model version {base} vs an identical copy, {CLIENTS} closed-loop clients, {PHASE:?} phases"
            );
            let (mut steady, mut swapping) =
                (Histogram::<u64>::new(3).expect("h"), Histogram::<u64>::new(3).expect("h"));
            let (mut steady_errors, mut swap_errors, mut moves) = (0, 0, 0);
            let (pair, mut current) = ((base, 9), base);
            phase(&base_url, &body, &http, false, pair, &mut current).await; // warm-up
            for _ in 0..ROUNDS {
                let (h, e, _) = phase(&base_url, &body, &http, false, pair, &mut current).await;
                steady.add(h).expect("merge");
                steady_errors += e;
                let (h, e, m) = phase(&base_url, &body, &http, true, pair, &mut current).await;
                swapping.add(h).expect("merge");
                swap_errors += e;
                moves += m;
            }
            line("  steady", &steady, steady_errors, 0);
            line("  during promotions", &swapping, swap_errors, moves);
            let ratio =
                swapping.value_at_quantile(0.99) as f64 / steady.value_at_quantile(0.99).max(1) as f64;
            println!("  p99 during promotions / steady = {ratio:.2}");
            let _ = tx.send(());
            drop(app);
        }
    });
}
