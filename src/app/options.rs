//! The config, turned into each module's own options.

use std::time::Duration;

use super::AppError;
use crate::backend::BackendKind;
use crate::backend::ort::{Optimization, OrtOptions};
use crate::config::{BackendName, Config, OrtOptimization, RedisConfig};
use crate::connections::ConnectionLimits;
use crate::features::CacheOptions;
use crate::features::redis::RedisOptions;
use crate::grpc::GrpcOptions;
use crate::observe::{DriftOptions, FilesOptions, LogOptions, ObserveOptions, StreamOptions};
use crate::registry::LoadOptions;
use crate::secret::Secret;

/// How the registry loads versions under `config`.
pub fn load_options(config: &Config) -> LoadOptions {
    let ort = &config.ort;
    LoadOptions {
        inline_threshold: Duration::from_micros(config.inference.inline_threshold_us),
        default_backend: match config.inference.backend {
            BackendName::Tract => BackendKind::Tract,
            BackendName::Ort => BackendKind::Ort,
        },
        ort: OrtOptions {
            library: ort.library.clone(),
            intra_op_threads: ort.intra_op_threads,
            inter_op_threads: ort.inter_op_threads,
            optimization: match ort.optimization_level {
                OrtOptimization::Disable => Optimization::Disable,
                OrtOptimization::Basic => Optimization::Basic,
                OrtOptimization::Extended => Optimization::Extended,
                OrtOptimization::All => Optimization::All,
            },
            memory_arena: ort.memory_arena,
            sessions: ort.sessions,
        },
    }
}

pub fn cache_options(config: &Config) -> CacheOptions {
    let cache = &config.cache;
    CacheOptions {
        max_entries: cache.max_entries,
        default_ttl: Duration::from_millis(cache.default_ttl_ms),
        ttl: cache.ttl_ms.iter().map(|(group, &ms)| (group.clone(), Duration::from_millis(ms))).collect(),
    }
}

/// How to reach Redis: the URL, and the password and CA certificate from their files.
pub fn redis_options(redis: &RedisConfig) -> Result<RedisOptions, AppError> {
    redis_options_at("store.redis", redis)
}

/// [`redis_options`] for the Redis settings under config key `at`.
fn redis_options_at(at: &str, redis: &RedisConfig) -> Result<RedisOptions, AppError> {
    let password = match &redis.password_file {
        Some(file) => {
            Some(Secret::read_file(file).map_err(|m| AppError::Config(format!("{at}.password_file: {m}")))?)
        }
        None => None,
    };
    let ca_pem =
        match &redis.ca_file {
            Some(file) => Some(std::fs::read(file).map_err(|e| {
                AppError::Config(format!("{at}.ca_file: cannot read {}: {e}", file.display()))
            })?),
            None => None,
        };
    Ok(RedisOptions {
        url: redis.url.clone(),
        password,
        ca_pem,
        timeout: Duration::from_millis(redis.timeout_ms),
    })
}

pub fn connection_limits(config: &Config) -> ConnectionLimits {
    let server = &config.server;
    ConnectionLimits {
        max_connections: server.max_connections,
        header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(server.body_read_timeout_ms),
        drain_timeout: Duration::from_millis(server.drain_timeout_ms),
    }
}

pub fn grpc_options(config: &Config) -> GrpcOptions {
    let server = &config.server;
    GrpcOptions {
        connections: connection_limits(config),
        max_message_bytes: server.max_body_bytes,
        max_concurrent_streams: server.grpc_max_concurrent_streams,
        keepalive_interval: Duration::from_millis(server.grpc_keepalive_interval_ms),
        keepalive_timeout: Duration::from_millis(server.grpc_keepalive_timeout_ms),
    }
}

/// What the server records of what it serves, from `[prediction_log]` and `[drift]`; the
/// stream sink reaches the store's Redis unless it names its own URL.
pub fn observe_options(config: &Config) -> Result<ObserveOptions, AppError> {
    let log_config = &config.prediction_log;
    let log = if log_config.enabled {
        let stream = match &log_config.stream {
            Some(s) => {
                let own = RedisConfig {
                    url: s.url.clone(),
                    password_file: s.password_file.clone(),
                    ca_file: s.ca_file.clone(),
                    ..RedisConfig::default()
                };
                let mut redis = if s.url.is_empty() {
                    redis_options(&config.store.redis)?
                } else {
                    redis_options_at("prediction_log.stream", &own)?
                };
                redis.timeout = Duration::from_millis(s.timeout_ms);
                Some(StreamOptions { redis, key: s.key.clone(), maxlen: s.maxlen })
            }
            None => None,
        };
        Some(LogOptions {
            sample: log_config.sample,
            per_model: log_config.models.iter().map(|(m, c)| (m.clone(), c.sample)).collect(),
            files: log_config.files.as_ref().map(|f| FilesOptions {
                dir: f.dir.clone(),
                max_file_bytes: f.max_file_bytes,
                max_file_age: Duration::from_secs(f.max_file_age_s),
                max_files: f.max_files,
            }),
            stream,
        })
    } else {
        None
    };
    let drift = &config.drift;
    Ok(ObserveOptions {
        log,
        drift: drift.enabled.then(|| DriftOptions {
            window: Duration::from_secs(drift.window_s),
            min_rows: drift.min_rows,
            psi_threshold: drift.psi_threshold,
        }),
        drift_sample: drift.sample,
        queue: log_config.queue,
        batch: log_config.batch,
    })
}
