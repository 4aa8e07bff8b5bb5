//! Wiring: turn the config into each module's options ([`options`]), connect the
//! registry's source ([`source`]), open the online store ([`store`]), build the shared state, serve HTTP and gRPC, and shut down with a
//! drain ([`run`]). Nothing below this module reads the config.

mod options;
mod run;
mod source;
mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, StoreErrorPolicy};
use crate::connections::ConnectionLimits;
use crate::features::{FeatureService, OnStoreError};
use crate::grpc::GrpcOptions;
use crate::http::HttpOptions;
use crate::metrics::Metrics;
use crate::observe::Observer;
use crate::predict::{Limits, Predictor};
use crate::registry::{Registry, RegistryDir, RegistryOptions, mlflow, watch};

pub use options::{load_options, redis_options};
pub use run::run;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("online store: {0}")]
    Store(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Serve(String),
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
    http: HttpOptions,
    grpc: GrpcOptions,
    connections: ConnectionLimits,
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
        let dir = RegistryDir::new(&config.registry.path);
        let source = match &config.registry.mlflow {
            Some(mlflow) => Some(Arc::new(source::mlflow(mlflow, config, &dir, &metrics).await?)),
            None => None,
        };
        let options = RegistryOptions {
            models: config.registry.models.clone(),
            keep_latest: config.registry.keep_latest,
            load: options::load_options(config),
            source: source.clone(),
        };
        let registry = Arc::new(Registry::new(dir, options, metrics.clone()));
        let (registry, store) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<_, AppError> {
                registry.reconcile()?;
                let store = store::open(&config, &registry)?;
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
        let mut background = vec![watcher];
        if let Some(source) = source {
            background.push(mlflow::poll::spawn(Arc::clone(&registry), source));
        }

        let on_error = match config.store.on_error {
            StoreErrorPolicy::Fail => OnStoreError::Fail,
            StoreErrorPolicy::Defaults => OnStoreError::Defaults,
        };
        let features = FeatureService::new(
            store,
            options::cache_options(config),
            config.store.prefix.clone(),
            on_error,
            metrics.clone(),
        );
        let limits = Limits {
            max_batch_rows: config.server.max_batch_rows,
            max_body_bytes: config.server.max_body_bytes,
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms),
            request_timeout: Duration::from_millis(config.server.request_timeout_ms),
            max_in_flight: config.server.max_in_flight(),
            shadow_queue: config.inference.shadow_queue,
        };
        let observer =
            Observer::start(&options::observe_options(config)?, &metrics).map_err(AppError::Config)?;
        let predictor = Predictor::new(Arc::clone(&registry), features, metrics, limits, observer);
        let up = predictor.check_store_health().await;
        tracing::info!(store = %predictor.readiness().store.store, up, "online store");

        let interval = Duration::from_millis(config.store.redis.health_interval_ms);
        let health = {
            let predictor = predictor.clone();
            tokio::spawn(async move { predictor.watch_store(interval).await })
        };
        background.push(health);
        predictor.spawn_shadow_worker();
        let guards = predictor.clone();
        background.push(tokio::spawn(async move { guards.watch_guards(Duration::from_secs(1)).await }));
        let admin_token = config.admin_token().map_err(|e| AppError::Config(e.to_string()))?;
        Ok(App {
            predictor,
            registry,
            http: HttpOptions { admin_token },
            grpc: options::grpc_options(config),
            connections: options::connection_limits(config),
            background,
        })
    }

    pub fn router(&self) -> axum::Router {
        crate::http::router(self.predictor.clone(), self.http.clone())
    }

    /// Serves the HTTP API on `listener` with the configured connection limits until
    /// `shutdown` resolves, then drains.
    pub async fn serve_http(&self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let refused = self.predictor.connection_refusals("http");
        crate::http::server::serve(listener, self.router(), self.connections, refused, shutdown).await;
    }

    /// [`App::serve_http`] on a task of its own.
    pub fn spawn_http(
        self: &Arc<App>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move { app.serve_http(listener, shutdown).await })
    }

    /// [`App::serve_grpc`] on a task of its own.
    pub fn spawn_grpc(
        self: &Arc<App>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<Result<(), AppError>> {
        let app = Arc::clone(self);
        tokio::spawn(async move { app.serve_grpc(listener, shutdown).await })
    }

    /// Serves both gRPC services on `listener` until `shutdown` resolves, then drains.
    pub async fn serve_grpc(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let refused = self.predictor.connection_refusals("grpc");
        crate::grpc::serve(listener, self.predictor.clone(), self.grpc, refused, shutdown)
            .await
            .map_err(|e| AppError::Grpc(e.to_string()))
    }
}
