//! Wiring: build the shared state from config, serve HTTP, shut down cleanly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backend::BackendKind;
use crate::backend::ort::{Optimization, OrtOptions};
use crate::config::{BackendName, Config, OrtOptimization, StoreErrorPolicy, StoreKind};
use crate::features::files::{FeatureFile, GroupSchema, group_schemas};
use crate::features::memory::MemoryStore;
use crate::features::redis::RedisStore;
use crate::features::{CacheOptions, FeatureService, OnStoreError, OnlineStore};
use crate::metrics::Metrics;
use crate::predict::{Limits, Predictor};
use crate::registry::{LoadOptions, Registry, RegistryDir, RegistryOptions, VersionState, watch};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("online store: {0}")]
    Store(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("gRPC server: {0}")]
    Grpc(String),
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// A built server: the core plus its background tasks (store health checks, the registry
/// watcher).
#[derive(Debug)]
pub struct App {
    pub predictor: Predictor,
    /// The served registry, for wiring and in-process benches; transports use `predictor`.
    pub registry: Arc<Registry>,
    admin_token: Option<Secret>,
    background: Vec<JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl App {
    /// Loads the registry, opens the online store and starts its health checks.
    pub async fn build(config: &Config) -> Result<App, AppError> {
        let metrics = Metrics::new();
        let options = RegistryOptions {
            models: config.registry.models.clone(),
            keep_latest: config.registry.keep_latest,
            load: load_options(config),
        };
        let registry =
            Arc::new(Registry::new(RegistryDir::new(&config.registry.path), options, metrics.clone()));
        let (registry, store) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<_, AppError> {
                registry.reconcile()?;
                let store = open_store(&config, &registry)?;
                Ok((registry, store))
            })
            .await
            .map_err(|e| AppError::Task(e.to_string()))??
        };
        let watcher = watch::spawn(
            Arc::clone(&registry),
            Duration::from_millis(config.registry.poll_interval_ms),
            config.registry.watch,
        );

        let on_error = match config.store.on_error {
            StoreErrorPolicy::Fail => OnStoreError::Fail,
            StoreErrorPolicy::Defaults => OnStoreError::Defaults,
        };
        let features = FeatureService::new(
            store,
            cache_options(config),
            config.store.prefix.clone(),
            on_error,
            metrics.clone(),
        );
        let limits = Limits {
            max_batch_rows: config.server.max_batch_rows,
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: Duration::from_millis(config.server.request_timeout_ms),
        };
        let predictor = Predictor::new(Arc::clone(&registry), features, metrics, limits);
        let up = predictor.check_store_health().await;
        tracing::info!(store = %predictor.readiness().store.store, up, "online store");

        let interval = Duration::from_millis(config.store.redis.health_interval_ms);
        let health = {
            let predictor = predictor.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    predictor.check_store_health().await;
                }
            })
        };
        Ok(App {
            predictor,
            registry,
            admin_token: config.admin.token.clone(),
            background: vec![health, watcher],
        })
    }

    pub fn router(&self) -> axum::Router {
        crate::http::router(self.predictor.clone(), self.admin_token.clone())
    }
}

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

fn cache_options(config: &Config) -> CacheOptions {
    let cache = &config.cache;
    CacheOptions {
        max_entries: cache.max_entries,
        default_ttl: Duration::from_millis(cache.default_ttl_ms),
        ttl: cache.ttl_ms.iter().map(|(group, &ms)| (group.clone(), Duration::from_millis(ms))).collect(),
    }
}

/// The configured online store; the in-memory one is filled from its feature files.
fn open_store(config: &Config, registry: &Registry) -> Result<Arc<dyn OnlineStore>, AppError> {
    match config.store.kind {
        StoreKind::Redis => {
            let redis = &config.store.redis;
            let store = RedisStore::new(&redis.url, Duration::from_millis(redis.timeout_ms))
                .map_err(|e| AppError::Store(e.to_string()))?;
            Ok(Arc::new(store))
        }
        StoreKind::Memory => {
            let snapshot = registry.snapshot();
            let views = snapshot.models.values().flat_map(|m| m.versions.values()).filter_map(|s| match s {
                VersionState::Ready(v) => Some(v.view.spec()),
                VersionState::Failed(_) => None,
            });
            let schemas = group_schemas(views).map_err(AppError::Store)?;
            let mut store = MemoryStore::new();
            for file in &config.store.memory.files {
                let schema = match (&file.keys, schemas.get(&file.group)) {
                    (Some(keys), known) => GroupSchema {
                        keys: keys.clone(),
                        dtypes: known.map(|s| s.dtypes.clone()).unwrap_or_default(),
                    },
                    (None, Some(known)) => known.clone(),
                    (None, None) => {
                        return Err(AppError::Store(format!(
                            "feature file {}: group `{}` is not read by any loaded model; set `keys` for it",
                            file.path.display(),
                            file.group
                        )));
                    }
                };
                let rows =
                    FeatureFile::open(&file.path, &schema).map_err(|e| AppError::Store(e.to_string()))?;
                let mut count = 0usize;
                for row in rows {
                    let row = row.map_err(|e| AppError::Store(e.to_string()))?;
                    store.insert(format!("{}{}:{}", config.store.prefix, file.group, row.entity), row.set);
                    count += 1;
                }
                tracing::info!(group = %file.group, path = %file.path.display(), rows = count, "feature file loaded");
                store.add_source(file.path.display().to_string());
            }
            Ok(Arc::new(store))
        }
    }
}

/// Serves the router on `listener` until `shutdown` resolves, then drains in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(AppError::Serve)
}

/// Serves gRPC on `listener` until `shutdown` resolves.
pub async fn serve_grpc(
    listener: TcpListener,
    predictor: Predictor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    crate::grpc::serve(listener, predictor, shutdown).await.map_err(|e| AppError::Grpc(e.to_string()))
}

/// `fti-serve serve`: build, bind both ports, serve until Ctrl-C or SIGTERM, then drain.
pub async fn run(config: Config) -> Result<(), AppError> {
    let app = App::build(&config).await?;
    let (http_addr, grpc_addr) = (config.server.http_addr, config.server.grpc_addr);
    let http =
        TcpListener::bind(http_addr).await.map_err(|source| AppError::Bind { addr: http_addr, source })?;
    let grpc =
        TcpListener::bind(grpc_addr).await.map_err(|source| AppError::Bind { addr: grpc_addr, source })?;
    tracing::info!(%http_addr, %grpc_addr, ready = app.predictor.is_ready(), "serving HTTP and gRPC");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let on_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc_task = tokio::spawn(serve_grpc(grpc, app.predictor.clone(), on_stop(stopped.clone())));
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    serve(http, app.router(), on_stop(stopped)).await?;
    grpc_task.await.map_err(|e| AppError::Task(e.to_string()))?
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
