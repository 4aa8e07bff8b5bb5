//! Layered configuration: built-in defaults, then a TOML file, then environment variables
//! `FTI__SECTION__KEY` (e.g. `FTI__STORE__REDIS__URL`). [`Config::validate`] turns every
//! mistake into one message that names the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::secret::{Secret, redact_url};

mod observe;
pub use observe::{DriftConfig, FilesSinkConfig, ModelLogConfig, PredictionLogConfig, StreamSinkConfig};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub registry: RegistryConfig,
    pub store: StoreConfig,
    pub cache: CacheConfig,
    pub inference: InferenceConfig,
    pub ort: OrtConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub prediction_log: PredictionLogConfig,
    pub drift: DriftConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API (predict, models, health, metrics).
    pub http_addr: SocketAddr,
    /// Address of the gRPC API (Open Inference Protocol and fti.v1.PredictionService).
    pub grpc_addr: SocketAddr,
    /// Whole-request deadline; a request past it answers 504.
    pub request_timeout_ms: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest accepted `rows` array in a batch predict.
    pub max_batch_rows: usize,
    /// Admission control: predict and infer requests in flight beyond this are refused at
    /// once (HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED). 0: 16 per CPU core.
    pub max_in_flight: usize,
    /// Open connections per listener (HTTP, gRPC); more are closed as they are accepted.
    pub max_connections: usize,
    /// HTTP: a request's headers must arrive within this, and an idle keep-alive
    /// connection is closed after this long without a new request. gRPC: the client's
    /// connection preface must arrive within this.
    pub header_read_timeout_ms: u64,
    /// HTTP: a request body must arrive whole within this (408 otherwise).
    pub body_read_timeout_ms: u64,
    /// After SIGTERM, readiness answers 503 but the listeners keep serving this long, so
    /// load balancers stop sending first (a second signal skips the wait).
    pub drain_grace_ms: u64,
    /// Then the listeners close and in-flight requests get this long to finish.
    pub drain_timeout_ms: u64,
    /// gRPC: concurrent calls per connection.
    pub grpc_max_concurrent_streams: u32,
    /// gRPC: keep-alive pings to find dead peers, and how long one may go unanswered.
    pub grpc_keepalive_interval_ms: u64,
    pub grpc_keepalive_timeout_ms: u64,
}

impl ServerConfig {
    /// `max_in_flight`, with 0 resolved to 16 per CPU core: enough to keep a core busy
    /// while requests wait on Redis. Under twice the load a core can serve, 16 did better
    /// than 8 (a refusal costs about half a served request, so refusing more freed little
    /// CPU; BENCHMARKS.md, "Overload").
    pub fn max_in_flight(&self) -> usize {
        match self.max_in_flight {
            0 => 16 * std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            request_timeout_ms: 2_000,
            max_body_bytes: 1 << 20,
            max_batch_rows: 256,
            max_in_flight: 0,
            max_connections: 4_096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            drain_grace_ms: 5_000,
            drain_timeout_ms: 20_000,
            grpc_max_concurrent_streams: 256,
            grpc_keepalive_interval_ms: 30_000,
            grpc_keepalive_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Root directory of the model registry.
    pub path: PathBuf,
    /// Models to serve; empty means every model found under `path`.
    pub models: Vec<String>,
    /// Besides the versions aliases point at, keep this many of the newest versions of
    /// each model loaded (0: aliased versions only).
    pub keep_latest: usize,
    /// How often each replica re-reads the registry (file-system events trigger a re-read
    /// sooner where the platform delivers them).
    pub poll_interval_ms: u64,
    /// Watch the registry for file-system events (off: poll only).
    pub watch: bool,
    /// Take versions and aliases from an MLflow Model Registry; `path` is then the local
    /// cache the versions are downloaded into (docs/mlflow.md).
    pub mlflow: Option<MlflowConfig>,
}

/// An MLflow tracking server as the registry source.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlflowConfig {
    /// `http://host:port` or `https://...` of the tracking server (REST API and the
    /// artifact proxy).
    pub tracking_uri: String,
    /// How often aliases are read from MLflow: a move there is served within this.
    pub poll_interval_ms: u64,
    /// Connect and read deadline of each call to MLflow.
    pub timeout_ms: u64,
    /// Largest version (all its files together) that is downloaded.
    pub max_version_bytes: u64,
    /// MLflow alias -> fti-serve alias (e.g. `champion = "production"`). Empty: every
    /// MLflow alias is followed under its own name. Set: only these are followed, and
    /// `models promote --alias A` sets the MLflow alias mapped to `A`.
    pub aliases: BTreeMap<String, String>,
    /// Bearer token (Databricks-style or an auth proxy); not with `username`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// HTTP basic auth (`mlflow server --app-name basic-auth`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        MlflowConfig {
            tracking_uri: String::new(),
            poll_interval_ms: 5_000,
            timeout_ms: 10_000,
            max_version_bytes: 4 << 30,
            aliases: BTreeMap::new(),
            token: None,
            token_file: None,
            username: None,
            password: None,
            password_file: None,
        }
    }
}

