//! The registry's source when it is not the directory alone: an MLflow tracking server,
//! read once before the first load so a fresh cache serves at once. When MLflow cannot be
//! reached, the server starts on what the cache holds and readiness says so.

use crate::config::{Config, MlflowConfig};
use crate::metrics::Metrics;
use crate::registry::RegistryDir;
use crate::registry::mlflow::Mlflow;

use super::AppError;

pub async fn mlflow(
    mlflow: &MlflowConfig,
    config: &Config,
    dir: &RegistryDir,
    metrics: &Metrics,
) -> Result<Mlflow, AppError> {
    let runtime = tokio::runtime::Handle::current();
    let source = Mlflow::new(mlflow, config.registry.models.clone(), dir.clone(), runtime, metrics.clone())
        .map_err(AppError::Config)?;
    source.sync().await;
    let status = source.status();
    match &status.error {
        None => tracing::info!(source = %status.uri, "registry source: MLflow, in sync"),
        Some(e) => tracing::warn!(source = %status.uri, "registry source: MLflow: {e}; serving the cache"),
    }
    Ok(source)
}
