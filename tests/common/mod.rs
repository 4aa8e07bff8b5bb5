//! Test harness: a real redis-server on a free loopback port, the server in-process on
//! 127.0.0.1:0, the example registry and its golden files.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fti_serve::app::App;
use fti_serve::config::{Config, FeatureFileConfig, StoreKind};
use serde_json::Value;
use tokio::sync::oneshot;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn feature_file(group: &str, ext: &str) -> PathBuf {
    repo().join(format!("examples/fraud/data/features/{group}.{ext}"))
}

pub const GROUPS: [&str; 2] = ["card_profile", "card_activity"];

/// A redis-server owned by one test; killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    /// The second probed port, put where `extra` names `{bus}` (a cluster node's bus).
    bus: u16,
    /// Extra arguments (TLS, ACL users), kept for a restart on the same port.
    extra: Vec<String>,
    /// Whether the server takes plain, unauthenticated PINGs (readiness is checked so).
    plain: bool,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[], true)
    }

    /// A redis-server with `extra` arguments. `plain`: it answers an unauthenticated PING
    /// on its TCP port (false for TLS or password-protected servers: readiness is then the
    /// port accepting connections). With `extra` naming `{port}`, the probed port is put
    /// there (for `--tls-port {port} --port 0`); otherwise it is the plain `--port`. A
    /// `{bus}` in `extra` gets a second probed port (a cluster node's bus port).
    pub fn start_with(extra: &[&str], plain: bool) -> Redis {
        // The ports are free when we look; another process, or another test's redis, could
        // take one before this redis binds it, so retry with fresh ports (both of them: a
        // taken bus port fails the start as surely as a taken client port). Probed ports,
        // not port 0: redis-server cannot bind an ephemeral port and report it (`--port 0`
        // turns TCP off), and a test that stops redis may need to start it again on the
        // same ports.
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_string()).collect();
        let mut log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let bus = free_port();
            let child = spawn_redis(port, bus, &extra, dir.path());
            let mut redis = Redis { child, port, bus, extra: extra.clone(), plain, dir };
            if redis.wait_ready(Duration::from_secs(30)) {
                return redis;
            }
            redis.stop();
            log = std::fs::read_to_string(redis.dir().join(LOG)).unwrap_or_default();
        }
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        panic!("could not start redis-server on a free port; the last attempt's log ends:\n{tail}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The directory redis-server runs in (certificates and the like can go there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts redis-server again on the same port with the same arguments (its data is
    /// gone: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_redis(self.port, self.bus, &self.extra, self.dir.path());
        assert!(
            self.wait_ready(Duration::from_secs(30)),
            "redis-server did not come back on port {}",
            self.port
        );
    }

    /// Polls until redis's event loop answers on its port (a readiness check, not a blind
    /// sleep): a plain server with PONG; a password-protected or TLS one with anything at
    /// all (an error, or closing a connection that spoke no TLS). The kernel accepts
    /// connections as soon as redis listens, before it has bound its other ports, so an
    /// accepted connection alone would call ready a redis about to exit.
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ping(self.port).is_some_and(|reply| !self.plain || reply.starts_with(b"+PONG")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-server's log file, in its directory (read when it fails to start).
const LOG: &str = "redis.log";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends an inline PING and returns what came back, `None` when nothing did within a
/// second (redis not listening yet, or its event loop not running yet). A closed or reset
/// connection counts as an answer: the event loop ran and refused us.
fn ping(port: u16) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    stream.write_all(b"PING\r\n").ok()?;
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => Some(reply[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(_) => Some(Vec::new()),
    }
}

fn spawn_redis(port: u16, bus: u16, extra: &[String], dir: &Path) -> Child {
    let templated = extra.iter().any(|a| a.contains("{port}"));
    let fill = |a: &String| a.replace("{port}", &port.to_string()).replace("{bus}", &bus.to_string());
    let mut args: Vec<String> = if templated {
        extra.iter().map(fill).collect()
    } else {
        let mut args = vec!["--port".to_string(), port.to_string()];
        args.extend(extra.iter().map(fill));
        args
    };
    args.extend(
        ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", LOG].map(String::from),
    );
    Command::new("redis-server")
        .args(&args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (tests/run.sh installs it)")
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loads the example feature files into a Redis through `fti-serve materialize`'s code.
pub async fn materialize_example(redis: &Redis) {
    materialize_into(&redis.url()).await;
}

/// The same, into the Redis at `url` (which may carry credentials).
pub async fn materialize_into(url: &str) {
    let config = example_config();
    for group in GROUPS {
        let schema = fti_serve::cli::materialize::registry_schema(&config, group).unwrap().unwrap();
        let args = fti_serve::cli::materialize::MaterializeArgs {
            group: group.to_string(),
            file: feature_file(group, "parquet"),
            redis_url: url.to_string(),
            prefix: "fti:".into(),
            keys: None,
            batch_size: 200,
            timestamp_column: "event_timestamp".into(),
            keep_going: false,
            progress: false,
        };
        fti_serve::cli::materialize::run(&args, schema).await.unwrap();
    }
}

/// A `/v1` request's entities and features as an `fti.v1` row.
pub fn grpc_row(request: &Value) -> fti_serve::grpc::pb::fti::Row {
    use fti_serve::grpc::pb::fti as pb;
    let mut row = pb::Row::default();
    for (name, value) in request["entities"].as_object().into_iter().flatten() {
        let id = value.as_str().map_or_else(|| value.to_string(), str::to_string);
        row.entities.insert(name.clone(), id);
    }
    for (name, value) in request["features"].as_object().into_iter().flatten() {
        let kind = match value {
            Value::String(s) => pb::value::Kind::Text(s.clone()),
            Value::Bool(b) => pb::value::Kind::Flag(*b),
            other => pb::value::Kind::Number(other.as_f64().unwrap()),
        };
        row.features.insert(name.clone(), pb::Value { kind: Some(kind) });
    }
    row
}

/// The example config (memory store from the example's feature files).
pub fn example_config() -> Config {
    Config::load(Some(&repo().join("config/example.toml"))).unwrap()
}

pub fn redis_config(redis: &Redis) -> Config {
    let mut config = example_config();
    config.store.kind = StoreKind::Redis;
    config.store.redis.url = redis.url();
    config.store.memory.files = Vec::<FeatureFileConfig>::new();
    config
}

/// An HTTP client for the tests. reqwest's TLS (for the MLflow source) uses rustls with
/// the crypto provider the server installs, ring; a client built first needs it too.
pub fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::new()
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The server in-process on a free loopback port; shut down on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub app: std::sync::Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(config: &Config) -> Server {
        let app = std::sync::Arc::new(App::build(config).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (grpc_tx, grpc_rx) = oneshot::channel::<()>();
        app.spawn_http(listener, async {
            let _ = rx.await;
            let _ = grpc_tx.send(());
        });
        app.spawn_grpc(grpc, async {
            let _ = grpc_rx.await;
        });
        Server { addr, grpc_addr, app, shutdown: Some(tx), http: http_client() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self.http.post(self.url(path)).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One line of `models/<model>/<version>/golden.jsonl`.
#[derive(Debug, Clone)]
pub struct Golden {
    pub request: Value,
    pub input: Vec<f64>,
    pub missing_features: Vec<String>,
    pub outputs: Value,
}

pub fn golden(model: &str, version: u64) -> Vec<Golden> {
    let path = repo().join(format!("models/{model}/{version}/golden.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Golden {
                request: v["request"].clone(),
                input: v["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect(),
                missing_features: v["missing_features"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
                outputs: v["outputs"].clone(),
            }
        })
        .collect()
}

/// Asserts that a response's outputs equal the reference to 1e-5 (labels exactly).
pub fn assert_outputs(got: &Value, want: &Value, context: &str) {
    let want = want.as_object().unwrap();
    let got = got.as_object().unwrap_or_else(|| panic!("{context}: no outputs in {got}"));
    assert_eq!(got.len(), want.len(), "{context}: outputs {got:?} vs {want:?}");
    for (name, w) in want {
        let g = &got[name];
        match (g.as_f64(), w.as_f64()) {
            (Some(g), Some(w)) if w.fract() != 0.0 || name != "label" => {
                assert!((g - w).abs() <= 1e-5, "{context}: {name} = {g}, reference {w}");
            }
            _ => assert_eq!(g, w, "{context}: {name}"),
        }
    }
}

/// A copy of the example registry in a temp dir, for tests that break or edit it.
pub fn registry_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("models"), dir.path());
    dir
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

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Adds version `new` to a registry copy as a copy of `from` (same graph and view).
pub fn add_version_copy(registry: &Path, from: u64, new: u64) {
    let src = registry.join(format!("fraud/{from}"));
    let dst = registry.join(format!("fraud/{new}"));
    copy_dir(&src, &dst);
    let manifest = dst.join("manifest.toml");
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["model"].as_table_mut().unwrap().insert("version".into(), toml::Value::Integer(new as i64));
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

/// Adds version `new` whose manifest checksum does not match its model file.
pub fn add_broken_version(registry: &Path, from: u64, new: u64) {
    add_version_copy(registry, from, new);
    let manifest = registry.join(format!("fraud/{new}/manifest.toml"));
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["model"].as_table_mut().unwrap().insert("sha256".into(), "0".repeat(64).into());
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

impl Server {
    pub async fn admin(&self, path: &str, body: &Value) -> (u16, Value) {
        let response =
            self.http.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Polls `check` until it holds or `limit` passes; returns how long it took.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// libonnxruntime for the ort backend tests: `ORT_DYLIB_PATH` (tests/run.sh sets it), else
/// the one the pinned `onnxruntime` wheel put in `.venv-test`.
pub fn ort_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let lib = repo().join(".venv-test/lib");
    let found =
        std::fs::read_dir(&lib).ok().into_iter().flatten().filter_map(Result::ok).find_map(|python| {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so."))
            })
        });
    found.expect("libonnxruntime not found: run tests/run.sh (it installs the pinned onnxruntime wheel) or set ORT_DYLIB_PATH")
}

pub fn ort_config() -> fti_serve::config::OrtConfig {
    fti_serve::config::OrtConfig { library: Some(ort_library()), ..Default::default() }
}

/// The ort backend's options with the pinned wheel's library, for loading a backend directly.
pub fn ort_options() -> fti_serve::backend::ort::OrtOptions {
    fti_serve::backend::ort::OrtOptions { library: Some(ort_library()), ..Default::default() }
}

/// Adds a version that is a copy of `from` but asks for the given backend.
pub fn add_backend_version(registry: &Path, from: u64, new: u64, backend: &str) {
    add_version_copy(registry, from, new);
    let manifest = registry.join(format!("fraud/{new}/manifest.toml"));
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["model"].as_table_mut().unwrap().insert("backend".into(), backend.into());
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

/// Adds a version serving the parity fixture `det` (the determinant of the first four
/// inputs, an operator tract lacks) behind version 1's feature view.
pub fn add_determinant_version(registry: &Path, new: u64, backend: &str) {
    use sha2::Digest;
    add_backend_version(registry, 1, new, backend);
    let bytes = std::fs::read(repo().join("tests/fixtures/parity/determinant.onnx")).unwrap();
    std::fs::write(registry.join(format!("fraud/{new}/model.onnx")), &bytes).unwrap();
    let manifest = registry.join(format!("fraud/{new}/manifest.toml"));
    let mut m: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["model"]
        .as_table_mut()
        .unwrap()
        .insert("sha256".into(), hex::encode(sha2::Sha256::digest(&bytes)).into());
    let mut output = toml::Table::new();
    output.insert("name".into(), "score".into());
    output.insert("tensor".into(), "score".into());
    m.insert("outputs".into(), toml::Value::Array(vec![toml::Value::Table(output)]));
    // Version 1's training reference describes its outputs, not this graph's.
    m.remove("reference");
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
}

/// `fti-serve serve` as a child process, on ports it chose itself (`127.0.0.1:0`), read
/// back from its JSON log. Killed on drop.
pub struct ChildServer {
    child: Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildServer {
    /// Starts the server with `config` and extra `FTI__...` environment overrides, and
    /// waits (up to a minute) until it says it is serving.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> ChildServer {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_fti-serve"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .env("FTI__LOG__FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "serving HTTP and gRPC"
                {
                    let addr = |k: &str| v["fields"][k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                    let _ = tx.send((addr("http_addr"), addr("grpc_addr")));
                }
                lines.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((Some(http), Some(grpc))) => ChildServer { child, http, grpc, log },
            other => {
                let _ = child.kill();
                panic!("fti-serve did not start serving ({other:?}): {:?}", log.lock().unwrap());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed end-entity certificate for 127.0.0.1 (and its key), made by openssl in
/// `dir`: what rustls accepts as Redis's certificate and as its own CA.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=fti-test-redis", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (tests/run.sh installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

/// Writes one card's activity (`txn_count_1h` 3, `txn_count_24h` 7) in the native layout,
/// over any async connection (TLS, a cluster): a value the test then sees served.
pub async fn write_card_activity(conn: &mut impl redis::aio::ConnectionLike, card: &str) {
    let _: () = redis::cmd("HSET")
        .arg(format!("fti:card_activity:{card}"))
        .arg(&["txn_count_1h", "3", "txn_count_24h", "7"][..])
        .query_async(conn)
        .await
        .unwrap();
}