impl fmt::Debug for MlflowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowConfig")
            .field("tracking_uri", &redact_url(&self.tracking_uri))
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("aliases", &self.aliases)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How fti-serve authenticates to MLflow.
#[derive(Debug, Clone)]
pub enum MlflowAuth {
    None,
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

impl MlflowConfig {
    /// The credentials, read from their files where so configured.
    pub fn auth(&self) -> Result<MlflowAuth, ConfigError> {
        let file = |key: &str, path: &Path| {
            Secret::read_file(path).map_err(|message| ConfigError::Invalid { key: key.into(), message })
        };
        let token = match (&self.token, &self.token_file) {
            (Some(t), None) => Some(t.clone()),
            (None, Some(path)) => Some(file("registry.mlflow.token_file", path)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "registry.mlflow.token_file".into(),
                    message: "set either token or token_file, not both".into(),
                });
            }
        };
        let password = match (&self.password, &self.password_file) {
            (Some(p), None) => Some(p.clone()),
            (None, Some(path)) => Some(file("registry.mlflow.password_file", path)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "registry.mlflow.password_file".into(),
                    message: "set either password or password_file, not both".into(),
                });
            }
        };
        match (token, &self.username, password) {
            (None, None, None) => Ok(MlflowAuth::None),
            (Some(t), None, None) => Ok(MlflowAuth::Bearer(t)),
            (None, Some(u), Some(p)) => Ok(MlflowAuth::Basic { username: u.clone(), password: p }),
            (Some(_), _, _) => Err(ConfigError::Invalid {
                key: "registry.mlflow.token".into(),
                message: "set either a token or a username and password, not both".into(),
            }),
            (None, _, _) => Err(ConfigError::Invalid {
                key: "registry.mlflow.username".into(),
                message: "basic auth needs both username and password (or password_file)".into(),
            }),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            path: PathBuf::from("models"),
            models: Vec::new(),
            keep_latest: 2,
            poll_interval_ms: 1_000,
            watch: true,
            mlflow: None,
        }
    }
}

