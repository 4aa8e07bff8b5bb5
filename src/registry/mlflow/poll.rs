//! The background task that keeps a replica's cache in step with MLflow: every
//! `registry.mlflow.poll_interval_ms` it syncs, and when an alias moved it swaps the
//! served snapshot at once (the registry watcher would follow the file change too).

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::Mlflow;
use crate::registry::Registry;

pub fn spawn(registry: Arc<Registry>, mlflow: Arc<Mlflow>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(mlflow.poll_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !mlflow.sync().await {
                continue;
            }
            let registry = Arc::clone(&registry);
            match tokio::task::spawn_blocking(move || registry.reconcile()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("registry reconcile failed: {e}"),
                Err(e) => tracing::error!("registry reconcile task failed: {e}"),
            }
        }
    })
}