/// The admin API (promote, rollback, history). Off unless a token is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token the admin API requires.
    pub token: Option<Secret>,
    /// A file holding the token (keeps it out of the config file); not with `token`.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Embedded store loaded from feature files at start-up.
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// Prepended to every key: `<prefix><group>:<entity id>`.
    pub prefix: String,
    /// What a request does when the store fails or times out.
    pub on_error: StoreErrorPolicy,
    pub redis: RedisConfig,
    pub memory: MemoryConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Memory,
            prefix: "fti:".into(),
            on_error: StoreErrorPolicy::Fail,
            redis: RedisConfig::default(),
            memory: MemoryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreErrorPolicy {
    /// Answer 503 and report the store in `/health/ready`.
    Fail,
    /// Serve with every group feature defaulted and listed in `missing_features`.
    Defaults,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`, or a cluster:
    /// `redis+cluster://[:password@]host:port[,host:port...]`. May hold a password: never logged.
    pub url: String,
    /// Deadline for one round trip (all groups and entities of a request).
    pub timeout_ms: u64,
    /// How often readiness pings the store (while it is down: at least every 200 ms).
    pub health_interval_ms: u64,
    /// A file holding the password (a mounted secret); overrides one in `url`.
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authority to trust for `rediss://` (instead of the
    /// system's roots).
    pub ca_file: Option<PathBuf>,
    /// The client of a single Redis: `builtin`, our own multiplexed connection with its
    /// own RESP reader, or `redis-rs`, the redis crate's connection manager. A URL only
    /// the redis crate speaks (`rediss://...#insecure`) uses it either way; a cluster URL
    /// always uses the cluster client.
    pub client: RedisClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisClient {
    #[default]
    Builtin,
    RedisRs,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            timeout_ms: 100,
            health_interval_ms: 1_000,
            password_file: None,
            ca_file: None,
            client: RedisClient::default(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("timeout_ms", &self.timeout_ms)
            .field("health_interval_ms", &self.health_interval_ms)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("client", &self.client)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Feature files loaded into the embedded store at start-up.
    pub files: Vec<FeatureFileConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureFileConfig {
    pub group: String,
    /// CSV or Parquet (by extension). Relative paths are relative to the config file.
    pub path: PathBuf,
    /// Entity key columns; default: the group's entities in the served feature views.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound on cached (group, entity) entries.
    pub max_entries: u64,
    /// TTL for groups not listed in `ttl_ms`; 0 turns caching off.
    pub default_ttl_ms: u64,
    /// Per feature group TTL in milliseconds; 0 turns caching off for that group.
    pub ttl_ms: BTreeMap<String, u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_entries: 100_000, default_ttl_ms: 0, ttl_ms: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Models whose warm-up batch of one runs longer than this execute on the blocking
    /// pool; faster ones run inline on the request's task (a thread hop costs more than
    /// they do).
    pub inline_threshold_us: u64,
    /// Backend for versions whose manifest names none.
    pub backend: BackendName,
    /// Shadow runs waiting for the shadow worker beyond this are dropped (and counted in
    /// `fti_shadow_runs_total{outcome="dropped"}`): a shadow never slows the answers.
    pub shadow_queue: usize,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig { inline_threshold_us: 200, backend: BackendName::Tract, shadow_queue: 256 }
    }
}

/// The backends a config file can name (`backend = "tract"` or `"ort"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    Tract,
    Ort,
}

/// ONNX Runtime session settings, tuned for low latency on a small CPU box.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrtConfig {
    /// Path to libonnxruntime (e.g. `.../onnxruntime/capi/libonnxruntime.so.1.32.0` from
    /// the `onnxruntime` wheel); default: the `ORT_DYLIB_PATH` environment variable.
    pub library: Option<PathBuf>,
    /// Threads inside one operator. 1 is fastest for single rows on few cores.
    pub intra_op_threads: usize,
    /// Threads across independent operators.
    pub inter_op_threads: usize,
    pub optimization_level: OrtOptimization,
    /// ONNX Runtime's CPU memory arena.
    pub memory_arena: bool,
    /// Sessions per model version (`Session::run` takes one session exclusively).
    pub sessions: usize,
}

impl Default for OrtConfig {
    fn default() -> Self {
        OrtConfig {
            library: None,
            intra_op_threads: 1,
            inter_op_threads: 1,
            optimization_level: OrtOptimization::All,
            memory_arena: true,
            sessions: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrtOptimization {
    Disable,
    Basic,
    Extended,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `fti_serve=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(String),
    #[error("config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// The admin token, from `admin.token` or read from `admin.token_file`.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.admin.token, &self.admin.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(file)) => Secret::read_file(file)
                .map(Some)
                .map_err(|message| ConfigError::Invalid { key: "admin.token_file".into(), message }),
            (None, None) => Ok(None),
        }
    }

    /// Defaults, then `file` (when given), then `FTI__*` environment variables. Relative
    /// paths in the file are resolved against the file's directory.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Parse(format!("file {} not found", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment
            .merge(Env::prefixed("FTI__").split("__"))
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(dir) = file.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// Defaults, then the TOML `text` (no environment layer, no path resolution); not
    /// validated. For checking a config file's contents on their own.
    pub fn parse_toml(text: &str) -> Result<Config, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.registry.path);
        for file in &mut self.store.memory.files {
            resolve(&mut file.path);
        }
        if let Some(lib) = &mut self.ort.library {
            resolve(lib);
        }
        let mlflow = self.registry.mlflow.as_mut();
        let (mlflow_token, mlflow_password) = match mlflow {
            Some(m) => (m.token_file.as_mut(), m.password_file.as_mut()),
            None => (None, None),
        };
        for file in [
            self.admin.token_file.as_mut(),
            self.store.redis.password_file.as_mut(),
            self.store.redis.ca_file.as_mut(),
            mlflow_token,
            mlflow_password,
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, message: &str| Err(ConfigError::Invalid { key: key.into(), message: message.into() });
        if self.server.request_timeout_ms == 0 {
            return invalid("server.request_timeout_ms", "must be greater than 0");
        }
        if self.server.max_batch_rows == 0 {
            return invalid("server.max_batch_rows", "must be at least 1");
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        let positive = [
            ("server.max_connections", self.server.max_connections as u64),
            ("server.header_read_timeout_ms", self.server.header_read_timeout_ms),
            ("server.body_read_timeout_ms", self.server.body_read_timeout_ms),
            ("server.drain_timeout_ms", self.server.drain_timeout_ms),
            ("server.grpc_max_concurrent_streams", u64::from(self.server.grpc_max_concurrent_streams)),
            ("server.grpc_keepalive_interval_ms", self.server.grpc_keepalive_interval_ms),
            ("server.grpc_keepalive_timeout_ms", self.server.grpc_keepalive_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(key, "must be greater than 0");
        }
        self.prediction_log.validate()?;
        self.drift.validate()?;
        if self.inference.shadow_queue == 0 {
            return invalid("inference.shadow_queue", "must be at least 1");
        }
        if self.ort.sessions == 0 {
            return invalid("ort.sessions", "must be at least 1");
        }
        if self.ort.intra_op_threads == 0 || self.ort.inter_op_threads == 0 {
            return invalid("ort.intra_op_threads", "thread counts must be at least 1");
        }
        if self.registry.poll_interval_ms == 0 {
            return invalid("registry.poll_interval_ms", "must be greater than 0");
        }
        if self.admin.token.is_some() && self.admin.token_file.is_some() {
            return invalid("admin.token_file", "set either admin.token or admin.token_file, not both");
        }
        if self.admin.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return invalid("admin.token", "must be at least 16 characters");
        }
        if let Some(file) = &self.admin.token_file {
            match Secret::read_file(file) {
                Ok(token) if token.expose().len() < 16 => {
                    return invalid("admin.token_file", "the token must be at least 16 characters");
                }
                Ok(_) => {}
                Err(message) => return invalid("admin.token_file", &message),
            }
        }
        if let Some(mlflow) = &self.registry.mlflow {
            Self::validate_mlflow(mlflow, &self.registry.models)?;
        } else if !self.registry.path.is_dir() {
            let message = format!("directory {} does not exist", self.registry.path.display());
            return invalid("registry.path", &message);
        }
        if self.store.kind == StoreKind::Redis {
            const SCHEMES: [&str; 5] =
                ["redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://"];
            if !SCHEMES.iter().any(|s| self.store.redis.url.starts_with(s)) {
                return invalid(
                    "store.redis.url",
                    "must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://",
                );
            }
            if self.store.redis.timeout_ms == 0 {
                return invalid("store.redis.timeout_ms", "must be greater than 0");
            }
            if self.store.redis.health_interval_ms == 0 {
                return invalid("store.redis.health_interval_ms", "must be greater than 0");
            }
            if let Some(file) = &self.store.redis.password_file
                && let Err(message) = Secret::read_file(file)
            {
                return invalid("store.redis.password_file", &message);
            }
            if let Some(file) = &self.store.redis.ca_file {
                if !(self.store.redis.url.starts_with("rediss://")
                    || self.store.redis.url.starts_with("rediss+cluster://"))
                {
                    return invalid("store.redis.ca_file", "applies to rediss:// (TLS) URLs only");
                }
                if !file.is_file() {
                    return invalid(
                        "store.redis.ca_file",
                        &format!("file {} does not exist", file.display()),
                    );
                }
            }
        }
        for (i, file) in self.store.memory.files.iter().enumerate() {
            if self.store.kind == StoreKind::Memory && !file.path.is_file() {
                let message = format!("file {} does not exist", file.path.display());
                return invalid(&format!("store.memory.files[{i}].path"), &message);
            }
        }
        if self.cache.max_entries == 0 && self.cache.ttl_ms.values().any(|&t| t > 0) {
            return invalid("cache.max_entries", "must be greater than 0 when a TTL is set");
        }
        Ok(())
    }

    fn validate_mlflow(mlflow: &MlflowConfig, models: &[String]) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, message: &str| Err(ConfigError::Invalid { key: key.into(), message: message.into() });
        let uri = &mlflow.tracking_uri;
        if !(uri.starts_with("http://") || uri.starts_with("https://")) || uri.len() <= "https://".len() {
            return invalid("registry.mlflow.tracking_uri", "must be an http:// or https:// URL");
        }
        if models.is_empty() {
            return invalid("registry.models", "must name the registered models to serve from MLflow");
        }
        if mlflow.poll_interval_ms == 0 || mlflow.timeout_ms == 0 {
            return invalid(
                "registry.mlflow.poll_interval_ms",
                "intervals and timeouts must be greater than 0",
            );
        }
        if mlflow.max_version_bytes == 0 {
            return invalid("registry.mlflow.max_version_bytes", "must be greater than 0");
        }
        let alias_ok = |a: &str| {
            !a.is_empty()
                && a.len() <= 64
                && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let mut targets = std::collections::BTreeSet::new();
        for (from, to) in &mlflow.aliases {
            if !alias_ok(from) || !alias_ok(to) {
                return invalid(
                    &format!("registry.mlflow.aliases.{from}"),
                    "aliases are letters, digits, - and _",
                );
            }
            if !targets.insert(to) {
                return invalid(
                    &format!("registry.mlflow.aliases.{from}"),
                    &format!("two MLflow aliases map to {to:?}"),
                );
            }
        }
        mlflow.auth().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_redacted_in_debug() {
        let config = RedisConfig { url: "redis://:hunter2@h:1".into(), ..Default::default() };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = Config::default();
        config.registry.path = std::env::temp_dir();
        config.server.max_batch_rows = 0;
        let err = config.validate().expect_err("must fail");
        assert!(err.to_string().contains("server.max_batch_rows"), "{err}");

        config.server.max_batch_rows = 8;
        config.store.kind = StoreKind::Redis;
        config.store.redis.url = "http://x".into();
        let err = config.validate().expect_err("must fail");
        assert!(err.to_string().contains("store.redis.url"), "{err}");
    }

    #[test]
    fn mlflow_source_is_checked() {
        let mut config = Config::default();
        config.registry.path = std::env::temp_dir().join("fti-serve-no-such-cache");
        config.registry.mlflow = Some(MlflowConfig { tracking_uri: "ftp://x".into(), ..Default::default() });
        let err = config.validate().expect_err("bad scheme");
        assert!(err.to_string().contains("registry.mlflow.tracking_uri"), "{err}");

        let mlflow = MlflowConfig { tracking_uri: "http://127.0.0.1:5000".into(), ..Default::default() };
        config.registry.mlflow = Some(mlflow.clone());
        let err = config.validate().expect_err("no models");
        assert!(err.to_string().contains("registry.models"), "{err}");

        // The cache directory need not exist: it is created.
        config.registry.models = vec!["fraud".into()];
        config.validate().expect("valid");

        let aliases =
            BTreeMap::from([("champion".into(), "production".into()), ("gold".into(), "production".into())]);
        config.registry.mlflow = Some(MlflowConfig { aliases, ..mlflow.clone() });
        let err = config.validate().expect_err("two aliases onto one");
        assert!(err.to_string().contains("registry.mlflow.aliases"), "{err}");

        config.registry.mlflow = Some(MlflowConfig { username: Some("u".into()), ..mlflow.clone() });
        let err = config.validate().expect_err("no password");
        assert!(err.to_string().contains("registry.mlflow.username"), "{err}");

        let secret = MlflowConfig { password: Some(Secret::new("hunter2")), ..mlflow };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn file_and_env_layers() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("reg")).expect("mkdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[registry]\npath = \"reg\"\n[cache]\ndefault_ttl_ms = 5\n").expect("write");
        let config = Config::load(Some(&file)).expect("load");
        assert_eq!(config.registry.path, dir.path().join("reg"));
        assert_eq!(config.cache.default_ttl_ms, 5);

        std::fs::write(&file, "[registry]\npath = \"reg\"\nbogus = 1\n").expect("write");
        let err = Config::load(Some(&file)).expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
